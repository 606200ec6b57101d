//! The binary's edge: tracing, config, bind policy, signals.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{listen, serve, Agent, Config};

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Loads the config, binds every listen address and serves until SIGINT or SIGTERM.
pub async fn run(config_path: &Path, allow_public_bind: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let addrs = listen::resolve(&config.listen, allow_public_bind, listen::run_tailscale_ip)?;
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !listen::is_private_to_operator(addr.ip()) {
            tracing::warn!(
                %addr,
                "LISTENING ON A PUBLIC ADDRESS because --allow-public-bind was given: anyone who can \
                 reach {addr} can try tokens against this agent"
            );
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; is another process using it?"))?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        listeners.push(listener);
    }
    let apps = config.apps.len();
    let agent = Agent::new(config).context("cannot read host facts from /proc")?;
    tracing::info!(apps, instance_id = %agent.info().instance_id, "fleetdeck-agent started");
    let agent = Arc::new(agent);
    let _background = crate::watch::spawn(agent.clone());
    serve(agent, listeners, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stop the agent with SIGINT");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

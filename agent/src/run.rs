//! The binary's edge: tracing, config, bind policy, signals.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::{serve, serve_tls, Agent, Config};

pub use fleetdeck_daemon::serve::init_tracing;

/// Loads the config, binds every listen address and serves until SIGINT or SIGTERM.
pub async fn run(config_path: &Path, allow_public_bind: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // Read before binding, so a bad certificate or key stops the agent before it listens.
    let tls = config.tls.as_ref().map(|files| files.load()).transpose()?;
    let listeners =
        fleetdeck_daemon::serve::bind(&config.listen, allow_public_bind, "agent").await?;
    let apps = config.apps.len();
    let agent = Agent::new(config).context("cannot read host facts from /proc")?;
    tracing::info!(apps, instance_id = %agent.info().instance_id, "fleetdeck-agent started");
    let agent = Arc::new(agent);
    let _background = crate::watch::spawn(agent.clone());
    let shutdown = fleetdeck_daemon::serve::shutdown_signal();
    match tls {
        Some(tls) => {
            tracing::info!(
                fingerprint = %tls.fingerprint,
                "serving HTTPS; a collector pins this certificate with tls_fingerprint = \"{}\"",
                tls.fingerprint
            );
            serve_tls(agent, listeners, tls.config, shutdown).await?
        }
        None => serve(agent, listeners, shutdown).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

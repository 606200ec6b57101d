//! Running a daemon's HTTP API: tracing to stderr, binding the listen addresses under the bind
//! policy, serving a router on every listener until a shutdown signal, then a short grace for
//! requests in flight (streams never end by themselves, so the grace is bounded).

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::listen::{self, ListenSpec};

/// Logs to stderr at `RUST_LOG` (default `info`), with colours only on a terminal.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Binds every configured address, enforcing the bind policy; `daemon` names the program in the
/// warning a public address earns.
pub async fn bind(
    specs: &[ListenSpec],
    allow_public_bind: bool,
    daemon: &str,
) -> anyhow::Result<Vec<TcpListener>> {
    let addrs = listen::resolve(specs, allow_public_bind, listen::run_tailscale_ip)?;
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !listen::is_private_to_operator(addr.ip()) {
            tracing::warn!(
                %addr,
                "LISTENING ON A PUBLIC ADDRESS because --allow-public-bind was given: anyone who can \
                 reach {addr} can try credentials against this {daemon}"
            );
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; is another process using it?"))?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves `app` on every listener until `shutdown` completes (or a listener fails), then gives
/// requests in flight up to `grace` to finish.
pub async fn serve(
    app: axum::Router,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let mut stop = stop_rx.clone();
        let server = axum::serve(listener, app.clone()).with_graceful_shutdown(async move {
            // Resolves when the sender sends or is dropped.
            let _ = stop.changed().await;
        });
        servers.spawn(async move { server.await });
    }
    drop(stop_rx);
    tokio::select! {
        () = shutdown => {}
        Some(result) = servers.join_next() => {
            // A server ended on its own: an accept error. Stop the others and report it.
            let _ = stop_tx.send(());
            servers.join_all().await;
            return result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        }
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, servers.join_all()).await {
        Ok(results) => results
            .into_iter()
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// Resolves at SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stop with SIGINT");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

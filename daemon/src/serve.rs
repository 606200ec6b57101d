//! Running a daemon's HTTP API: tracing to stderr, binding the listen addresses under the bind
//! policy, serving a router on every listener (plain HTTP, or HTTPS with rustls when the config
//! names `tls_cert` and `tls_key`) until a shutdown signal, then a short grace for requests in
//! flight (streams never end by themselves, so the grace is bounded).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

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
    let addrs = listen::resolve(
        specs,
        allow_public_bind,
        listen::run_tailscale_ip,
        listen::interface_addrs,
    )?;
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !listen::is_private_to_operator(addr.ip()) {
            tracing::warn!(
                %addr,
                "LISTENING ON A PUBLIC ADDRESS because --allow-public-bind was given: anyone who can \
                 reach {addr} can try credentials against this {daemon}"
            );
        } else if allow_public_bind
            && fleetdeck_transport::addr::is_tailscale(addr.ip())
            && !listen::interface_addrs()
                .is_ok_and(|on| listen::on_tailscale_interface(addr.ip(), &on))
        {
            tracing::warn!(
                %addr,
                "LISTENING ON A CARRIER-GRADE NAT ADDRESS NOT ON {} because --allow-public-bind \
                 was given: others on the provider's network may reach this {daemon}",
                listen::TAILSCALE_INTERFACE
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

/// How long a client may take to finish the TLS handshake: one that connects and says nothing
/// holds only its own task, and only this long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Like [`serve`], over TLS with `tls` (see `fleetdeck_transport::server::load`): every listener
/// accepts TCP, each connection shakes hands in its own task, then HTTP/1.1 is served on it.
pub async fn serve_tls(
    app: axum::Router,
    listeners: Vec<TcpListener>,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    // Every connection's task holds a clone of `alive`: when all are gone, `recv` ends.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut accepting = tokio::task::JoinSet::new();
    for listener in listeners {
        accepting.spawn(accept_tls(
            listener,
            acceptor.clone(),
            app.clone(),
            alive.clone(),
            stop_rx.clone(),
        ));
    }
    drop((stop_rx, alive));
    let result = tokio::select! {
        () = shutdown => Ok(()),
        // An accept loop ended on its own: a listener failed. Stop the others and report it.
        Some(result) = accepting.join_next() => {
            result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        }
    };
    let _ = stop_tx.send(());
    accepting.join_all().await;
    // Connections in flight finish their request (streams are cut when the grace is over).
    let _ = tokio::time::timeout(grace, all_closed.recv()).await;
    result
}

/// Accepts connections on `listener` until `stop` changes; each gets its own task.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    alive: tokio::sync::mpsc::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<()>,
) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin, as
                    // axum::serve does.
                    tracing::error!(error = %e, "accept failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            _ = stop.changed() => return Ok(()),
        };
        let (acceptor, app, alive, mut stop) =
            (acceptor.clone(), app.clone(), alive.clone(), stop.clone());
        tokio::spawn(async move {
            let _alive = alive;
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.changed() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
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

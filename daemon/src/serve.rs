//! Running a daemon's HTTP API: tracing to stderr, binding the listen addresses under the bind
//! policy, serving a router on every listener (plain HTTP, or HTTPS with rustls when the config
//! names `tls_cert` and `tls_key`; connections capped, handshakes and headers on a deadline) until
//! a shutdown signal, then a short grace for requests in flight (streams never end by
//! themselves, so the grace is bounded).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

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
    let mut waits = TailscaleWaits::new(daemon);
    loop {
        let addrs = match listen::resolve(
            specs,
            allow_public_bind,
            listen::run_tailscale_ip,
            listen::interface_addrs,
        ) {
            Err(listen::ListenError::Tailscale(why)) => {
                waits.wait(&why).await;
                continue;
            }
            other => other?,
        };
        match bind_all(addrs, allow_public_bind, daemon).await {
            // The CLI may name the address a moment before tailscale0 carries it.
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable && has_tailscale(specs) => {
                waits.wait(&e.to_string()).await;
            }
            other => return Ok(other?),
        }
    }
}

fn has_tailscale(specs: &[ListenSpec]) -> bool {
    specs
        .iter()
        .any(|s| matches!(s, ListenSpec::Tailscale { .. }))
}

/// At boot tailscaled may not have an address yet: a daemon with `listen = "tailscale"` waits
/// for it (1 s, doubling to 30 s between tries, logging each) instead of exiting and leaving it to
/// systemd's restart limits.
#[derive(Debug)]
pub struct TailscaleWaits {
    daemon: String,
    next: Duration,
}

impl TailscaleWaits {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const LONGEST: Duration = Duration::from_secs(30);

    pub fn new(daemon: &str) -> Self {
        Self {
            daemon: daemon.to_owned(),
            next: Self::FIRST,
        }
    }

    /// The pause before the next try, and the one after it.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::LONGEST);
        pause
    }

    async fn wait(&mut self, why: &str) {
        let pause = self.next_pause();
        tracing::warn!(
            error = why,
            retry_in = ?pause,
            "listen = \"tailscale\": Tailscale has no address for this {} yet; waiting for tailscaled \
             (is it running and logged in? `tailscale status`)",
            self.daemon
        );
        tokio::time::sleep(pause).await;
    }
}

async fn bind_all(
    addrs: Vec<SocketAddr>,
    allow_public_bind: bool,
    daemon: &str,
) -> std::io::Result<Vec<TcpListener>> {
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
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} ({e}); is another process using it?"),
            )
        })?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Bounds on the connections a daemon serves: a client that opens many, or sends its request
/// slowly (or never), cannot take the daemon's file descriptors or memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; one more is answered 503 with `Retry-After` and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and to start the next request on a
    /// kept-alive connection; past it the connection is closed.
    pub header_timeout: Duration,
}

/// Serves `app` over plain HTTP on every listener until `shutdown` completes (or a listener
/// fails), then gives requests in flight up to `grace` to finish. Handlers can read the client's
/// address with `ConnectInfo<SocketAddr>`.
pub async fn serve(
    app: axum::Router,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    serve_with(app, listeners, None, shutdown, grace, limits).await
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`serve`], over HTTPS with `tls` (rustls).
pub async fn serve_tls(
    app: axum::Router,
    listeners: Vec<TcpListener>,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    serve_with(
        app,
        listeners,
        Some(TlsAcceptor::from(tls)),
        shutdown,
        grace,
        limits,
    )
    .await
}

async fn serve_with(
    app: axum::Router,
    listeners: Vec<TcpListener>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    raise_open_files(limits.max_connections as u64 * 2 + 256);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        servers.spawn(accept_loop(
            listener,
            app.clone(),
            tls.clone(),
            slots.clone(),
            limits,
            stop_rx.clone(),
        ));
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

/// Raises the soft limit on open files towards `want` (each connection is a descriptor, a proxied
/// stream two), up to the hard limit, so the connection cap, not the kernel's default of 1,024, is
/// what a flood of clients meets. A unit that sets `LimitNOFILE=` high enough needs no call.
fn raise_open_files(want: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let target = now.maximum.map_or(want, |max| max.min(want));
    if now.current.is_none_or(|current| current >= target) {
        return;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(open_files = target, "raised the open-file limit"),
        Err(e) => tracing::warn!(
            error = %e,
            want = target,
            "cannot raise the open-file limit; set LimitNOFILE= in the unit"
        ),
    }
}

/// Accepts connections on `listener` until `stop` changes, each served while it holds one of
/// `slots`; then waits for the connections (the caller bounds the wait).
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    slots: Arc<Semaphore>,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<()>,
) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
            // Reap finished connections as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or memory for a moment (EMFILE, ENFILE, ENOBUFS): the
                // listener is fine; try again shortly rather than spinning or giving up.
                tracing::warn!(error = %e, "cannot accept a connection; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream, limits.max_connections));
            continue;
        };
        let (app, tls, stop) = (app.clone(), tls.clone(), stop.clone());
        connections.spawn(async move {
            let _ = stream.set_nodelay(true);
            let Some(tls) = tls else {
                return serve_connection(stream, remote, app, limits, slot, stop).await;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, remote, app, limits, slot, stop).await,
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection<I>(
    stream: I,
    remote: SocketAddr,
    app: axum::Router,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
    mut stop: tokio::sync::watch::Receiver<()>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request.map(axum::body::Body::new)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
            return;
        }
        _ = stop.changed() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// Answers a connection over the cap with 503 and `Retry-After`, then closes it.
async fn refuse_busy(mut stream: tokio::net::TcpStream, max: usize) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_string(&fleetdeck_proto::ErrorBody::new(
        "too_many_connections",
        format!("this daemon serves at most {max} connections at once; retry shortly"),
    ))
    .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 5\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
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

#[cfg(test)]
mod wait_tests {
    use super::TailscaleWaits;
    use std::time::Duration;

    #[test]
    fn waits_for_tailscale_grow_to_half_a_minute() {
        let mut w = TailscaleWaits::new("agent");
        let pauses: Vec<Duration> = (0..7).map(|_| w.next_pause()).collect();
        let secs: Vec<u64> = pauses.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    }
}

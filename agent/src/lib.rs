//! fleetdeck-agent: reports one VM's apps and host to the collector over HTTP.
//!
//! [`config`] and [`listen`] decide what to watch and where to answer; [`systemd`], [`docker`] and
//! [`host`] read the sources; [`agent`] turns them into wire types, [`events`] into transitions and
//! [`ring`] into history; [`watch`] runs the sampler and watchers; [`api`] serves it all; [`serve`] runs it.

#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod checks;
pub mod config;
pub mod crash;
pub mod discover;
pub mod docker;
pub mod env_file;
pub mod events;
pub mod host;
pub mod journal;
pub mod requests;
pub mod ring;
pub mod run;
pub mod search;
pub mod sources;
pub mod systemd;
pub mod watch;

/// The bind policy, shared with the collector.
pub use fleetdeck_daemon::listen;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use agent::Agent;
pub use config::Config;

/// The connections the agent serves: its clients are a collector or two and a person's curl.
const LIMITS: fleetdeck_daemon::serve::Limits = fleetdeck_daemon::serve::Limits {
    max_connections: 256,
    header_timeout: std::time::Duration::from_secs(10),
};

/// How long a shutdown waits for requests in flight.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Serves the API on every listener until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    agent: Arc<Agent>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(api::AppState::new(agent));
    fleetdeck_daemon::serve::serve(app, listeners, shutdown, SHUTDOWN_GRACE, LIMITS).await
}

/// Like [`serve`], over HTTPS with `tls` (from the config's `tls_cert` and `tls_key`).
pub async fn serve_tls(
    agent: Arc<Agent>,
    listeners: Vec<TcpListener>,
    tls: Arc<fleetdeck_daemon::transport::server::RustlsServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(api::AppState::new(agent));
    fleetdeck_daemon::serve::serve_tls(app, listeners, tls, shutdown, SHUTDOWN_GRACE, LIMITS).await
}

//! fleetdeck-agent: reports one VM's apps and host to the collector over HTTP.
//!
//! [`config`] and [`listen`] decide what to watch and where to answer; [`systemd`], [`docker`] and
//! [`host`] read the sources; [`agent`] turns them into wire types, [`events`] into transitions and
//! [`ring`] into history; [`watch`] runs the sampler and watchers; [`api`] serves it all; [`serve`] runs it.

#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod config;
pub mod docker;
pub mod env_file;
pub mod events;
pub mod host;
pub mod journal;
pub mod ring;
pub mod run;
pub mod systemd;
pub mod watch;

/// The bind policy, shared with the collector.
pub use fleetdeck_daemon::listen;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use agent::Agent;
pub use config::Config;

/// How long a shutdown waits for requests in flight.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Serves the API on every listener until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    agent: Arc<Agent>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(api::AppState::new(agent));
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
    // Streams (events, log follows) never end by themselves: give ordinary requests a moment to
    // finish, then stop regardless.
    match tokio::time::timeout(SHUTDOWN_GRACE, servers.join_all()).await {
        Ok(results) => results
            .into_iter()
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ()),
        Err(_) => Ok(()),
    }
}

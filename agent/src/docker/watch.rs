//! Watching containers: the Docker API's event stream, filtered to the configured containers.
//! Each event calls back with the container's name, the event's action, its time (Unix ms) and,
//! for a `die`, the exit code it carries; the callback re-inspects it. The stream is opened with `since` = the agent's start, then the
//! last event seen, so events around the (re)connection are replayed, not lost.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures_util::StreamExt;

use super::DockerError;

/// Watches `containers` on the API at `socket` until the process ends, reconnecting with backoff.
/// The backoff starts again from its shortest once a stream has stayed open a while (`STABLE`), so
/// an engine restarted now and then (a Docker or podman upgrade) is not watched with the longest
/// delay, while one that answers pings but refuses events (a socket proxy) is not hammered.
///
/// When the engine cannot be reached (the connection fails, or the stream breaks rather than
/// ends), `on_down` hears why; the first pass after a reconnection re-reads every container,
/// which tells the agent the engine is back.
pub async fn watch_containers<F, Fut, D>(
    socket: String,
    containers: Vec<String>,
    since_unix_ms: u64,
    on_change: F,
    on_down: D,
) where
    F: Fn(String, String, u64, Option<i64>) -> Fut,
    Fut: Future<Output = ()>,
    D: Fn(String),
{
    const FIRST: Duration = Duration::from_millis(500);
    const STABLE: Duration = Duration::from_secs(10);
    let mut backoff = FIRST;
    let mut since = since_unix_ms;
    let mut failed = false;
    loop {
        let result = match connect(&socket).await {
            Ok(docker) => {
                if failed {
                    tracing::info!("Docker event watch is back");
                }
                failed = false;
                let opened = Instant::now();
                let watched = watch_once(&docker, &containers, &mut since, &on_change).await;
                if opened.elapsed() >= STABLE {
                    backoff = FIRST;
                }
                watched
            }
            Err(e) => {
                on_down(e.to_string());
                Err(e)
            }
        };
        if let Err(e) = result {
            failed = true;
            tracing::warn!(error = %e, retry_in = ?backoff, "Docker event watch failed; container changes are seen by polling until it is back");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// A client of the API at `socket` that has answered a ping.
async fn connect(socket: &str) -> Result<Docker, DockerError> {
    // The event stream stays open for as long as the agent runs: no request timeout on it.
    let forever = super::FOREVER.as_secs();
    let docker = if socket.starts_with("unix://") {
        Docker::connect_with_unix(socket, forever, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(socket, forever, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|source| DockerError::Connect {
        socket: socket.to_owned(),
        source,
    })?;
    // Bounded, unlike the stream: an engine that accepts but does not answer is retried.
    tokio::time::timeout(
        Duration::from_secs(super::REQUEST_TIMEOUT_SECS),
        docker.ping(),
    )
    .await
    .map_err(|_| DockerError::Connect {
        socket: socket.to_owned(),
        source: bollard::errors::Error::RequestTimeoutError,
    })?
    .map_err(|e| super::call_failed(socket, e))?;
    Ok(docker)
}

async fn watch_once<F, Fut>(
    docker: &Docker,
    containers: &[String],
    since: &mut u64,
    on_change: &F,
) -> Result<(), DockerError>
where
    F: Fn(String, String, u64, Option<i64>) -> Fut,
    Fut: Future<Output = ()>,
{
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("container".to_owned(), containers.to_vec()),
    ]);
    let mut events = docker.events(Some(EventsOptions {
        // Whole seconds: a replayed event is harmless (its app is re-read).
        since: Some((*since / 1000).to_string()),
        until: None,
        filters: Some(filters),
    }));
    tracing::debug!(containers = containers.len(), "watching Docker events");
    // Anything that changed before the stream was open is caught by this first pass.
    for c in containers {
        on_change(c.clone(), String::new(), crate::agent::unix_ms_now(), None).await;
    }
    while let Some(event) = events.next().await {
        let event = event.map_err(DockerError::Call)?;
        let attributes = event.actor.as_ref().and_then(|a| a.attributes.as_ref());
        let name = attributes.and_then(|a| a.get("name"));
        // Docker names it `exitCode`, podman `containerExitCode`.
        let exit = attributes
            .and_then(|a| a.get("exitCode").or_else(|| a.get("containerExitCode")))
            .and_then(|code| code.parse().ok());
        // By exact name: the engine's own filter also matches ID prefixes of other containers.
        let hit = containers.iter().find(|c| Some(*c) == name);
        let at = event
            .time_nano
            .map(|ns| ns / 1_000_000)
            .or(event.time.map(|s| s * 1000))
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or_else(crate::agent::unix_ms_now);
        *since = (*since).max(at);
        if let Some(container) = hit {
            on_change(
                container.clone(),
                event.action.clone().unwrap_or_default(),
                at,
                exit,
            )
            .await;
        }
    }
    Err(DockerError::Call(
        bollard::errors::Error::DockerStreamError {
            error: "the event stream ended".into(),
        },
    ))
}

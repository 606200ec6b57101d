//! The agent's background work: the sampler that fills the ring buffer every `sample_interval`,
//! and the watchers that turn systemd signals and Docker events into immediate status reads.

use std::sync::Arc;

use fleetdeck_proto::{AppKind, EventSource, Exit};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::docker::watch::watch_containers;
use crate::systemd::watch::watch_units;
use crate::Agent;

/// A watcher's reads run on tasks of their own, this many at once at most: a crash's context may
/// hold a read up to 2 s, which must not hold back the signals of other apps (a crash storm).
const CONCURRENT_REFRESHES: usize = 32;

/// Reads `app` on a task of its own, once one of `limit`'s slots is free (the watcher waits
/// for it: backpressure instead of unbounded tasks).
async fn spawn_refresh(agent: Arc<Agent>, limit: Arc<Semaphore>, app: String, source: EventSource) {
    let Ok(permit) = limit.acquire_owned().await else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        agent.refresh(&app, source).await;
    });
}

/// Starts the sampler, discovery and the watchers; they run until the returned set is dropped.
pub fn spawn(agent: Arc<Agent>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(sample_forever(agent.clone()));
    tasks.spawn(crate::discover::discover_forever(agent.clone()));
    tasks.spawn(watch_apps_forever(agent));
    tasks
}

/// Runs the watchers and checks of the apps watched now, and starts them anew each time those
/// change (a reload, a discovery pass). The new watchers start before the old ones stop, so no
/// signal falls between them (one seen twice is only read twice); the Docker watch of the new
/// set replays events from a moment before the change.
async fn watch_apps_forever(agent: Arc<Agent>) {
    let mut changes = agent.watched_changes();
    let mut since = agent.info().started_unix_ms;
    loop {
        changes.borrow_and_update();
        let watched = agent.watched();
        let running = watch_apps(&agent, &watched, since);
        if changes.changed().await.is_err() {
            // The agent is gone: nothing left to watch.
            return;
        }
        since = crate::agent::unix_ms_now().saturating_sub(REPLAY_MS);
        drop(running);
    }
}

/// How far back the Docker watch of a new app set replays events.
const REPLAY_MS: u64 = 2_000;

/// Starts the watchers and checks of `watched`; they run until the returned set is dropped.
fn watch_apps(agent: &Arc<Agent>, watched: &crate::agent::Watched, since: u64) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    crate::checks::spawn(&mut tasks, agent, watched);

    let units = watched.units();
    if !units.is_empty() {
        let a = agent.clone();
        let scope = agent.config().systemd;
        let names = units.iter().map(|(u, _)| u.clone()).collect();
        let down = agent.clone();
        let limit = Arc::new(Semaphore::new(CONCURRENT_REFRESHES));
        tasks.spawn(watch_units(
            scope,
            names,
            move |unit, died| {
                let (a, limit) = (a.clone(), limit.clone());
                let apps = apps_on(&units, &unit);
                async move {
                    for app in apps {
                        if let Some((exit, at)) = died {
                            a.note_death(&app, exit, at);
                        }
                        spawn_refresh(a.clone(), limit.clone(), app, EventSource::Systemd).await;
                    }
                }
            },
            move |error| down.note_source(AppKind::Systemd, Some(error)),
        ));
    }

    let containers = watched.containers();
    if !containers.is_empty() {
        let a = agent.clone();
        let socket = agent.config().docker_socket.clone();
        let names = containers.iter().map(|(c, _)| c.clone()).collect();
        let down = agent.clone();
        let limit = Arc::new(Semaphore::new(CONCURRENT_REFRESHES));
        tasks.spawn(watch_containers(
            socket,
            names,
            since,
            move |container, action, at, exit| {
                let (a, limit) = (a.clone(), limit.clone());
                let apps = apps_on(&containers, &container);
                async move {
                    // In order, before the read: the read tells a stop on purpose by it.
                    a.docker_lifecycle(&container, &action, at).await;
                    // Docker tells a signal N as 128 + N, like inspect.
                    let died = exit
                        .filter(|_| matches!(action.as_str(), "die" | "died"))
                        .and_then(|code| i32::try_from(code).ok());
                    for app in apps {
                        if let Some(code) = died {
                            a.note_death(&app, Exit::Code(code), at);
                        }
                        spawn_refresh(a.clone(), limit.clone(), app, EventSource::Docker).await;
                    }
                }
            },
            move |error| down.note_source(AppKind::Docker, Some(error)),
        ));
    }
    tasks
}

fn apps_on(targets: &[(String, String)], target: &str) -> Vec<String> {
    targets
        .iter()
        .filter(|(t, _)| t == target)
        .map(|(_, app)| app.clone())
        .collect()
}

async fn sample_forever(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(agent.config().sample_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = agent.record_sample().await {
            // /proc unreadable for a moment: this sample is skipped, the next tick tries again.
            tracing::warn!(error = %e, "cannot record a sample");
        }
    }
}

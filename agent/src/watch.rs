//! The agent's background work: the sampler that fills the ring buffer every `sample_interval`,
//! and the watchers that turn systemd signals and Docker events into immediate status reads.

use std::sync::Arc;

use fleetdeck_proto::{AppKind, EventSource};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::AppSource;
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

/// Starts the sampler and the watchers; they run until the returned set is dropped.
pub fn spawn(agent: Arc<Agent>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(sample_forever(agent.clone()));
    crate::checks::spawn(&mut tasks, &agent);

    let units = targets(&agent, |s| match s {
        AppSource::SystemdUnit(u) => Some(u),
        AppSource::DockerContainer(_) => None,
    });
    if !units.is_empty() {
        let a = agent.clone();
        let scope = agent.config().systemd;
        let names = units.iter().map(|(u, _)| u.clone()).collect();
        let down = agent.clone();
        let limit = Arc::new(Semaphore::new(CONCURRENT_REFRESHES));
        tasks.spawn(watch_units(
            scope,
            names,
            move |unit| {
                let (a, limit) = (a.clone(), limit.clone());
                let apps = apps_on(&units, &unit);
                async move {
                    for app in apps {
                        spawn_refresh(a.clone(), limit.clone(), app, EventSource::Systemd).await;
                    }
                }
            },
            move |error| down.note_source(AppKind::Systemd, Some(error)),
        ));
    }

    let containers = targets(&agent, |s| match s {
        AppSource::DockerContainer(c) => Some(c),
        AppSource::SystemdUnit(_) => None,
    });
    if !containers.is_empty() {
        let a = agent.clone();
        let socket = agent.config().docker_socket.clone();
        let names = containers.iter().map(|(c, _)| c.clone()).collect();
        let since = agent.info().started_unix_ms;
        let down = agent.clone();
        let limit = Arc::new(Semaphore::new(CONCURRENT_REFRESHES));
        tasks.spawn(watch_containers(
            socket,
            names,
            since,
            move |container, action, at| {
                let (a, limit) = (a.clone(), limit.clone());
                let apps = apps_on(&containers, &container);
                async move {
                    // In order, before the read: the read tells a stop on purpose by it.
                    a.docker_lifecycle(&container, &action, at).await;
                    for app in apps {
                        spawn_refresh(a.clone(), limit.clone(), app, EventSource::Docker).await;
                    }
                }
            },
            move |error| down.note_source(AppKind::Docker, Some(error)),
        ));
    }
    tasks
}

/// (target, app) pairs for the sources `select` picks: a watcher calls back with the unit or
/// container name, which these map to the app(s) configured on it.
fn targets(agent: &Agent, select: impl Fn(&AppSource) -> Option<&String>) -> Vec<(String, String)> {
    agent
        .config()
        .apps
        .iter()
        .filter_map(|a| select(&a.source).map(|t| (t.clone(), a.name.to_string())))
        .collect()
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

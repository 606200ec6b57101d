//! The demo's past: `days` of the simulated fleet stored through the collector's own ingest
//! before it starts serving, so a newcomer's first look at charts, uptime bars, the event log and
//! the alerts shows what they are for. A poll every [`STEP_MS`] (the host's figures as the
//! simulator computes them for that time, each app's state), a few incidents (an app failing for
//! 20 to 60 minutes), then the rollups; each incident's alerts are those the collector's own alert
//! rules raise for it (its problem and its recovery), stored in the alert history.

use anyhow::Context;
use fleetdeck_proto::{AppState, Exit};
use fleetdeck_sim::Sim;

use crate::alerting::rules::{AlertPolicy, Aspect, Detail, Health, Rules, Transition};
use crate::alerting::AlertLog;
use crate::config::Retention;
use crate::store::ingest::{self, Polled};
use crate::store::{rollup, Store};

/// Days of history `--demo` stores unless told otherwise.
pub const DEFAULT_DAYS: u64 = 30;
/// Time between two stored polls of a host.
pub const STEP_MS: u64 = 10 * 60_000;
const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// One app failing for a while in the past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    pub app: usize,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Host `host`'s incidents over `days` before `now`: about half its apps fail once, for 20 to 60
/// minutes at a time of day of their own; the first host's first app also failed two days ago.
/// Deterministic, and never within the last hour (the live fleet takes over from there).
pub fn incidents(host: usize, apps: usize, days: u64, now: u64) -> Vec<Incident> {
    if days < 2 {
        return Vec::new();
    }
    let midnight = now - now % DAY_MS;
    let mut out: Vec<Incident> = (0..apps)
        .filter(|app| (host + app).is_multiple_of(2))
        .map(|app| {
            let (h, a) = (host as u64, app as u64);
            let days_ago = 1 + (h * 7 + a * 11) % (days - 1);
            let start = midnight - days_ago * DAY_MS + ((h * 5 + a * 3) % 24) * HOUR_MS;
            Incident {
                app,
                start_ms: start,
                end_ms: start + (2 + (h + a) % 5) * STEP_MS,
            }
        })
        .collect();
    if host == 0 && apps > 0 {
        let start = midnight - 2 * DAY_MS + 14 * HOUR_MS;
        out.push(Incident {
            app: 0,
            start_ms: start,
            end_ms: start + 3 * STEP_MS,
        });
    }
    out.retain(|i| i.end_ms + HOUR_MS < now);
    out
}

/// App `app`'s state at `t`, with since when and its last exit, given its incidents and the start
/// of the history.
fn state_at(
    incidents: &[Incident],
    app: usize,
    t: u64,
    from: u64,
) -> (AppState, u64, Option<Exit>) {
    let mine = incidents.iter().filter(|i| i.app == app);
    if let Some(i) = mine.clone().find(|i| i.start_ms <= t && t < i.end_ms) {
        return (AppState::Failed, i.start_ms, Some(Exit::Code(1)));
    }
    let since = mine
        .filter(|i| i.end_ms <= t)
        .map(|i| i.end_ms)
        .max()
        .unwrap_or(from);
    (AppState::Running, since, None)
}

/// Stores `days` of history of every host of `sim`, registered under `agents` (name, URL, as the
/// collector's config has them); ends an hour before `now`.
pub async fn seed(
    store: &Store,
    sim: &Sim,
    agents: Vec<(String, String)>,
    days: u64,
    now: u64,
) -> anyhow::Result<()> {
    if days == 0 {
        return Ok(());
    }
    let hosts: Vec<String> = agents.iter().map(|(name, _)| name.clone()).collect();
    let cursors = store
        .write(move |ctx| ingest::register_agents(ctx, &agents))
        .await
        .context("cannot register the demo's hosts")?;
    let from = now - now % STEP_MS - days * DAY_MS;
    let until = now - HOUR_MS;
    for (host, cursor) in cursors.into_iter().enumerate() {
        let apps = sim.app_names(host).len();
        let incidents = incidents(host, apps, days, now);
        let mut seq = 0;
        let mut day_start = from;
        while day_start < until {
            let day_end = (day_start + DAY_MS).min(until);
            let mut polls = Vec::new();
            let mut t = day_start;
            while t < day_end {
                seq += 1;
                let states: Vec<_> = (0..apps)
                    .map(|app| state_at(&incidents, app, t, from))
                    .collect();
                if let Some((snapshot, sample)) = sim.past(host, t, seq, &states) {
                    polls.push((
                        t,
                        Polled {
                            snapshot,
                            samples_instance: format!("history-{}", cursor.name),
                            samples: vec![sample],
                            info: None,
                        },
                    ));
                }
                t += STEP_MS;
            }
            let (id, name) = (cursor.id, cursor.name.clone());
            store
                .write(move |ctx| {
                    for (t, polled) in polls {
                        ingest::apply_poll(ctx, id, &name, polled, t)?;
                    }
                    Ok(())
                })
                .await
                .with_context(|| format!("cannot store the history of {}", cursor.name))?;
            day_start = day_end;
        }
    }
    store
        .with_conn(move |conn| rollup::run(conn, now, &Retention::default()))
        .await
        .context("cannot roll the history up")?;
    let alerts = incident_alerts(sim, &hosts, days, now);
    let log = store.clone();
    tokio::task::spawn_blocking(move || {
        for alert in &alerts {
            log.record(alert).map_err(anyhow::Error::msg)?;
        }
        anyhow::Ok(())
    })
    .await
    .context("the history's alerts were not stored")?
    .context("cannot store the history's alerts")?;
    Ok(())
}

/// The alerts the collector's rules (default policy) raise for every host's incidents: each
/// incident's problem once its grace has passed, and its recovery.
fn incident_alerts(
    sim: &Sim,
    hosts: &[String],
    days: u64,
    now: u64,
) -> Vec<crate::alerting::rules::Alert> {
    let mut rules = Rules::new(AlertPolicy::default());
    let mut out = Vec::new();
    let mut all: Vec<(usize, Incident)> = hosts
        .iter()
        .enumerate()
        .flat_map(|(h, _)| {
            incidents(h, sim.app_names(h).len(), days, now)
                .into_iter()
                .map(move |i| (h, i))
        })
        .collect();
    all.sort_by_key(|(_, i)| i.start_ms);
    let transition = |host: &str, app: &str, failed: bool, at_ms: u64| Transition {
        host: host.to_owned(),
        app: Some(app.to_owned()),
        state: if failed { "failed" } else { "running" }.to_owned(),
        health: if failed { Health::Problem } else { Health::Ok },
        exit: failed.then_some(Exit::Code(1)),
        at_ms,
        aspect: Aspect::State,
        severity: fleetdeck_proto::Severity::Critical,
        detail: Detail::default(),
    };
    for (h, incident) in all {
        let (host, app) = (&hosts[h], &sim.app_names(h)[incident.app]);
        // Running before: the rules know the subject, so its failure is a change.
        out.extend(rules.observe(&transition(host, app, false, incident.start_ms - STEP_MS)));
        out.extend(rules.observe(&transition(host, app, true, incident.start_ms)));
        out.extend(rules.tick(incident.end_ms - 1));
        out.extend(rules.observe(&transition(host, app, false, incident.end_ms)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn incidents_are_few_bounded_and_in_the_past() {
        let all: Vec<Incident> = (0..6).flat_map(|h| incidents(h, 4, 30, NOW)).collect();
        assert!((10..=14).contains(&all.len()), "{}", all.len());
        for i in &all {
            assert!(
                i.start_ms >= NOW - 31 * DAY_MS && i.end_ms + HOUR_MS < NOW,
                "{i:?}"
            );
            let minutes = (i.end_ms - i.start_ms) / 60_000;
            assert!((20..=60).contains(&minutes), "{minutes}");
        }
        assert_eq!(
            incidents(3, 4, 30, NOW),
            incidents(3, 4, 30, NOW),
            "deterministic"
        );
        assert!(
            incidents(0, 4, 1, NOW).is_empty(),
            "no history, no incident"
        );
    }

    #[test]
    fn an_app_is_failed_inside_its_incident_and_running_since_its_end() {
        let i = Incident {
            app: 1,
            start_ms: 10 * STEP_MS,
            end_ms: 13 * STEP_MS,
        };
        let from = 0;
        assert_eq!(
            state_at(&[i], 1, 5 * STEP_MS, from),
            (AppState::Running, 0, None)
        );
        assert_eq!(
            state_at(&[i], 1, 11 * STEP_MS, from),
            (AppState::Failed, 10 * STEP_MS, Some(Exit::Code(1)))
        );
        assert_eq!(
            state_at(&[i], 1, 13 * STEP_MS, from),
            (AppState::Running, 13 * STEP_MS, None)
        );
        assert_eq!(
            state_at(&[i], 0, 11 * STEP_MS, from),
            (AppState::Running, 0, None)
        );
    }
}

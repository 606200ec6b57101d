//! Endpoint checks (`[[apps.checks]]`): one tokio task per check runs it every interval; the
//! last result of each is kept here for snapshots and samples, and a pass↔fail change (or a
//! first result that fails) becomes a `check` event on `/v1/events` the moment it happens.

pub mod cert;
pub mod config;
pub mod probe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fleetdeck_proto::{AppStatus, CheckResult, CheckSample};
use tokio::task::JoinSet;

use crate::Agent;
use probe::{Outcome, Prober};

/// Failed runs in a row that make an app degraded.
pub const DEGRADED_AFTER: u32 = 2;

/// The last result of every check, by app, in config order (`None`: not run yet).
#[derive(Debug, Default)]
pub struct Checks {
    results: Mutex<HashMap<String, Vec<Option<CheckResult>>>>,
}

impl Checks {
    pub fn new(apps: &[crate::config::AppConfig]) -> Self {
        let results = apps
            .iter()
            .map(|a| (a.name.to_string(), vec![None; a.checks.len()]))
            .collect();
        Self {
            results: Mutex::new(results),
        }
    }

    /// Keeps the results of the apps in `after` whose checks are those they had in `before`;
    /// a new or changed app starts with no results.
    pub fn keep(&self, before: &[crate::config::AppConfig], after: &[crate::config::AppConfig]) {
        let mut all = self.lock();
        let mut next = HashMap::new();
        for app in after {
            let name = app.name.to_string();
            let same = before
                .iter()
                .any(|b| b.name == app.name && b.checks == app.checks);
            let results = match all.remove(&name) {
                Some(results) if same => results,
                _ => vec![None; app.checks.len()],
            };
            next.insert(name, results);
        }
        *all = next;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Option<CheckResult>>>> {
        // Each update is one assignment: a panic elsewhere cannot leave it half-done.
        self.results.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts the app's check results (those that ran, in config order) and `degraded` into its
    /// status.
    pub fn fill(&self, status: &mut AppStatus) {
        status.checks = self
            .lock()
            .get(&status.name)
            .map(|v| v.iter().flatten().cloned().collect())
            .unwrap_or_default();
        status.degraded = status
            .checks
            .iter()
            .any(|c| c.consecutive_failures >= DEGRADED_AFTER);
    }

    /// Stores a run's outcome; returns the result, and whether it is a change to report (pass to
    /// fail, fail to pass, or a first result that fails).
    fn record(
        &self,
        app: &str,
        index: usize,
        prober: &Prober,
        outcome: Outcome,
        at_unix_ms: u64,
    ) -> (CheckResult, bool) {
        let mut all = self.lock();
        let slots = all.entry(app.to_owned()).or_default();
        if slots.len() <= index {
            // Made from the same config, so never short; grow rather than panic if it were.
            slots.resize(index + 1, None);
        }
        let slot = &mut slots[index];
        let before = slot.as_ref().map(|r| (r.ok, r.consecutive_failures));
        let config = prober.config();
        let result = CheckResult {
            name: config.name.clone(),
            kind: config.kind(),
            target: config.target_shown(),
            ok: outcome.ok,
            consecutive_failures: if outcome.ok {
                0
            } else {
                before.map_or(0, |(_, n)| n).saturating_add(1)
            },
            status_code: outcome.status_code,
            latency_ms: outcome.latency_ms,
            error: outcome.error,
            cert_not_after_unix_ms: outcome.cert_not_after_unix_ms,
            checked_unix_ms: at_unix_ms,
        };
        let changed = match before {
            None => !result.ok,
            Some((ok, _)) => ok != result.ok,
        };
        *slot = Some(result.clone());
        (result, changed)
    }
}

/// A sample's view of a check.
pub fn sample_of(result: &CheckResult) -> CheckSample {
    CheckSample {
        name: result.name.clone(),
        ok: result.ok,
        latency_ms: result.latency_ms.map(|l| l as f32),
    }
}

/// Starts one task per check of the `watched` apps; they run until `tasks` is dropped.
pub fn spawn(tasks: &mut JoinSet<()>, agent: &Arc<Agent>, watched: &crate::agent::Watched) {
    for app in &watched.apps {
        for (index, config) in app.checks.iter().enumerate() {
            let prober = Prober::new(config.clone());
            tasks.spawn(run_forever(
                agent.clone(),
                app.name.to_string(),
                index,
                prober,
            ));
        }
    }
}

async fn run_forever(agent: Arc<Agent>, app: String, index: usize, prober: Prober) {
    let (checks, events) = (agent.checks(), agent.events());
    let mut ticks = tokio::time::interval(prober.config().interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = prober.run().await;
        let at = crate::agent::unix_ms_now();
        let (result, changed) = checks.record(&app, index, &prober, outcome, at);
        if changed {
            // The app and check name only: the URL may carry secrets.
            if result.ok {
                tracing::info!(app = %app, check = %result.name, "check passes again");
            } else {
                tracing::warn!(app = %app, check = %result.name, error = result.error.as_deref().unwrap_or(""), "check fails");
            }
            events.record_check(&app, result, at);
        }
    }
}

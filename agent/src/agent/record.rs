//! Recording a fresh status: whether the transition it makes was asked for, and when it ends a
//! process nobody asked to end, the crash's context (exit, OOM, memory before, last lines).

use fleetdeck_proto::{AppState, AppStatus, CrashContext, EventSource};

use super::{Agent, DockerSource, Journal};
use crate::config::{AppConfig, AppSource};
use crate::events::{Extra, Pending};

/// What an app's last readings showed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    memory_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
    restarts: Option<u64>,
}

impl Agent {
    /// Records a fresh status of `app` read at ticket `ticket`: a transition becomes an event,
    /// marked `requested` while an action on the app is under way, and carrying a crash's
    /// context when it ends a process nobody asked to end (read within [`crate::crash::DEADLINE`]).
    pub(super) async fn record(
        &self,
        app: &AppConfig,
        status: &AppStatus,
        source: EventSource,
        at_unix_ms: u64,
        ticket: u64,
    ) {
        let requested = self.requests.in_flight(&status.name);
        let seen = self
            .lock_seen()
            .get(&status.name)
            .copied()
            .unwrap_or_default();
        let crash = match self.events.pending(status) {
            Some(p) if !requested && is_crash(&p, status, seen.restarts) => {
                Some(self.crash_context(app, status, &p, seen).await)
            }
            _ => None,
        };
        self.events.observe_read_with(
            status,
            source,
            at_unix_ms,
            ticket,
            Extra { requested, crash },
        );
        if status.state != AppState::Unknown {
            let mut all = self.lock_seen();
            let s = all.entry(status.name.clone()).or_default();
            if status.memory_bytes.is_some() {
                s.memory_bytes = status.memory_bytes;
            }
            if let Some(limit) = memory_limit(status) {
                s.memory_limit_bytes = Some(limit);
            }
            if status.restarts.is_some() {
                s.restarts = status.restarts;
            }
        }
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Seen>> {
        // Every update is one assignment.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the agent can tell about a process that just ended.
    async fn crash_context(
        &self,
        app: &AppConfig,
        status: &AppStatus,
        pending: &Pending,
        seen: Seen,
    ) -> CrashContext {
        let oom_killed = status
            .systemd
            .as_ref()
            .is_some_and(|s| s.result.as_deref() == Some("oom-kill"))
            || status.docker.as_ref().is_some_and(|d| d.oom_killed);
        let (last_lines, lines_error) = match &app.source {
            AppSource::SystemdUnit(unit) => {
                // A failed unit keeps the dead run's id; after a restart it is the one before.
                let invocation = if status.state == AppState::Running {
                    pending.previous_run.clone()
                } else {
                    status
                        .systemd
                        .as_ref()
                        .and_then(|s| s.invocation_id.clone())
                        .or_else(|| pending.previous_run.clone())
                };
                // Without invocation ids in the journal: the unit's lines up to the moment it
                // entered this state (a failed unit writes no more; a restarted one may).
                let until = match status.state {
                    AppState::Failed => None,
                    _ => status.since_unix_ms,
                };
                let (journal, unit) = (self.journal, unit.clone());
                self.crash_lines
                    .read(async move {
                        run_lines(journal, &unit, invocation.as_deref(), until).await
                    })
                    .await
            }
            AppSource::DockerContainer(c) => {
                let finished = status.docker.as_ref().and_then(|d| d.finished_unix_ms);
                match (finished, self.docker.client().await) {
                    (Some(until), Ok(docker)) => {
                        let c = c.clone();
                        self.crash_lines
                            .read(async move {
                                DockerSource::lines_until(
                                    docker,
                                    &c,
                                    until,
                                    crate::crash::MAX_LINES,
                                )
                                .await
                                .map_err(|e| e.to_string())
                            })
                            .await
                    }
                    (None, _) => (
                        Vec::new(),
                        Some(
                            "the engine reported no finish time for the run that ended".to_owned(),
                        ),
                    ),
                    (_, Err(e)) => (Vec::new(), Some(e.to_string())),
                }
            }
        };
        CrashContext {
            // After a restart the status is the new run's: its exit is not the crash's.
            exit: if status.state == AppState::Running {
                None
            } else {
                status.last_exit
            },
            oom_killed,
            memory_bytes: seen.memory_bytes,
            memory_limit_bytes: memory_limit(status).or(seen.memory_limit_bytes),
            last_lines,
            lines_error,
        }
    }
}

/// Whether a transition ends a process nobody asked to end: a failure, a crash loop, or a
/// restart by the restart policy (its restart count went up) even if it already runs again,
/// whatever passing state the agent saw in between (podman may show `stopping`). Running again
/// after a failure or crash loop is not a second crash: that one was reported when it ended.
fn is_crash(pending: &Pending, status: &AppStatus, restarts_before: Option<u64>) -> bool {
    match status.state {
        AppState::Failed | AppState::CrashLooping => true,
        AppState::Running => {
            !matches!(pending.from, AppState::Failed | AppState::CrashLooping)
                && matches!((restarts_before, status.restarts), (Some(b), Some(n)) if n > b)
        }
        _ => false,
    }
}

fn memory_limit(status: &AppStatus) -> Option<u64> {
    status
        .docker
        .as_ref()
        .and_then(|d| d.memory_limit_bytes)
        .or_else(|| status.systemd.as_ref().and_then(|s| s.memory_limit_bytes))
}

/// The last lines of a unit's run that ended. journald may still be writing the process's
/// final output when its exit is seen: an empty answer is asked again until half the deadline.
async fn run_lines(
    journal: Journal,
    unit: &str,
    invocation: Option<&str>,
    until: Option<u64>,
) -> Result<Vec<String>, String> {
    let started = std::time::Instant::now();
    loop {
        let lines = journal
            .run_lines(unit, invocation, until, crate::crash::MAX_LINES)
            .await
            .map_err(|e| e.to_string())?;
        if !lines.is_empty() || started.elapsed() > crate::crash::DEADLINE / 2 {
            return Ok(lines);
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_proto::AppKind;

    fn status(state: AppState, restarts: Option<u64>) -> AppStatus {
        AppStatus {
            name: "web".into(),
            kind: AppKind::Systemd,
            target: "web.service".into(),
            state,
            since_unix_ms: None,
            last_exit: None,
            restarts,
            memory_bytes: None,
            error: None,
            systemd: None,
            docker: None,
            expect: fleetdeck_proto::Expect::Running,
            stopped_by_request: false,
            checks: Vec::new(),
            degraded: false,
        }
    }

    fn pending(from: AppState, restarted: bool) -> Pending {
        Pending {
            from,
            previous_run: None,
            restarted,
        }
    }

    #[test]
    fn which_transitions_are_crashes() {
        let running = AppState::Running;
        assert!(is_crash(
            &pending(running, false),
            &status(AppState::Failed, None),
            None
        ));
        assert!(is_crash(
            &pending(running, false),
            &status(AppState::CrashLooping, None),
            None
        ));
        // Restarted by its policy (the count went up): a blip.
        assert!(is_crash(
            &pending(running, true),
            &status(running, Some(3)),
            Some(2)
        ));
        // Seen passing through another state on the way back.
        assert!(is_crash(
            &pending(AppState::Stopping, false),
            &status(running, Some(1)),
            Some(0)
        ));
        // Restarted by someone (`systemctl restart` resets NRestarts; Docker does not count it).
        assert!(!is_crash(
            &pending(running, true),
            &status(running, Some(0)),
            Some(2)
        ));
        assert!(!is_crash(
            &pending(running, true),
            &status(running, Some(2)),
            Some(2)
        ));
        // A clean stop, a start.
        assert!(!is_crash(
            &pending(running, false),
            &status(AppState::Stopped, None),
            None
        ));
        assert!(!is_crash(
            &pending(AppState::Failed, false),
            &status(running, Some(1)),
            Some(0)
        ));
    }
}

//! Recording a fresh status: whether the transition it makes was asked for, and when it ends a
//! process nobody asked to end, the crash's context (exit, OOM, memory before, last lines).

use fleetdeck_proto::{AppState, AppStatus, CrashContext, EventSource, Exit};

use super::{Agent, DockerSource, Journal};
use crate::config::{AppConfig, AppSource};
use crate::events::{Extra, Pending};

/// What an app's last readings showed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    memory_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
    restarts: Option<u64>,
    /// The kernel's count of OOM kills (`/proc/vmstat` `oom_kill`) at a read of the app running
    /// at least [`OOM_BASELINE_AGE`] before its latest one (`oom_latest`): a read that came
    /// after the kill but before the engine noticed it must not hide the kill.
    oom_baseline: Option<(u64, std::time::Instant)>,
    oom_latest: Option<(u64, std::time::Instant)>,
    /// When the run it was last read running in started (Unix ms): a death of that run came
    /// after it.
    running_since: Option<u64>,
    /// Its process's latest death its source told of, as it happened: (exit, Unix ms). A run
    /// restarted by its policy is running again before anyone reads it, and a read then shows the
    /// new run (podman even zeroes the exit code): a healed crash's exit is this.
    death: Option<(Exit, u64)>,
}

/// How long a crash found healed waits for its source's word of the death (a Docker `die`
/// event, systemd's change signal) when a read beat it; the wait runs beside the read of the
/// last lines, which takes longer.
const DEATH_WAIT: std::time::Duration = std::time::Duration::from_millis(700);

/// How much older than the latest running read the OOM-kill baseline is (see [`Seen`]).
const OOM_BASELINE_AGE: std::time::Duration = std::time::Duration::from_secs(5);

impl Seen {
    /// Notes the kernel's OOM-kill count `count` at a read of the app running at `now`.
    fn running_read(&mut self, count: u64, now: std::time::Instant) {
        match self.oom_latest {
            Some((_, at)) if now.duration_since(at) < OOM_BASELINE_AGE => {}
            latest => {
                self.oom_baseline = latest.or(Some((count, now)));
                self.oom_latest = Some((count, now));
            }
        }
    }
}

/// The kernel's count of OOM kills since boot (`oom_kill` in `/proc/vmstat`, Linux 4.13+).
fn kernel_oom_kills() -> Option<u64> {
    parse_oom_kills(&std::fs::read_to_string("/proc/vmstat").ok()?)
}

fn parse_oom_kills(vmstat: &str) -> Option<u64> {
    vmstat
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// Whether the kernel's OOM killer ended the process: the engine or systemd says so, or (for
/// engines that do not notice, such as podman with runc on cgroup v1) it died of SIGKILL while
/// the kernel's OOM-kill count went up since the baseline of its running reads (5-10 s before
/// the last one). Another process's OOM kill in those seconds beside a `kill -9` of this app
/// would be taken for this app's (rare; `CrashContext::oom_killed` says how it is told).
fn oom_killed(status: &AppStatus, exit: Option<Exit>, seen: &Seen, kills_now: Option<u64>) -> bool {
    let says = status
        .systemd
        .as_ref()
        .is_some_and(|s| s.result.as_deref() == Some("oom-kill"))
        || status.docker.as_ref().is_some_and(|d| d.oom_killed);
    let sigkill = matches!(exit, Some(Exit::Signal(9) | Exit::Code(137)));
    let counted =
        matches!((seen.oom_baseline, kills_now), (Some((before, _)), Some(now)) if now > before);
    says || (sigkill && counted)
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
            if status.state == AppState::Running {
                s.running_since = status.since_unix_ms.or(s.running_since);
                if let Some(count) = kernel_oom_kills() {
                    s.running_read(count, std::time::Instant::now());
                }
            }
        }
    }

    /// Drops what is kept per app of apps `next` no longer watches.
    pub(super) fn forget_unwatched(&self, next: &super::Watched) {
        self.lock_seen().retain(|name, _| next.app(name).is_some());
        self.events.retain_apps(|name| next.app(name).is_some());
    }

    /// Notes that `app`'s process died with `exit` at `at_unix_ms`, as its source told it (a
    /// Docker `die` event, systemd's exit status in its change signal).
    pub fn note_death(&self, app: &str, exit: Exit, at_unix_ms: u64) {
        // Only watched apps: the map stays bounded by them. Asked before the map is locked: a
        // change of the watched apps locks them in the other order.
        if self.app_config(app).is_none() {
            return;
        }
        let mut all = self.lock_seen();
        let s = all.entry(app.to_owned()).or_default();
        // Events can be replayed out of date: the latest death stays.
        if s.death.is_none_or(|(_, at)| at_unix_ms >= at) {
            s.death = Some((exit, at_unix_ms));
        }
        drop(all);
        self.deaths.notify_waiters();
    }

    /// The exit of `app`'s death told since the run it was last read in started
    /// (`running_since`), waiting up to [`DEATH_WAIT`] for the word of it: a read can see the
    /// run its restart policy started before the source's report of the death arrives.
    async fn death_since(&self, app: &str, running_since: Option<u64>) -> Option<Exit> {
        let deadline = tokio::time::Instant::now() + DEATH_WAIT;
        loop {
            let woken = self.deaths.notified();
            tokio::pin!(woken);
            // Registered before the look, so a death noted in between still wakes it.
            woken.as_mut().enable();
            let death = self.lock_seen().get(app).and_then(|s| s.death);
            if let Some((exit, _)) =
                death.filter(|&(_, at)| running_since.is_none_or(|since| at >= since))
            {
                return Some(exit);
            }
            tokio::time::timeout_at(deadline, woken).await.ok()?;
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
        // After a restart (or while the next run starts) the status is the new run's: the
        // crash's exit is then the death its source told of since the dead run started.
        let exit = async {
            let read = status
                .last_exit
                .filter(|_| status.state != AppState::Running);
            match read {
                Some(exit) => Some(exit),
                None => self.death_since(&status.name, seen.running_since).await,
            }
        };
        let lines = async { self.crash_lines_of(app, status, pending).await };
        let (exit, (last_lines, lines_error)) = tokio::join!(exit, lines);
        let oom_killed = oom_killed(status, exit, &seen, kernel_oom_kills());
        CrashContext {
            exit,
            oom_killed,
            memory_bytes: seen.memory_bytes,
            memory_limit_bytes: memory_limit(status).or(seen.memory_limit_bytes),
            last_lines,
            lines_error,
        }
    }

    /// The last lines of the run that ended, or why there are none.
    async fn crash_lines_of(
        &self,
        app: &AppConfig,
        status: &AppStatus,
        pending: &Pending,
    ) -> (Vec<String>, Option<String>) {
        match &app.source {
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

/// How long a unit that never wrote a line is asked again for one: a process that dies at start
/// may have its only line (why) still on its way to journald. Every crash of a quiet app waits
/// this long for its event, so it is short (journald takes milliseconds, not tenths of seconds).
const FIRST_LINE_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// The last lines of a unit's run that ended. journald may still be writing the process's
/// final output when its exit is seen: an empty answer is asked again for [`FIRST_LINE_WAIT`].
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
        if !lines.is_empty() || started.elapsed() >= FIRST_LINE_WAIT {
            return Ok(lines);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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

    #[test]
    fn the_oom_kill_count_is_read_from_vmstat() {
        assert_eq!(
            parse_oom_kills("pgfault 12\noom_kill 26\nthp_fault_alloc 0\n"),
            Some(26)
        );
        assert_eq!(parse_oom_kills("pgfault 12\n"), None);
    }

    #[test]
    fn an_oom_kill_is_a_sigkill_the_kernel_counted_or_what_the_engine_says() {
        let failed = status(AppState::Failed, None);
        let t0 = std::time::Instant::now();
        let mut seen = Seen::default();
        seen.running_read(26, t0);
        // SIGKILL (as a signal, or a container's 137) and the count moved: the OOM killer.
        assert!(oom_killed(&failed, Some(Exit::Signal(9)), &seen, Some(27)));
        assert!(oom_killed(&failed, Some(Exit::Code(137)), &seen, Some(27)));
        // The count did not move: someone's kill -9.
        assert!(!oom_killed(&failed, Some(Exit::Code(137)), &seen, Some(26)));
        // Another exit while some other process was OOM-killed: not this app.
        assert!(!oom_killed(&failed, Some(Exit::Code(1)), &seen, Some(27)));
        // Never seen running (no count before): only what the engine says.
        assert!(!oom_killed(
            &failed,
            Some(Exit::Code(137)),
            &Seen::default(),
            Some(27)
        ));
    }

    #[test]
    fn a_read_after_the_kill_does_not_move_the_baseline() {
        let t0 = std::time::Instant::now();
        let secs = std::time::Duration::from_secs;
        let mut seen = Seen::default();
        seen.running_read(26, t0);
        seen.running_read(26, t0 + secs(6));
        // Killed at 6.5 s; read at 6.7 s still running (the engine had not noticed yet).
        seen.running_read(27, t0 + std::time::Duration::from_millis(6_700));
        let failed = status(AppState::Failed, None);
        assert!(oom_killed(&failed, Some(Exit::Code(137)), &seen, Some(27)));
    }
}

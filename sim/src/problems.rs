//! The problems a simulated agent can report besides app states (issue 14): endpoint check
//! results (and `degraded` after two failures in a row), crash context on a crash the restart
//! policy healed, a status source down, a clock off from the collector's. Each change is an
//! event on `/v1/events` (`check`, `transition`, `source`) and shows in the next snapshot.

use fleetdeck_proto::{
    AgentEvent, AppState, CheckEvent, CheckKind, CheckResult, CrashContext, Exit, SourceEvent,
};

use crate::host::{Host, Process};
use crate::Sim;

impl Host {
    /// Records a run of check `name` of app `app`; a pass↔fail change (or a first failure) is a
    /// `check` event.
    pub(crate) fn check_ran(&self, app: usize, name: &str, ok: bool, error: Option<&str>) {
        let Some(spec) = self.apps.get(app) else {
            return;
        };
        let now = self.agent_now();
        let mut live = self.lock();
        let Some(a) = live.apps.get_mut(app) else {
            return;
        };
        let previous = a.checks.iter().position(|c| c.name == name);
        let failures = match previous.map(|i| &a.checks[i]) {
            Some(c) if !ok => c.consecutive_failures + 1,
            None if !ok => 1,
            _ => 0,
        };
        let changed = match previous {
            Some(i) => a.checks[i].ok != ok,
            None => !ok,
        };
        let result = CheckResult {
            name: name.to_owned(),
            kind: CheckKind::Http,
            target: format!("http://127.0.0.1:8080/{name}"),
            ok,
            consecutive_failures: failures,
            status_code: Some(if ok { 200 } else { 500 }),
            latency_ms: Some(if ok { 3.5 } else { 12.0 }),
            error: error.map(str::to_owned).filter(|_| !ok),
            cert_not_after_unix_ms: None,
            checked_unix_ms: now,
        };
        match previous {
            Some(i) => a.checks[i] = result.clone(),
            None => a.checks.push(result.clone()),
        }
        drop(live);
        if changed {
            let instance_id = self.instance_id.clone();
            let app = spec.name.to_owned();
            self.push_event(|id| {
                AgentEvent::Check(CheckEvent {
                    id,
                    instance_id,
                    app,
                    result,
                    at_unix_ms: now,
                })
            });
        }
    }

    /// Marks a status source down (with `error`) or up again; a change is a `source` event.
    pub(crate) fn source_changed(&self, source: &str, up: bool, error: &str) {
        let now = self.agent_now();
        let mut live = self.lock();
        let was_up = !live.sources_down.iter().any(|(n, _)| n == source);
        live.sources_down.retain(|(n, _)| n != source);
        if !up {
            live.sources_down
                .push((source.to_owned(), error.to_owned()));
        }
        drop(live);
        if was_up != up {
            let instance_id = self.instance_id.clone();
            self.push_event(|id| {
                AgentEvent::Source(SourceEvent {
                    id,
                    instance_id,
                    source: source.to_owned(),
                    up,
                    error: (!up).then(|| error.to_owned()),
                    at_unix_ms: now,
                })
            });
        }
    }
}

impl Sim {
    fn host_app(&self, host: usize, app: &str) -> Option<(&Host, usize)> {
        let h = self.hosts.get(host)?;
        Some((h, h.app_index(app)?))
    }

    /// Runs check `name` of `app` on host `host` once, passing or failing with `error`. Two
    /// failures in a row make the app `degraded`.
    pub fn check_ran(&self, host: usize, app: &str, name: &str, ok: bool, error: Option<&str>) {
        match self.host_app(host, app) {
            Some((h, i)) => h.check_ran(i, name, ok, error),
            None => tracing::warn!(host, app, "check_ran: no such host or app"),
        }
    }

    /// A crash the restart policy healed: the app is running again at once (a new process, one
    /// more restart), and the `transition` event carries the crash context with `last_lines`.
    pub fn crash_and_restart(&self, host: usize, app: &str, exit: Exit, last_lines: &[&str]) {
        let Some((h, i)) = self.host_app(host, app) else {
            tracing::warn!(host, app, "crash_and_restart: no such host or app");
            return;
        };
        let crash = CrashContext {
            exit: Some(exit),
            oom_killed: false,
            memory_bytes: h.status(i).and_then(|s| s.memory_bytes),
            memory_limit_bytes: None,
            last_lines: last_lines.iter().map(|l| (*l).to_owned()).collect(),
            lines_error: None,
        };
        h.change_with(
            i,
            AppState::Running,
            Some(exit),
            Process::New { counted: true },
            false,
            Some(crash),
        );
    }

    /// Moves an app to `state` as if asked through Fleetdeck (`requested: true` on the event).
    pub fn set_state_requested(&self, host: usize, app: &str, state: AppState) {
        if let Some((h, i)) = self.host_app(host, app) {
            let process = if state == AppState::Running {
                Process::New { counted: false }
            } else {
                Process::Same
            };
            h.change_with(i, state, None, process, true, None);
        }
    }

    /// Marks a status source (`systemd`, `docker`) of host `host` down with `error`, or up.
    pub fn set_source(&self, host: usize, source: &str, up: bool, error: &str) {
        if let Some(h) = self.hosts.get(host) {
            h.source_changed(source, up, error);
        }
    }

    /// Shifts host `host`'s clock by `offset_ms` (positive: ahead) in its snapshots and events.
    pub fn set_clock_offset(&self, host: usize, offset_ms: i64) {
        if let Some(h) = self.hosts.get(host) {
            h.lock().clock_offset_ms = offset_ms;
        }
    }
}

//! The agent's events, in one id sequence: status transitions, check results that changed, and
//! sources going down or up. Every fresh status of an app (from a systemd signal, a Docker event,
//! a sample or a request) is observed here; a change of state, or a new process in the same
//! state, becomes one [`AppEvent`]. Checks and sources record theirs directly. Each becomes an
//! [`AgentEvent`], kept in a bounded buffer for `Last-Event-ID` resumes and broadcast to the live
//! `/v1/events` streams. Each transition is recorded once, whoever saw it first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use fleetdeck_proto::{
    AgentEvent, AppEvent, AppState, AppStatus, CheckEvent, CheckResult, CrashContext, EventSource,
    SourceEvent,
};
use tokio::sync::broadcast;

/// Events kept for clients that reconnect with `Last-Event-ID`.
pub const BUFFER: usize = 1_024;

/// What identifies one run of an app's process: a restart changes it even if the state does not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    state: AppState,
    run: Option<String>,
}

fn observed(status: &AppStatus) -> Observed {
    let run = match (&status.systemd, &status.docker) {
        (Some(s), _) => s
            .invocation_id
            .clone()
            .or_else(|| s.main_pid.map(|p| p.to_string())),
        (_, Some(d)) => d.started_unix_ms.map(|t| t.to_string()),
        _ => None,
    };
    Observed {
        state: status.state,
        run,
    }
}

/// A transition a status would make (see [`EventLog::pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub from: AppState,
    /// The run (systemd invocation id or main PID, container start time) before this status.
    pub previous_run: Option<String>,
    pub restarted: bool,
}

/// What an event carries beyond the status it is made from.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub requested: bool,
    pub crash: Option<CrashContext>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    buffer: VecDeque<AgentEvent>,
    last: HashMap<String, Observed>,
    /// The ticket of the read behind each app's `last`.
    tickets: HashMap<String, u64>,
}

#[derive(Debug)]
pub struct EventLog {
    instance_id: String,
    inner: Mutex<Inner>,
    live: broadcast::Sender<AgentEvent>,
    reads: std::sync::atomic::AtomicU64,
}

impl EventLog {
    pub fn new(instance_id: String) -> Self {
        let (live, _) = broadcast::channel(256);
        Self {
            instance_id,
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
            live,
            reads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data stays consistent even if a holder panicked: every update is one assignment.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `status` as the app's latest; returns the event if it is a transition. The first
    /// observation of an app is its starting point, not a transition; `unknown` (the source could
    /// not be asked) is not a state of the app and is never recorded.
    pub fn observe(
        &self,
        status: &AppStatus,
        source: EventSource,
        at_unix_ms: u64,
    ) -> Option<AppEvent> {
        let ticket = self.begin_read();
        self.observe_read(status, source, at_unix_ms, ticket)
    }

    /// Forgets the apps `keep` refuses (no longer watched): the map stays bounded by the watched
    /// apps, and an app watched again starts from its first observation, with no transition.
    pub fn retain_apps(&self, keep: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        inner.last.retain(|name, _| keep(name));
        inner.tickets.retain(|name, _| keep(name));
    }

    /// A ticket to take before reading an app, so that a slow read cannot overwrite what a later
    /// one already recorded.
    pub fn begin_read(&self) -> u64 {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The transition `status` would make now, if any (nothing is recorded): lets the caller
    /// gather what the event should carry (a crash's context) before recording it.
    pub fn pending(&self, status: &AppStatus) -> Option<Pending> {
        if status.state == AppState::Unknown {
            return None;
        }
        let now = observed(status);
        let inner = self.lock();
        let before = inner.last.get(&status.name)?;
        let restarted = before.state == now.state && before.run != now.run && now.run.is_some();
        (before.state != now.state || restarted).then(|| Pending {
            from: before.state,
            previous_run: before.run.clone(),
            restarted,
        })
    }

    /// [`EventLog::observe`] for a read that began at `ticket`: ignored if a read that began later
    /// has already been recorded for this app (it saw a newer state).
    pub fn observe_read(
        &self,
        status: &AppStatus,
        source: EventSource,
        at_unix_ms: u64,
        ticket: u64,
    ) -> Option<AppEvent> {
        self.observe_read_with(status, source, at_unix_ms, ticket, Extra::default())
    }

    /// [`EventLog::observe_read`] with what the agent knows beyond the status: whether the
    /// change was asked for, and a crash's context.
    pub fn observe_read_with(
        &self,
        status: &AppStatus,
        source: EventSource,
        at_unix_ms: u64,
        ticket: u64,
        extra: Extra,
    ) -> Option<AppEvent> {
        if status.state == AppState::Unknown {
            return None;
        }
        let now = observed(status);
        let mut inner = self.lock();
        if inner.tickets.get(&status.name).is_some_and(|&t| t > ticket) {
            return None;
        }
        inner.tickets.insert(status.name.clone(), ticket);
        let before = inner.last.insert(status.name.clone(), now.clone())?;
        let restarted = before.state == now.state && before.run != now.run && now.run.is_some();
        if before.state == now.state && !restarted {
            return None;
        }
        let event = AppEvent {
            id: inner.next_id,
            instance_id: self.instance_id.clone(),
            app: status.name.clone(),
            kind: status.kind,
            from: before.state,
            to: now.state,
            restarted,
            at_unix_ms,
            exit: status.last_exit,
            restarts: status.restarts,
            source,
            requested: extra.requested,
            crash: extra.crash,
        };
        self.push(&mut inner, AgentEvent::Transition(event.clone()));
        Some(event)
    }

    /// Records a check's result that changed (pass to fail, fail to pass, or a first result
    /// that fails: the caller decides) as the next event.
    pub fn record_check(&self, app: &str, result: CheckResult, at_unix_ms: u64) -> CheckEvent {
        let mut inner = self.lock();
        let event = CheckEvent {
            id: inner.next_id,
            instance_id: self.instance_id.clone(),
            app: app.to_owned(),
            result,
            at_unix_ms,
        };
        self.push(&mut inner, AgentEvent::Check(event.clone()));
        event
    }

    /// Records a status source (`systemd`, `docker`) going down (with why) or coming back up as
    /// the next event.
    pub fn record_source(
        &self,
        source: &str,
        up: bool,
        error: Option<String>,
        at_unix_ms: u64,
    ) -> SourceEvent {
        let mut inner = self.lock();
        let event = SourceEvent {
            id: inner.next_id,
            instance_id: self.instance_id.clone(),
            source: source.to_owned(),
            up,
            error,
            at_unix_ms,
        };
        self.push(&mut inner, AgentEvent::Source(event.clone()));
        event
    }

    /// Takes the event's id (it holds `next_id`), buffers it and broadcasts it, under the lock so
    /// ids reach the buffer and the streams in order.
    fn push(&self, inner: &mut Inner, event: AgentEvent) {
        debug_assert_eq!(event.id(), inner.next_id);
        inner.next_id += 1;
        if inner.buffer.len() == BUFFER {
            inner.buffer.pop_front();
        }
        inner.buffer.push_back(event.clone());
        // Sending fails only when no stream listens, which is fine.
        let _ = self.live.send(event);
    }

    /// A receiver of new events, the buffered events to send first, and the id after which the
    /// stream stands (events with a smaller or equal id are never sent on it). No `last_event_id`
    /// starts live, after the newest buffered event; an id of this instance (`INSTANCE:ID`)
    /// replays the buffered events after it; an id of another instance, or one that does not
    /// parse, replays the whole buffer. Subscribing under the lock means no event falls between
    /// the replay and the live feed.
    pub fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> (Vec<AgentEvent>, broadcast::Receiver<AgentEvent>, u64) {
        let inner = self.lock();
        let rx = self.live.subscribe();
        let after = match last_event_id {
            None => inner.next_id - 1,
            Some(id) => id
                .rsplit_once(':')
                .filter(|(instance, _)| *instance == self.instance_id)
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .unwrap_or(0),
        };
        let replay = inner
            .buffer
            .iter()
            .filter(|e| e.id() > after)
            .cloned()
            .collect();
        (replay, rx, after)
    }

    /// The buffered events with id > `after` (to catch up after a lagging receiver).
    pub fn since(&self, after: u64) -> Vec<AgentEvent> {
        self.lock()
            .buffer
            .iter()
            .filter(|e| e.id() > after)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_proto::{AppKind, SystemdDetail};

    fn status(state: AppState, invocation: &str) -> AppStatus {
        AppStatus {
            name: "web".into(),
            kind: AppKind::Systemd,
            target: "web.service".into(),
            state,
            since_unix_ms: None,
            last_exit: None,
            restarts: Some(0),
            memory_bytes: None,
            error: None,
            systemd: Some(SystemdDetail {
                invocation_id: Some(invocation.into()),
                ..SystemdDetail::default()
            }),
            docker: None,
            expect: Default::default(),
            stopped_by_request: false,
            checks: Vec::new(),
            degraded: false,
        }
    }

    #[test]
    fn each_transition_once_whoever_sees_it() {
        let log = EventLog::new("inst".into());
        assert!(
            log.observe(&status(AppState::Running, "a"), EventSource::Poll, 1)
                .is_none(),
            "first sight"
        );
        assert!(log
            .observe(&status(AppState::Running, "a"), EventSource::Systemd, 2)
            .is_none());
        let e = log
            .observe(&status(AppState::Failed, "a"), EventSource::Systemd, 3)
            .expect("transition");
        assert_eq!(
            (e.id, e.from, e.to, e.restarted, e.source),
            (
                1,
                AppState::Running,
                AppState::Failed,
                false,
                EventSource::Systemd
            )
        );
        // The poll that comes later sees the same state: no second event.
        assert!(log
            .observe(&status(AppState::Failed, "a"), EventSource::Poll, 4)
            .is_none());
        // Unknown (source down) neither fires nor resets.
        assert!(log
            .observe(&status(AppState::Unknown, "a"), EventSource::Poll, 5)
            .is_none());
        assert!(log
            .observe(&status(AppState::Failed, "a"), EventSource::Poll, 6)
            .is_none());
        let e = log
            .observe(&status(AppState::Running, "b"), EventSource::Systemd, 7)
            .expect("back");
        assert_eq!(
            (e.id, e.from, e.to),
            (2, AppState::Failed, AppState::Running)
        );
    }

    #[test]
    fn a_slow_read_cannot_undo_a_newer_one() {
        let log = EventLog::new("inst".into());
        log.observe(&status(AppState::Running, "a"), EventSource::Poll, 1);
        let slow = log.begin_read(); // a sample starts reading: running
        let fast = log.begin_read(); // the app crashes; a watcher reads it
        let e = log.observe_read(
            &status(AppState::Failed, "a"),
            EventSource::Systemd,
            2,
            fast,
        );
        assert_eq!(e.map(|e| e.to), Some(AppState::Failed));
        // The sample's older reading arrives last: no false recovery.
        assert!(log
            .observe_read(&status(AppState::Running, "a"), EventSource::Poll, 3, slow)
            .is_none());
        assert_eq!(log.since(0).len(), 1);
    }

    #[test]
    fn restart_in_the_same_state_is_an_event() {
        let log = EventLog::new("inst".into());
        log.observe(&status(AppState::Running, "a"), EventSource::Poll, 1);
        let e = log
            .observe(&status(AppState::Running, "b"), EventSource::Systemd, 2)
            .expect("restart");
        assert!(e.restarted);
        assert_eq!((e.from, e.to), (AppState::Running, AppState::Running));
    }

    #[test]
    fn resume_replays_only_what_came_after() {
        let log = EventLog::new("inst".into());
        log.observe(&status(AppState::Running, "a"), EventSource::Poll, 1);
        for (i, state) in [AppState::Failed, AppState::Running, AppState::Failed]
            .into_iter()
            .enumerate()
        {
            log.observe(&status(state, &format!("x{i}")), EventSource::Poll, 2);
        }
        let ids = |v: Vec<AgentEvent>| v.into_iter().map(|e| e.id()).collect::<Vec<_>>();
        assert_eq!(ids(log.subscribe(Some("inst:1")).0), [2, 3]);
        assert_eq!(ids(log.subscribe(Some("inst:3")).0), Vec::<u64>::new());
        assert_eq!(
            ids(log.subscribe(Some("other-instance:2")).0),
            [1, 2, 3],
            "another instance: all"
        );
        assert_eq!(ids(log.subscribe(Some("garbage")).0), [1, 2, 3]);
        let (replay, _, after) = log.subscribe(None);
        assert!(replay.is_empty(), "no id: live only");
        assert_eq!(after, 3, "a live stream stands after the newest event");
    }

    #[test]
    fn buffer_is_bounded() {
        let log = EventLog::new("inst".into());
        log.observe(&status(AppState::Running, "a"), EventSource::Poll, 1);
        for i in 0..(BUFFER as u64 + 10) {
            let state = if i % 2 == 0 {
                AppState::Failed
            } else {
                AppState::Running
            };
            log.observe(&status(state, "a"), EventSource::Poll, i);
        }
        let all = log.since(0);
        assert_eq!(all.len(), BUFFER);
        assert_eq!(all[0].id(), 11);
    }

    fn check(ok: bool) -> CheckResult {
        CheckResult {
            name: "health".into(),
            kind: fleetdeck_proto::CheckKind::Http,
            target: "http://127.0.0.1:1/".into(),
            ok,
            consecutive_failures: u32::from(!ok),
            status_code: None,
            latency_ms: None,
            error: (!ok).then(|| "connection refused to 127.0.0.1:1".into()),
            cert_not_after_unix_ms: None,
            checked_unix_ms: 5,
        }
    }

    #[test]
    fn checks_and_sources_share_the_transitions_sequence() {
        let log = EventLog::new("inst".into());
        let (_, mut rx, _) = log.subscribe(None);
        log.observe(&status(AppState::Running, "a"), EventSource::Poll, 1);
        log.observe(&status(AppState::Failed, "a"), EventSource::Poll, 2);
        let c = log.record_check("web", check(false), 3);
        let s = log.record_source("docker", false, Some("engine gone".into()), 4);
        log.observe(&status(AppState::Running, "b"), EventSource::Poll, 5);
        assert_eq!(
            (c.id, c.app.as_str(), c.instance_id.as_str()),
            (2, "web", "inst")
        );
        assert_eq!((s.id, s.source.as_str(), s.up), (3, "docker", false));
        let live: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.name(), e.sse_id()))
            .collect();
        assert_eq!(
            live,
            [
                ("transition", "inst:1".to_owned()),
                ("check", "inst:2".to_owned()),
                ("source", "inst:3".to_owned()),
                ("transition", "inst:4".to_owned()),
            ]
        );
        let kinds = |v: Vec<AgentEvent>| v.iter().map(AgentEvent::name).collect::<Vec<_>>();
        assert_eq!(
            kinds(log.subscribe(Some("inst:1")).0),
            ["check", "source", "transition"]
        );
        assert_eq!(kinds(log.since(2)), ["source", "transition"]);
    }
}

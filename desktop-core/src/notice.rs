//! Which fleet events deserve a desktop notification, and what it says: one per crash, one per
//! recovery, one per host going down or coming back. Showing it is the Tauri side's job.

use std::collections::HashMap;

use fleetdeck_proto::desktop::{AppRef, ConnState, ConnStatus};
pub use fleetdeck_proto::signal_name;
use fleetdeck_proto::{Exit, FleetEvent, FleetEventKind};

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// e.g. `api crashed on web-1`.
    pub summary: String,
    /// Host, app, how it ended and the collector.
    pub body: String,
    /// Stays until dismissed (a crash or a host down), rather than timing out.
    pub critical: bool,
    /// What clicking it opens.
    pub target: AppRef,
}

/// States in which an app is down.
fn is_down(state: Option<&str>) -> bool {
    matches!(state, Some("failed" | "crash-looping"))
}

/// How a process ended, for a person: `exit code 1`, `killed by signal 9 (SIGKILL)`.
pub fn describe_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit code {code}"),
        Exit::Signal(signal) => match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        },
    }
}

/// An exit that is a crash: a non-zero code or any signal.
fn crashed(exit: Option<Exit>) -> Option<Exit> {
    exit.filter(|e| !matches!(e, Exit::Code(0)))
}

/// The notice for `event` from `collector`, or `None` when it needs none (a start, a stop, a
/// clean restart, a crash-looping app that was already failed...).
pub fn notice_for(collector: &str, event: &FleetEvent) -> Option<Notice> {
    let host = event.host.as_str();
    let target = AppRef {
        collector: collector.to_owned(),
        host: host.to_owned(),
        app: event.app.clone(),
    };
    let (from, to) = (event.from.as_deref(), event.to.as_deref());
    let how = |exit: Option<Exit>| crashed(exit).map(describe_exit);
    match event.kind {
        FleetEventKind::Transition => {
            let app = event.app.as_deref()?;
            if is_down(to) && !is_down(from) {
                let state = to.unwrap_or("failed");
                let body = match how(event.exit) {
                    Some(exit) => {
                        format!("{app} on {host} is {state}: {exit}. Collector: {collector}.")
                    }
                    None => format!("{app} on {host} is {state}. Collector: {collector}."),
                };
                Some(Notice {
                    summary: format!("{app} crashed on {host}"),
                    body,
                    critical: true,
                    target,
                })
            } else if is_down(from) && to == Some("running") {
                Some(Notice {
                    summary: format!("{app} recovered on {host}"),
                    body: format!(
                        "{app} on {host} is running again (it was {}). Collector: {collector}.",
                        from.unwrap_or("failed")
                    ),
                    critical: false,
                    target,
                })
            } else {
                None
            }
        }
        // A new process in the same state: a crash only if the old one ended badly, and then
        // systemd (or Docker) has already restarted it.
        FleetEventKind::Restarted => {
            let app = event.app.as_deref()?;
            let exit = how(event.exit)?;
            Some(Notice {
                summary: format!("{app} crashed on {host}"),
                body: format!(
                    "{app} on {host} ended ({exit}) and was restarted. Collector: {collector}."
                ),
                critical: false,
                target,
            })
        }
        FleetEventKind::HostDown => Some(Notice {
            summary: format!("{host} is down"),
            body: format!(
                "The collector {collector} cannot reach the agent on {host}: {}",
                event.message
            ),
            critical: true,
            target: AppRef {
                app: None,
                ..target
            },
        }),
        FleetEventKind::HostUp => Some(Notice {
            summary: format!("{host} is back up"),
            body: format!(
                "The collector {collector} reaches the agent on {host} again: {}",
                event.message
            ),
            critical: false,
            target: AppRef {
                app: None,
                ..target
            },
        }),
        // Issue 14 brings notices for these; until then the event log shows them.
        FleetEventKind::CheckFailed
        | FleetEventKind::CheckPassed
        | FleetEventKind::SourceDown
        | FleetEventKind::SourceUp
        | FleetEventKind::ThresholdFired
        | FleetEventKind::ThresholdCleared
        | FleetEventKind::ClockSkew
        | FleetEventKind::ClockOk => None,
    }
}

/// The notice that stands for `missed` notices that could not be shown (the notification daemon
/// fell behind a burst): clicking it opens the app, whose event log has them all.
pub fn missed_notice(missed: u64) -> Notice {
    let (what, were) = if missed == 1 {
        ("notification", "was")
    } else {
        ("notifications", "were")
    };
    Notice {
        summary: format!("{missed} more Fleetdeck {what}"),
        body: format!(
            "{missed} {what} {were} not shown: too many at once for the notification daemon. \
             The event log in Fleetdeck lists every event."
        ),
        critical: false,
        target: AppRef {
            collector: String::new(),
            host: String::new(),
            app: None,
        },
    }
}

/// Decides notices for a stream of events from several collectors: each event at most once
/// (events are identified by collector and id, and ids only grow), and none while do-not-disturb
/// is on.
#[derive(Debug, Default)]
pub struct Notifier {
    dnd: bool,
    /// The highest event id seen per collector.
    seen: HashMap<String, i64>,
    /// Collectors failing to answer: since when, and whether the operator was told.
    failing: HashMap<String, Outage>,
    grace_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    since_unix_ms: u64,
    told: bool,
}

/// How long a collector may fail to answer before the desktop says so (one notice, and one when
/// it answers again): the watcher retries every few seconds, and a restart of the collector
/// should not raise anything.
pub const UNREACHABLE_GRACE_MS: u64 = 30_000;

impl Notifier {
    pub fn new(dnd: bool) -> Self {
        Self {
            dnd,
            seen: HashMap::new(),
            failing: HashMap::new(),
            grace_ms: UNREACHABLE_GRACE_MS,
        }
    }

    /// How long a collector may fail before [`Notifier::due`] tells (default
    /// [`UNREACHABLE_GRACE_MS`]).
    pub fn set_unreachable_grace(&mut self, grace: std::time::Duration) {
        self.grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    }

    pub fn set_dnd(&mut self, dnd: bool) {
        self.dnd = dnd;
    }

    pub fn dnd(&self) -> bool {
        self.dnd
    }

    /// The notice to show for `event`, if any. An event seen before (id at most the highest seen
    /// from that collector) gives none; with do-not-disturb on, none is given but the event still
    /// counts as seen, so turning it off does not replay the past.
    pub fn on_event(&mut self, collector: &str, event: &FleetEvent) -> Option<Notice> {
        match self.seen.get_mut(collector) {
            Some(highest) if event.id <= *highest => return None,
            Some(highest) => *highest = event.id,
            None => {
                self.seen.insert(collector.to_owned(), event.id);
            }
        }
        if self.dnd {
            return None;
        }
        notice_for(collector, event)
    }

    /// Follows a collector's connection: a notice when it answers again after an outage the
    /// operator was told about (see [`Notifier::due`]).
    pub fn on_status(&mut self, collector: &str, status: &ConnStatus) -> Option<Notice> {
        match status.state {
            ConnState::Failing => {
                self.failing.entry(collector.to_owned()).or_insert(Outage {
                    since_unix_ms: status.since_unix_ms,
                    told: false,
                });
                None
            }
            ConnState::Connected => {
                let outage = self.failing.remove(collector)?;
                (outage.told && !self.dnd).then(|| Notice {
                    summary: format!("Back in contact with collector {collector}"),
                    body: format!(
                        "The fleet behind {collector} is shown live again (contact was lost for {}).",
                        humantime::format_duration(std::time::Duration::from_secs(
                            status.since_unix_ms.saturating_sub(outage.since_unix_ms) / 1000
                        ))
                    ),
                    critical: false,
                    target: collector_ref(collector),
                })
            }
            ConnState::Connecting => None,
        }
    }

    /// Notices for collectors that have failed to answer for the grace (by default
    /// [`UNREACHABLE_GRACE_MS`]) by `now`, once per outage. Call it every few seconds.
    pub fn due(&mut self, now_unix_ms: u64, reasons: &HashMap<String, String>) -> Vec<Notice> {
        let (dnd, grace_ms) = (self.dnd, self.grace_ms);
        let mut out: Vec<Notice> = self
            .failing
            .iter_mut()
            .filter(|(_, o)| !o.told && now_unix_ms.saturating_sub(o.since_unix_ms) >= grace_ms)
            .filter_map(|(name, o)| {
                o.told = true;
                let reason = reasons.get(name).map_or("", String::as_str);
                (!dnd).then(|| Notice {
                    summary: format!("Lost contact with collector {name}"),
                    body: format!(
                        "Fleetdeck cannot see the fleet behind {name}: crashes there are not shown until contact is back. {reason}"
                    )
                    .trim_end()
                    .to_owned(),
                    critical: true,
                    target: collector_ref(name),
                })
            })
            .collect();
        out.sort_by(|a, b| a.summary.cmp(&b.summary));
        out
    }

    /// A collector was removed: nothing more about it.
    pub fn forget(&mut self, collector: &str) {
        self.seen.remove(collector);
        self.failing.remove(collector);
    }
}

/// What a notice about a whole collector opens: the window (no host).
fn collector_ref(collector: &str) -> AppRef {
    AppRef {
        collector: collector.to_owned(),
        host: String::new(),
        app: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_proto::Severity;

    #[test]
    fn missed_notices_are_counted_in_one() {
        let one = missed_notice(1);
        assert_eq!(one.summary, "1 more Fleetdeck notification");
        assert!(
            one.body.starts_with("1 notification was not shown"),
            "{}",
            one.body
        );
        let many = missed_notice(135);
        assert_eq!(many.summary, "135 more Fleetdeck notifications");
        assert!(many.body.contains("event log"), "{}", many.body);
        assert!(many.target.host.is_empty() && !many.critical);
    }

    fn event(
        id: i64,
        kind: FleetEventKind,
        from: Option<&str>,
        to: Option<&str>,
        exit: Option<Exit>,
    ) -> FleetEvent {
        FleetEvent {
            id,
            at_unix_ms: 1_700_000_000_000,
            severity: Severity::Info,
            source: "agent-stream".into(),
            kind,
            host: "web-1".into(),
            app: match kind {
                FleetEventKind::HostDown | FleetEventKind::HostUp => None,
                _ => Some("api".into()),
            },
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            exit,
            message: "web-1 is down: 2 polls missed (cannot connect)".into(),
            context: None,
            check: None,
            threshold: None,
        }
    }

    fn transition(from: Option<&str>, to: &str, exit: Option<Exit>) -> FleetEvent {
        event(1, FleetEventKind::Transition, from, Some(to), exit)
    }

    #[test]
    fn a_crash_is_noticed_with_its_exit() {
        let n = notice_for(
            "home",
            &transition(Some("running"), "failed", Some(Exit::Code(1))),
        )
        .expect("a crash");
        assert_eq!(n.summary, "api crashed on web-1");
        assert!(n.body.contains("exit code 1"), "{}", n.body);
        assert!(n.body.contains("web-1") && n.body.contains("api") && n.body.contains("home"));
        assert!(n.critical);
        assert_eq!(
            n.target,
            AppRef {
                collector: "home".into(),
                host: "web-1".into(),
                app: Some("api".into())
            }
        );
        let n = notice_for(
            "home",
            &transition(Some("running"), "crash-looping", Some(Exit::Signal(11))),
        )
        .expect("crash-looping");
        assert_eq!(n.summary, "api crashed on web-1");
        assert!(n.body.contains("crash-looping"), "{}", n.body);
        assert!(
            n.body.contains("killed by signal 11 (SIGSEGV)"),
            "{}",
            n.body
        );
        // No exit known: still a crash, without the detail.
        let n = notice_for("home", &transition(None, "failed", None)).expect("first seen failed");
        assert!(!n.body.contains("exit"), "{}", n.body);
    }

    #[test]
    fn a_recovery_is_noticed() {
        for from in ["failed", "crash-looping"] {
            let n = notice_for("home", &transition(Some(from), "running", None)).expect(from);
            assert_eq!(n.summary, "api recovered on web-1");
            assert!(
                n.body.contains(from) && n.body.contains("home"),
                "{}",
                n.body
            );
            assert!(!n.critical);
        }
    }

    #[test]
    fn a_restart_after_a_bad_exit_is_a_crash() {
        let restarted = |exit| {
            event(
                1,
                FleetEventKind::Restarted,
                Some("running"),
                Some("running"),
                exit,
            )
        };
        let n = notice_for("home", &restarted(Some(Exit::Code(137)))).expect("exit 137");
        assert_eq!(n.summary, "api crashed on web-1");
        assert!(
            n.body.contains("exit code 137") && n.body.contains("restarted"),
            "{}",
            n.body
        );
        let n = notice_for("home", &restarted(Some(Exit::Signal(9)))).expect("SIGKILL");
        assert!(
            n.body.contains("killed by signal 9 (SIGKILL)"),
            "{}",
            n.body
        );
        assert_eq!(notice_for("home", &restarted(Some(Exit::Code(0)))), None);
        assert_eq!(notice_for("home", &restarted(None)), None);
    }

    #[test]
    fn hosts_going_down_and_up() {
        let down = notice_for(
            "home",
            &event(1, FleetEventKind::HostDown, Some("up"), Some("down"), None),
        )
        .expect("down");
        assert_eq!(down.summary, "web-1 is down");
        assert!(down.critical);
        assert!(
            down.body.contains("home") && down.body.contains("polls missed"),
            "{}",
            down.body
        );
        assert_eq!(down.target.app, None);
        let up = notice_for(
            "home",
            &event(2, FleetEventKind::HostUp, Some("down"), Some("up"), None),
        )
        .expect("up");
        assert_eq!(up.summary, "web-1 is back up");
        assert!(!up.critical);
        assert_eq!(up.target.host, "web-1");
    }

    #[test]
    fn other_events_are_ignored() {
        for (from, to) in [
            (Some("running"), "stopping"),
            (Some("stopping"), "stopped"),
            (Some("stopped"), "starting"),
            (Some("starting"), "running"),
            (None, "running"),
            (Some("failed"), "crash-looping"),
            (Some("crash-looping"), "failed"),
            (Some("failed"), "stopped"),
            (Some("running"), "unknown"),
            (Some("unknown"), "running"),
            (Some("running"), "not-found"),
        ] {
            assert_eq!(
                notice_for("home", &transition(from, to, Some(Exit::Code(1)))),
                None,
                "{from:?} -> {to}"
            );
        }
        // A transition without an app is malformed: nothing to say.
        let mut e = transition(Some("running"), "failed", None);
        e.app = None;
        assert_eq!(notice_for("home", &e), None);
    }

    #[test]
    fn signal_names() {
        assert_eq!(
            describe_exit(Exit::Signal(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(Exit::Signal(15)),
            "killed by signal 15 (SIGTERM)"
        );
        assert_eq!(
            describe_exit(Exit::Signal(6)),
            "killed by signal 6 (SIGABRT)"
        );
        assert_eq!(
            describe_exit(Exit::Signal(11)),
            "killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(
            describe_exit(Exit::Signal(2)),
            "killed by signal 2 (SIGINT)"
        );
        assert_eq!(describe_exit(Exit::Signal(64)), "killed by signal 64");
        assert_eq!(describe_exit(Exit::Code(3)), "exit code 3");
    }

    #[test]
    fn the_notifier_dedupes_per_collector() {
        let crash = |id| {
            event(
                id,
                FleetEventKind::Transition,
                Some("running"),
                Some("failed"),
                Some(Exit::Code(1)),
            )
        };
        let mut n = Notifier::new(false);
        assert!(n.on_event("home", &crash(5)).is_some());
        assert!(
            n.on_event("home", &crash(5)).is_none(),
            "the same event twice"
        );
        assert!(n.on_event("home", &crash(4)).is_none(), "an older event");
        // Another collector's ids are its own.
        assert!(n.on_event("work", &crash(5)).is_some());
        assert!(n.on_event("home", &crash(6)).is_some());
        // An event that needs no notice still counts as seen.
        let start = event(
            7,
            FleetEventKind::Transition,
            Some("stopped"),
            Some("running"),
            None,
        );
        assert!(n.on_event("home", &start).is_none());
        assert!(n.on_event("home", &crash(7)).is_none());
    }

    #[test]
    fn do_not_disturb_silences_but_remembers() {
        let crash = |id| {
            event(
                id,
                FleetEventKind::Transition,
                Some("running"),
                Some("failed"),
                Some(Exit::Code(1)),
            )
        };
        let mut n = Notifier::new(true);
        assert!(n.dnd());
        assert!(n.on_event("home", &crash(1)).is_none());
        n.set_dnd(false);
        assert!(!n.dnd());
        assert!(
            n.on_event("home", &crash(1)).is_none(),
            "seen while dnd was on"
        );
        assert!(n.on_event("home", &crash(2)).is_some());
        n.set_dnd(true);
        assert!(n.on_event("home", &crash(3)).is_none());
    }

    fn conn(state: ConnState, since: u64) -> ConnStatus {
        ConnStatus {
            state,
            message: None,
            since_unix_ms: since,
        }
    }

    #[test]
    fn an_unreachable_collector_is_told_once_after_the_grace_and_once_when_back() {
        let mut n = Notifier::new(false);
        let reasons = HashMap::from([("prod".to_owned(), "Could not reach it.".to_owned())]);
        assert_eq!(n.on_status("prod", &conn(ConnState::Failing, 1_000)), None);
        // a later Failing (another message) does not move the outage's start
        assert_eq!(n.on_status("prod", &conn(ConnState::Failing, 9_000)), None);
        assert!(n.due(1_000 + UNREACHABLE_GRACE_MS - 1, &reasons).is_empty());
        let told = n.due(1_000 + UNREACHABLE_GRACE_MS, &reasons);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].summary, "Lost contact with collector prod");
        assert!(
            told[0].body.ends_with("Could not reach it."),
            "{}",
            told[0].body
        );
        assert!(told[0].critical);
        assert!(
            n.due(1_000 + 10 * UNREACHABLE_GRACE_MS, &reasons)
                .is_empty(),
            "told twice"
        );
        let back = n
            .on_status("prod", &conn(ConnState::Connected, 91_000))
            .expect("a notice when it is back");
        assert_eq!(back.summary, "Back in contact with collector prod");
        assert!(back.body.contains("1m 30s"), "{}", back.body);
        assert_eq!(
            n.on_status("prod", &conn(ConnState::Connected, 95_000)),
            None
        );
    }

    #[test]
    fn a_short_outage_raises_nothing() {
        let mut n = Notifier::new(false);
        n.on_status("prod", &conn(ConnState::Failing, 1_000));
        assert!(n.due(20_000, &HashMap::new()).is_empty());
        assert_eq!(
            n.on_status("prod", &conn(ConnState::Connected, 20_000)),
            None
        );
        assert!(n.due(1_000_000, &HashMap::new()).is_empty());
    }

    #[test]
    fn do_not_disturb_silences_outages_and_forget_drops_them() {
        let mut n = Notifier::new(true);
        n.on_status("prod", &conn(ConnState::Failing, 0));
        assert!(n.due(UNREACHABLE_GRACE_MS, &HashMap::new()).is_empty());
        assert_eq!(
            n.on_status("prod", &conn(ConnState::Connected, 60_000)),
            None
        );
        let mut n = Notifier::new(false);
        n.on_status("gone", &conn(ConnState::Failing, 0));
        n.forget("gone");
        assert!(n.due(UNREACHABLE_GRACE_MS, &HashMap::new()).is_empty());
    }

    #[test]
    fn the_grace_can_be_shortened() {
        let mut n = Notifier::new(false);
        n.set_unreachable_grace(std::time::Duration::from_secs(3));
        n.on_status("prod", &conn(ConnState::Failing, 0));
        assert!(n.due(2_999, &HashMap::new()).is_empty());
        assert_eq!(n.due(3_000, &HashMap::new()).len(), 1);
    }
}

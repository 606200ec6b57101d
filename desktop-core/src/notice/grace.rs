//! The collector's grace period, for notices (the same rule its alerts follow): a problem entry
//! (an app failed or crash-looping, a check failing, a source, the clock or the host going
//! wrong) is held for the grace. If its subject clears within it, neither the problem nor the
//! clearing is notified, as the collector raises neither alert; otherwise the notice is shown
//! when the grace has passed. A crash the restart policy already healed is told at once, as the
//! collector alerts it at once. With no grace (the collector's `grace = "0s"`), nothing waits.

use std::collections::HashMap;

use fleetdeck_proto::{FleetEvent, FleetEventKind};

use super::quiet::aspect_of;
use super::Notice;

/// Which subject an event is about: (collector, host, app, aspect, check).
type Key = (String, String, String, &'static str, String);

fn key(collector: &str, event: &FleetEvent) -> Key {
    (
        collector.to_owned(),
        event.host.clone(),
        event.app.clone().unwrap_or_default(),
        aspect_of(event.kind),
        event
            .check
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default(),
    )
}

/// An event that puts its subject into a problem the collector waits out for its grace.
pub fn is_problem_entry(event: &FleetEvent) -> bool {
    match event.kind {
        FleetEventKind::Transition => {
            matches!(event.to.as_deref(), Some("failed" | "crash-looping"))
        }
        FleetEventKind::CheckFailed
        | FleetEventKind::SourceDown
        | FleetEventKind::ClockSkew
        | FleetEventKind::HostDown => true,
        _ => false,
    }
}

/// A notice waiting for the grace to pass.
#[derive(Debug)]
pub struct Waiting {
    pub event: FleetEvent,
    pub notice: Notice,
    due_ms: u64,
}

#[derive(Debug, Default)]
pub struct Grace(HashMap<Key, Waiting>);

impl Grace {
    /// Shows `notice` now (`Some`), or holds it for `grace_ms` from `now_ms`, or swallows it
    /// (a clearing within the grace).
    pub fn filter(
        &mut self,
        collector: &str,
        event: &FleetEvent,
        notice: Notice,
        grace_ms: u64,
        now_ms: u64,
    ) -> Option<Notice> {
        let key = key(collector, event);
        if is_problem_entry(event) {
            if grace_ms == 0 {
                return Some(notice);
            }
            match self.0.get_mut(&key) {
                // Problem to problem (failed, then crash-looping) is the same problem: its
                // newest notice, still due when the first one was.
                Some(waiting) => {
                    waiting.event = event.clone();
                    waiting.notice = notice;
                }
                None => {
                    self.0.insert(
                        key,
                        Waiting {
                            event: event.clone(),
                            notice,
                            due_ms: now_ms.saturating_add(grace_ms),
                        },
                    );
                }
            }
            return None;
        }
        // Cleared within the grace: nothing was said, so nothing to take back.
        if clears(event) && self.0.remove(&key).is_some() {
            return None;
        }
        Some(notice)
    }

    /// Drops what waits for the subject of `event` (the flapping notice supersedes it).
    pub fn drop_subject(&mut self, collector: &str, event: &FleetEvent) {
        self.0.remove(&key(collector, event));
    }

    /// The notices whose grace has passed by `now_ms`, oldest first.
    pub fn due(&mut self, now_ms: u64) -> Vec<(String, Waiting)> {
        let due: Vec<Key> = self
            .0
            .iter()
            .filter(|(_, w)| w.due_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<(String, Waiting)> = due
            .into_iter()
            .filter_map(|k| self.0.remove(&k).map(|w| (k.0, w)))
            .collect();
        out.sort_by_key(|(_, w)| (w.due_ms, w.event.id));
        out
    }

    pub fn forget(&mut self, collector: &str) {
        self.0.retain(|k, _| k.0 != collector);
    }
}

/// An event that ends a problem of its subject (the app runs again, the check passes...).
/// Stopped, starting or the like neither clear nor raise: the problem waits on.
fn clears(event: &FleetEvent) -> bool {
    match event.kind {
        FleetEventKind::Transition => event.to.as_deref() == Some("running"),
        FleetEventKind::Restarted => true,
        _ => !is_problem_entry(event),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::kinds::tests::event;
    use super::super::Notifier;
    use fleetdeck_proto::{AlertPolicyView, Exit, FleetEvent, FleetEventKind, Severity, Silence};

    const T0: u64 = 1_800_000_000_000;
    const S: u64 = 1_000;

    fn policy(grace_ms: u64, flap_threshold: u32) -> AlertPolicyView {
        AlertPolicyView {
            grace_ms,
            flap_window_ms: 600 * S,
            flap_threshold,
        }
    }

    fn at(mut e: FleetEvent, at: u64) -> FleetEvent {
        e.at_unix_ms = at;
        e
    }

    fn failed(id: i64) -> FleetEvent {
        event(
            id,
            FleetEventKind::Transition,
            Some("running"),
            Some("failed"),
            Some(Exit::Code(1)),
        )
    }

    fn running(id: i64) -> FleetEvent {
        event(
            id,
            FleetEventKind::Transition,
            Some("failed"),
            Some("running"),
            None,
        )
    }

    fn notifier(grace_ms: u64, flap_threshold: u32) -> Notifier {
        let mut n = Notifier::new(false);
        n.set_policy("home", policy(grace_ms, flap_threshold));
        n
    }

    fn summaries(notices: &[super::Notice]) -> Vec<&str> {
        notices.iter().map(|n| n.summary.as_str()).collect()
    }

    /// Feeds `script` (event, the desktop's clock when it arrives) with `due` called every
    /// second in between, as the Tauri side does; answers every notice shown, in order.
    fn run(n: &mut Notifier, script: &[(FleetEvent, u64)], until: u64) -> Vec<super::Notice> {
        let mut shown = Vec::new();
        let mut clock = T0;
        for (e, now) in script {
            while clock < *now {
                shown.extend(n.due(clock, &HashMap::new()));
                clock += S;
            }
            shown.extend(n.on_event_at("home", e, *now));
        }
        while clock <= until {
            shown.extend(n.due(clock, &HashMap::new()));
            clock += S;
        }
        shown
    }

    #[test]
    fn a_problem_that_clears_within_the_grace_is_not_notified_nor_its_recovery() {
        let mut n = notifier(30 * S, 3);
        let shown = run(
            &mut n,
            &[(failed(1), T0 + S), (running(2), T0 + 11 * S)],
            T0 + 120 * S,
        );
        assert!(shown.is_empty(), "{shown:#?}");
    }

    #[test]
    fn a_problem_that_outlasts_the_grace_is_notified_then_and_its_recovery_too() {
        let mut n = notifier(30 * S, 3);
        assert!(n.on_event_at("home", &failed(1), T0).is_none(), "waits");
        assert!(n.due(T0 + 29 * S, &HashMap::new()).is_empty());
        let shown = n.due(T0 + 30 * S, &HashMap::new());
        assert_eq!(summaries(&shown), ["api crashed on web-1"]);
        assert!(n.due(T0 + 90 * S, &HashMap::new()).is_empty(), "once");
        let back = n.on_event_at("home", &running(2), T0 + 95 * S);
        assert_eq!(
            back.map(|b| b.summary),
            Some("api recovered on web-1".to_owned())
        );
    }

    #[test]
    fn problem_to_problem_is_one_notice_due_when_the_first_was() {
        let mut n = notifier(30 * S, 3);
        let looping = event(
            2,
            FleetEventKind::Transition,
            Some("failed"),
            Some("crash-looping"),
            Some(Exit::Code(1)),
        );
        let shown = run(
            &mut n,
            &[(failed(1), T0), (looping, T0 + 20 * S)],
            T0 + 30 * S,
        );
        assert_eq!(summaries(&shown), ["api crashed on web-1"], "{shown:#?}");
        // Stopping in between neither clears nor repeats it.
        let mut n = notifier(30 * S, 3);
        let stopped = event(
            2,
            FleetEventKind::Transition,
            Some("failed"),
            Some("stopped"),
            None,
        );
        let shown = run(
            &mut n,
            &[(failed(1), T0), (stopped, T0 + 5 * S)],
            T0 + 30 * S,
        );
        assert_eq!(
            summaries(&shown)
                .iter()
                .filter(|s| s.contains("crashed"))
                .count(),
            1,
            "{shown:#?}"
        );
    }

    #[test]
    fn a_crash_the_restart_policy_healed_is_told_at_once() {
        let mut n = notifier(30 * S, 3);
        let mut blip = event(
            1,
            FleetEventKind::Restarted,
            Some("running"),
            Some("running"),
            Some(Exit::Signal(9)),
        );
        blip.severity = Severity::Warning;
        assert!(n.on_event_at("home", &blip, T0).is_some());
    }

    #[test]
    fn no_grace_notifies_at_once_and_other_kinds_wait_too() {
        let mut n = notifier(0, 3);
        assert!(n.on_event_at("home", &failed(1), T0).is_some());
        let mut n = notifier(30 * S, 3);
        let check = |id, kind| event(id, kind, None, None, None);
        let shown = run(
            &mut n,
            &[
                (check(1, FleetEventKind::CheckFailed), T0),
                (check(2, FleetEventKind::CheckPassed), T0 + 10 * S),
                (check(3, FleetEventKind::HostDown), T0 + 20 * S),
            ],
            T0 + 60 * S,
        );
        assert_eq!(summaries(&shown), ["web-1 is down"], "{shown:#?}");
    }

    #[test]
    fn a_silence_made_during_the_grace_covers_the_waiting_problem() {
        let mut n = notifier(30 * S, 3);
        assert!(n.on_event_at("home", &failed(1), T0).is_none());
        n.set_silences(
            "home",
            vec![Silence {
                id: 1,
                hosts: "web-1".into(),
                apps: None,
                kind: None,
                reason: "deploy".into(),
                created_by: "ops".into(),
                starts_unix_ms: 0,
                ends_unix_ms: u64::MAX,
                removed_unix_ms: None,
                removed_by: None,
            }],
        );
        assert!(n.due(T0 + 60 * S, &HashMap::new()).is_empty());
    }

    #[test]
    fn flapping_follows_the_collectors_threshold_and_supersedes_the_grace() {
        // Crashes every minute, each back in 10 s: within the grace, so none is told on its
        // own; the fifth makes it flapping, told at once.
        let mut n = notifier(30 * S, 5);
        let mut script = Vec::new();
        for i in 0..5u64 {
            let t = T0 + i * 60 * S;
            script.push((at(failed(2 * i as i64 + 1), t), t));
            if i < 4 {
                script.push((at(running(2 * i as i64 + 2), t + 10 * S), t + 10 * S));
            }
        }
        let shown = run(&mut n, &script, T0 + 4 * 60 * S + 60 * S);
        assert_eq!(
            summaries(&shown),
            ["api keeps crashing on web-1"],
            "{shown:#?}"
        );
        assert!(
            shown[0].body.contains("5 times within 10 min"),
            "{}",
            shown[0].body
        );
        // Below two, flap detection is off (as the collector's): every crash is its own.
        let mut n = notifier(0, 1);
        let told = (0..5)
            .filter_map(|i| n.on_event_at("home", &at(failed(i + 1), T0 + i as u64 * S), T0))
            .count();
        assert_eq!(told, 5);
    }
}

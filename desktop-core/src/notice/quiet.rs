//! What keeps notices quiet besides do-not-disturb and the grace ([`super::grace`]): the
//! collector's silences (the same rule the collector applies to its channels,
//! [`Silence::covers`]), and flapping, by the collector's own flap settings. An app that keeps
//! crashing raises one notice, then one "flapping" notice once it has crashed `flap_threshold`
//! times within `flap_window` (by default [`FLAP_THRESHOLD`] within [`FLAP_WINDOW_MS`]; its
//! further crashes and recoveries are held), then one notice when it has been quiet for a whole
//! window.

use std::collections::{HashMap, VecDeque};

use fleetdeck_proto::desktop::AppRef;
use fleetdeck_proto::{AlertPolicyView, FleetEvent, FleetEventKind, Severity, Silence};

use super::Notice;

pub const FLAP_WINDOW_MS: u64 = 10 * 60_000;
pub const FLAP_THRESHOLD: u32 = 3;

/// The collector's defaults: what notices follow until a collector says otherwise (older
/// collectors do not), with no grace so that nothing waits on a policy not yet read.
pub const DEFAULT_POLICY: AlertPolicyView = AlertPolicyView {
    grace_ms: 0,
    flap_window_ms: FLAP_WINDOW_MS,
    flap_threshold: FLAP_THRESHOLD,
};

/// The aspect a silence names for an event's kind.
pub fn aspect_of(kind: FleetEventKind) -> &'static str {
    match kind {
        FleetEventKind::Transition
        | FleetEventKind::AppUnwatched
        | FleetEventKind::Restarted
        | FleetEventKind::HostDown
        | FleetEventKind::HostUp => "state",
        FleetEventKind::CheckFailed | FleetEventKind::CheckPassed => "check",
        FleetEventKind::SourceDown | FleetEventKind::SourceUp => "source",
        FleetEventKind::ThresholdFired | FleetEventKind::ThresholdCleared => "threshold",
        FleetEventKind::ClockSkew | FleetEventKind::ClockOk => "clock",
        FleetEventKind::CertExpiring | FleetEventKind::CertRenewed => "cert-expiring",
    }
}

/// Whether one of `silences` covers `event` at its time.
pub fn silenced(silences: &[Silence], event: &FleetEvent) -> bool {
    let kind = aspect_of(event.kind);
    silences.iter().any(|s| {
        let app = event.app.as_deref();
        s.covers(&event.host, app, kind, event.at_unix_ms)
            // A certificate silence of either level covers the certificate's events.
            || (kind == "cert-expiring"
                && s.kind.as_deref() == Some("cert-critical")
                && s.active(event.at_unix_ms)
                && fleetdeck_proto::glob_match(&s.hosts, &event.host))
    })
}

/// An app's crash: it failed or crash-loops, or its restart policy healed a crash.
fn is_crash(event: &FleetEvent) -> bool {
    match event.kind {
        FleetEventKind::Transition => {
            matches!(event.to.as_deref(), Some("failed" | "crash-looping"))
        }
        FleetEventKind::Restarted => event.severity == Severity::Warning,
        _ => false,
    }
}

#[derive(Debug, Default)]
struct Flap {
    crashes: VecDeque<u64>,
    /// While flapping: crashes held, the first and last event's time, the latest state.
    flapping: Option<(u32, u64, u64, String)>,
    /// The window it settles after (the collector's when it began flapping).
    window_ms: u64,
    target: Option<AppRef>,
}

/// Per (collector, host, app): recent crashes and whether it is flapping.
#[derive(Debug, Default)]
pub struct Flaps(HashMap<(String, String, String), Flap>);

impl Flaps {
    /// Lets `notice` (for `event` of `collector`) through, replaces it by the "flapping" notice,
    /// or holds it (`None`).
    pub fn filter(
        &mut self,
        collector: &str,
        event: &FleetEvent,
        notice: Notice,
        policy: &AlertPolicyView,
    ) -> Option<Notice> {
        let Some(app) = event.app.as_deref() else {
            return Some(notice);
        };
        if !matches!(
            event.kind,
            FleetEventKind::Transition | FleetEventKind::Restarted
        ) {
            return Some(notice);
        }
        let key = (collector.to_owned(), event.host.clone(), app.to_owned());
        let flap = self.0.entry(key).or_default();
        let at = event.at_unix_ms;
        let state = event.to.clone().unwrap_or_default();
        if let Some((held, _, last, now_state)) = flap.flapping.as_mut() {
            if is_crash(event) {
                *held += 1;
            }
            *last = (*last).max(at);
            *now_state = state;
            return None;
        }
        let (window, threshold) = (policy.flap_window_ms, policy.flap_threshold as usize);
        if !is_crash(event) || window == 0 || threshold < 2 {
            return Some(notice);
        }
        while flap
            .crashes
            .front()
            .is_some_and(|&t| t.saturating_add(window) <= at)
        {
            flap.crashes.pop_front();
        }
        flap.crashes.push_back(at);
        if flap.crashes.len() < threshold {
            return Some(notice);
        }
        let first = flap.crashes.front().copied().unwrap_or(at);
        flap.flapping = Some((0, first, at, state));
        flap.window_ms = window;
        flap.target = Some(notice.target.clone());
        Some(Notice {
            summary: format!("{app} keeps crashing on {}", event.host),
            body: format!(
                "{app} on {} crashed {} times within {} min; further crashes of it are not \
                 notified until it has been quiet for {} min. Collector {collector}.",
                event.host,
                flap.crashes.len(),
                minutes(window),
                minutes(window),
            ),
            critical: true,
            target: notice.target,
        })
    }

    /// The "settled" notices of apps quiet for a whole window at `now_unix_ms`.
    pub fn due(&mut self, now_unix_ms: u64) -> Vec<Notice> {
        let mut out = Vec::new();
        for ((collector, host, app), flap) in &mut self.0 {
            let Some((held, first, last, state)) = flap.flapping.clone() else {
                continue;
            };
            if now_unix_ms.saturating_sub(last) < flap.window_ms {
                continue;
            }
            flap.flapping = None;
            flap.crashes.clear();
            let Some(target) = flap.target.take() else {
                continue;
            };
            let state = if state.is_empty() {
                "unknown".to_owned()
            } else {
                state
            };
            out.push(Notice {
                summary: format!("{app} on {host} has settled"),
                body: format!(
                    "{app} on {host} stopped flapping ({held} more crashes over {} min held); \
                     it is {state} now. Collector {collector}.",
                    last.saturating_sub(first).div_ceil(60_000).max(1)
                ),
                critical: false,
                target,
            });
        }
        out.sort_by(|a, b| a.summary.cmp(&b.summary));
        out
    }

    /// Whether the app of `event` is flapping now.
    pub fn is_flapping(&self, collector: &str, event: &FleetEvent) -> bool {
        let app = event.app.clone().unwrap_or_default();
        self.0
            .get(&(collector.to_owned(), event.host.clone(), app))
            .is_some_and(|f| f.flapping.is_some())
    }

    pub fn forget(&mut self, collector: &str) {
        self.0.retain(|(c, _, _), _| c != collector);
    }
}

/// A window in whole minutes, at least one, for a person.
fn minutes(ms: u64) -> u64 {
    ms.div_ceil(60_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::kinds::tests::event;
    use super::super::Notifier;
    use super::*;
    use fleetdeck_proto::Exit;

    fn crash(id: i64, at: u64) -> FleetEvent {
        let mut e = event(
            id,
            FleetEventKind::Transition,
            Some("running"),
            Some("crash-looping"),
            Some(Exit::Code(1)),
        );
        e.at_unix_ms = at;
        e
    }

    fn running(id: i64, at: u64) -> FleetEvent {
        let mut e = event(
            id,
            FleetEventKind::Transition,
            Some("crash-looping"),
            Some("running"),
            None,
        );
        e.at_unix_ms = at;
        e
    }

    #[test]
    fn a_crash_loop_is_one_notice_one_flapping_notice_and_one_when_it_settles() {
        let min = 60_000;
        let t0 = 1_800_000_000_000;
        let mut n = Notifier::new(false);
        let mut shown = Vec::new();
        // Eight crashes and restarts within four minutes, as the demo's crash-looping app does.
        for i in 0..8i64 {
            let at = t0 + i as u64 * 30_000;
            shown.extend(n.on_event("home", &crash(2 * i + 1, at)));
            shown.extend(n.on_event("home", &running(2 * i + 2, at + 10_000)));
        }
        let summaries: Vec<&str> = shown.iter().map(|s| s.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "api crashed on web-1",
                "api recovered on web-1",
                "api crashed on web-1",
                "api recovered on web-1",
                "api keeps crashing on web-1",
            ],
            "{shown:#?}"
        );
        let last = t0 + 7 * 30_000 + 10_000;
        assert!(
            n.due(last + 5 * min, &HashMap::new()).is_empty(),
            "not quiet long enough"
        );
        let settled = n.due(last + FLAP_WINDOW_MS, &HashMap::new());
        assert_eq!(settled.len(), 1, "{settled:?}");
        assert_eq!(settled[0].summary, "api on web-1 has settled");
        assert!(
            settled[0].body.contains("it is running now"),
            "{}",
            settled[0].body
        );
        // Quiet again: the next crash is news.
        let next = n.on_event("home", &crash(100, last + FLAP_WINDOW_MS + min));
        assert_eq!(
            next.map(|x| x.summary),
            Some("api crashed on web-1".to_owned())
        );
    }

    fn silence(hosts: &str, apps: Option<&str>, kind: Option<&str>) -> Silence {
        Silence {
            id: 1,
            hosts: hosts.into(),
            apps: apps.map(Into::into),
            kind: kind.map(Into::into),
            reason: "r".into(),
            created_by: "k".into(),
            starts_unix_ms: 0,
            ends_unix_ms: u64::MAX,
            removed_unix_ms: None,
            removed_by: None,
        }
    }

    #[test]
    fn a_silenced_event_raises_no_notice() {
        let t = 1_800_000_000_000;
        let mut n = Notifier::new(false);
        n.set_silences("home", vec![silence("web-*", Some("api"), None)]);
        assert!(n.on_event("home", &crash(1, t)).is_none(), "silenced");
        // Another collector's silences do not apply; a check-only silence does not cover a crash.
        assert!(n.on_event("work", &crash(1, t)).is_some());
        n.set_silences("home", vec![silence("*", None, Some("check"))]);
        assert!(n.on_event("home", &crash(2, t)).is_some());
        // Ended or removed: notices again.
        let mut ended = silence("*", None, None);
        ended.ends_unix_ms = t;
        n.set_silences("home", vec![ended]);
        assert!(n.on_event("home", &crash(3, t + 1)).is_some());
    }
}

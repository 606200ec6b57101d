//! Which fleet events deserve a desktop notification, and what it says: one per crash (with its
//! exit, OOM kill, memory and last log line), recovery, failing or passing check, source down or
//! up, threshold fired or cleared, clock skew, host down or up ([`kinds`]); the [`Notifier`] shows
//! each event at most once, and follows each collector's alert rules: its silences, its grace
//! ([`grace`]) and its flap settings ([`quiet`]). Showing it is the Tauri side's job.

use std::collections::HashMap;

use fleetdeck_proto::desktop::{AppRef, ConnState, ConnStatus};
pub use fleetdeck_proto::signal_name;
use fleetdeck_proto::{AlertPolicyView, FleetEvent};

mod grace;
mod kinds;
mod quiet;
pub use grace::is_problem_entry;
pub use kinds::{cut_chars, describe_exit, notice_for};
pub use quiet::{aspect_of, DEFAULT_POLICY, FLAP_THRESHOLD, FLAP_WINDOW_MS};

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
    /// Each collector's silences, as last read.
    silences: HashMap<String, Vec<fleetdeck_proto::Silence>>,
    /// Each collector's alert timing, as its fleet last said.
    policies: HashMap<String, AlertPolicyView>,
    flaps: quiet::Flaps,
    grace: grace::Grace,
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
            silences: HashMap::new(),
            policies: HashMap::new(),
            flaps: quiet::Flaps::default(),
            grace: grace::Grace::default(),
        }
    }

    /// The alert timing of `collector` (from its fleet): notices follow its grace and flap
    /// settings from now on.
    pub fn set_policy(&mut self, collector: &str, policy: AlertPolicyView) {
        self.policies.insert(collector.to_owned(), policy);
    }

    fn policy(&self, collector: &str) -> AlertPolicyView {
        self.policies
            .get(collector)
            .copied()
            .unwrap_or(DEFAULT_POLICY)
    }

    /// The silences of `collector` as last read: an event they cover raises no notice.
    pub fn set_silences(&mut self, collector: &str, silences: Vec<fleetdeck_proto::Silence>) {
        self.silences.insert(collector.to_owned(), silences);
    }

    /// Drops a silence just ended (before the next read says so).
    pub fn remove_silence(&mut self, collector: &str, id: i64) {
        if let Some(all) = self.silences.get_mut(collector) {
            all.retain(|s| s.id != id);
        }
    }

    /// Adds one silence just made (before the next read brings it).
    pub fn add_silence(&mut self, collector: &str, silence: fleetdeck_proto::Silence) {
        let all = self.silences.entry(collector.to_owned()).or_default();
        all.retain(|s| s.id != silence.id);
        all.push(silence);
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

    /// [`Notifier::on_event_at`] now, by this machine's clock.
    pub fn on_event(&mut self, collector: &str, event: &FleetEvent) -> Option<Notice> {
        self.on_event_at(collector, event, now_ms())
    }

    /// The notice to show for `event` at `now_ms`, if any. An event seen before (id at most the
    /// highest seen from that collector) gives none; with do-not-disturb on, none is given but
    /// the event still counts as seen, so turning it off does not replay the past. A problem
    /// waits for the collector's grace ([`Notifier::due`] shows it then).
    pub fn on_event_at(
        &mut self,
        collector: &str,
        event: &FleetEvent,
        now_ms: u64,
    ) -> Option<Notice> {
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
        let notice = notice_for(collector, event)?;
        if self.silenced(collector, event) {
            return None;
        }
        let policy = self.policy(collector);
        let notice = self.flaps.filter(collector, event, notice, &policy)?;
        if self.flaps.is_flapping(collector, event) {
            // The flapping notice, at once: it supersedes the problem waiting for its grace.
            self.grace.drop_subject(collector, event);
            return Some(notice);
        }
        self.grace
            .filter(collector, event, notice, policy.grace_ms, now_ms)
    }

    fn silenced(&self, collector: &str, event: &FleetEvent) -> bool {
        self.silences
            .get(collector)
            .is_some_and(|s| quiet::silenced(s, event))
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
        let settled = self.flaps.due(now_unix_ms);
        let waited = self.grace.due(now_unix_ms);
        if !dnd {
            out.extend(settled);
            // A silence made while the problem waited covers it now (as it holds the alert).
            let waited: Vec<Notice> = waited
                .into_iter()
                .filter(|(collector, w)| !self.silenced(collector, &w.event))
                .map(|(_, w)| w.notice)
                .collect();
            out.extend(waited);
        }
        out
    }

    /// A collector was removed: nothing more about it.
    pub fn forget(&mut self, collector: &str) {
        self.seen.remove(collector);
        self.failing.remove(collector);
        self.silences.remove(collector);
        self.policies.remove(collector);
        self.flaps.forget(collector);
        self.grace.forget(collector);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    use super::kinds::tests::event;
    use super::*;
    use fleetdeck_proto::{Exit, FleetEventKind};

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

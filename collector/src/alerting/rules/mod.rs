//! Alert detection: which status transitions deserve an alert, and when.
//!
//! This module is pure: no I/O and no clock. Every time is an explicit millisecond argument
//! (`Transition::at_ms`, `tick(now_ms)`), so each rule below is a deterministic unit test over
//! exact times. Delivering what it decides is [`super::notify`]'s job.
//!
//! Rules, per subject (a host, or one app on a host):
//! - Entering a problem state (an app failed or crash-looping, a host down) from any other state
//!   starts a *pending* problem. If the subject is still in a problem state when the grace period
//!   has passed, one `Problem` alert goes out; if it recovered within the grace period, nothing
//!   goes out at all (no problem, so no recovery either). A problem followed by another problem
//!   state (failed, then crash-looping) is the same problem.
//! - Once a `Problem` alert has gone out, the alert is *open*: the next time the subject is healthy
//!   a `Recovery` alert says how long it was out. Passing through a neutral state (stopped,
//!   starting, unknown...) keeps the alert open, and re-entering a problem state while the alert
//!   is open does not repeat it: nobody told the operator it was fixed.
//! - Flapping: when the problem entries within the flap window reach the threshold, one
//!   `Flapping` alert goes out and every further `Problem`/`Recovery` alert of that subject is held.
//!   When the subject has had no transition for a whole flap window, one `FlapEnded` summary goes
//!   out (how many problems, between when, and the current state) and the rules return to normal.
//!   If the subject ends flapping healthy, the summary is its recovery message; otherwise the alert
//!   stays open and a `Recovery` follows when it is healthy again.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use fleetdeck_proto::signal_name;
use fleetdeck_proto::{AppState, CheckResult, CrashContext, Exit, Severity, ThresholdHit};
use serde::{Deserialize, Serialize};

/// How a state counts for alerting. The caller classifies states, so the rules need not know
/// every source's vocabulary (systemd, Docker, missed polls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// App running, host up.
    Ok,
    /// App failed or crash-looping, host down.
    Problem,
    /// Neither: stopped, starting, stopping, unknown, not found. Deliberate or transient states
    /// that neither raise nor clear an alert.
    Other,
    /// A problem that already healed by itself: a crash the restart policy recovered before
    /// anyone looked (the app is running again). Announced once, at once, with its context.
    Blip,
}

/// Which side of a subject a transition is about. Each aspect of a host or app is a subject of
/// its own for the rules: a failing check and a crash of the same app are two alerts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "aspect", content = "name")]
pub enum Aspect {
    /// The app's state (failed, crash-looping, stopped unexpectedly, not found) or the host's
    /// (down).
    #[default]
    State,
    /// One endpoint check of the app, by name.
    Check(String),
    /// A status source of the host (`docker`, `systemd`).
    Source(String),
    /// The agent's clock against the collector's.
    Clock,
    /// An HTTPS check's certificate expires within 14 days (a warning), by check name.
    CertExpiring(String),
    /// ... within 3 days, or has expired (critical): a second alert, like a second rule.
    CertCritical(String),
    /// A threshold rule over samples (`alerting::thresholds`), on one subject: a mount point,
    /// a check's name, or none (host figures, or the app itself).
    Threshold {
        rule: String,
        subject: Option<String>,
    },
}

/// Why a transition happened, for the alert's text and every channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// A crash's context, when the agent captured one.
    pub context: Option<CrashContext>,
    /// The check's result, for [`Aspect::Check`].
    pub check: Option<CheckResult>,
    /// What a threshold rule saw (thresholds raise alerts without transitions).
    pub threshold: Option<ThresholdHit>,
    /// One line more: a source's error, the clock's skew, "stopped without a request".
    pub reason: Option<String>,
}

impl From<AppState> for Health {
    fn from(state: AppState) -> Self {
        match state {
            AppState::Running => Health::Ok,
            AppState::Failed | AppState::CrashLooping => Health::Problem,
            AppState::Starting
            | AppState::Stopping
            | AppState::Stopped
            | AppState::Unknown
            | AppState::NotFound => Health::Other,
        }
    }
}

/// One status change of a host or an app, as the collector saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub host: String,
    /// The app, or `None` for the host itself.
    pub app: Option<String>,
    /// The new state's text as a person reads it: `failed`, `crash-looping`, `running`, `up`,
    /// or for a host something like `down: 2 polls missed` (used verbatim in messages).
    pub state: String,
    pub health: Health,
    /// How the app's main process last ended, when the new state is about an exit.
    pub exit: Option<Exit>,
    /// When it happened, in Unix milliseconds.
    pub at_ms: u64,
    pub aspect: Aspect,
    /// How bad it is when `health` is `Problem` or `Blip`.
    pub severity: Severity,
    pub detail: Detail,
}

/// When to alert. Loaded from the collector's config (`grace = "30s"`, `flap_window = "10m"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertPolicy {
    /// A problem that clears within this time raises no alert: a restart that works is no news.
    /// Zero alerts at once.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The window in which problem entries are counted for flapping, and the quiet time after
    /// which a flapping subject counts as stable again. Zero turns flap detection off.
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
    /// How many problem entries within the window make a subject flapping. Below 2 turns flap
    /// detection off (one problem is not a flap).
    pub flap_threshold: u32,
}

impl AlertPolicy {
    /// What the fleet API tells the desktop.
    pub fn view(&self) -> fleetdeck_proto::AlertPolicyView {
        fleetdeck_proto::AlertPolicyView {
            grace_ms: millis(self.grace),
            flap_window_ms: millis(self.flap_window),
            flap_threshold: self.flap_threshold,
        }
    }
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            flap_window: Duration::from_secs(600),
            flap_threshold: 3,
        }
    }
}

/// What an alert announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// A subject entered a problem state and stayed there past the grace period.
    Problem,
    /// A subject whose problem was announced is healthy again.
    Recovery,
    /// A subject keeps failing; its further alerts are held.
    Flapping,
    /// A flapping subject has been quiet for a flap window: the summary of what was held.
    FlapEnded,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Problem => "problem",
            Self::Recovery => "recovery",
            Self::Flapping => "flapping",
            Self::FlapEnded => "flap-ended",
        }
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, ready to be stored and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub host: String,
    pub app: Option<String>,
    /// The subject's state when the alert was raised.
    pub state: String,
    pub exit: Option<Exit>,
    /// One sentence for a person, e.g. `web on vm-1 failed (exit code 3)`.
    pub message: String,
    /// When what the alert announces happened (Unix ms): the entry into the problem for
    /// `Problem` and `Flapping`, the return to health for `Recovery`, and the end of the quiet
    /// window for `FlapEnded`.
    pub at_ms: u64,
    pub aspect: Aspect,
    pub severity: Severity,
    pub detail: Detail,
    /// The subject is healthy as this goes out: a recovery, a crash its restart policy healed, a
    /// flap that ended healthy. It resolves the subject's open alert in the history.
    pub healthy: bool,
}

/// The detector: feed it transitions and clock ticks, it answers with alerts to send.
#[derive(Debug)]
pub struct Rules {
    policy: AlertPolicy,
    // A BTreeMap so that `tick` reports subjects in a stable order.
    subjects: BTreeMap<SubjectKey, Subject>,
}

/// (host, app, aspect); app `None` is the host itself. Each aspect is a subject of its own.
type SubjectKey = (String, Option<String>, Aspect);

/// What the rules remember about one subject.
#[derive(Debug)]
struct Subject {
    /// The last state seen; empty before the first transition.
    state: String,
    health: Health,
    exit: Option<Exit>,
    /// How bad the last problem transition said it is, and why.
    severity: Severity,
    detail: Detail,
    /// When the last transition happened; per-subject time never runs backwards.
    last_change_ms: u64,
    /// The entry into a problem state that waits for the grace period to pass.
    pending: Option<u64>,
    /// An alert told the operator about a problem and no recovery has followed yet.
    open: bool,
    /// When the subject first entered a problem state since it was last healthy: the start of
    /// the outage a recovery message measures.
    down_since: Option<u64>,
    /// Problem entries within the last flap window, oldest first.
    entries: VecDeque<u64>,
    flap: Option<Flap>,
}

/// An ongoing flapping episode.
#[derive(Debug)]
struct Flap {
    first_ms: u64,
    last_ms: u64,
    count: u32,
}

impl Default for Subject {
    fn default() -> Self {
        Self {
            state: String::new(),
            // Before the first transition nothing is known; that is not a problem, so a first
            // transition into a problem state is an entry.
            health: Health::Other,
            exit: None,
            severity: Severity::Critical,
            detail: Detail::default(),
            last_change_ms: 0,
            pending: None,
            open: false,
            down_since: None,
            entries: VecDeque::new(),
            flap: None,
        }
    }
}

impl Subject {
    /// Nothing here that a fresh subject would not also do: safe to forget, which keeps the map
    /// as small as the set of subjects that are unwell or recently were.
    fn is_idle(&self) -> bool {
        self.health != Health::Problem
            && self.pending.is_none()
            && !self.open
            && self.down_since.is_none()
            && self.entries.is_empty()
            && self.flap.is_none()
    }
}

impl Rules {
    /// Takes up a new policy (a reload); what is pending or open stays.
    /// Drops every subject of `host` (one no longer watched): nothing pending, nothing open.
    pub fn forget_host(&mut self, host: &str) {
        self.subjects.retain(|(h, _, _), _| h != host);
    }

    /// Drops every subject of app `app` of `host` (no longer watched).
    pub fn forget_app(&mut self, host: &str, app: Option<&str>) {
        self.subjects
            .retain(|(h, a, _), _| !(h == host && a.as_deref() == app));
    }

    pub fn set_policy(&mut self, policy: AlertPolicy) {
        self.policy = policy;
    }

    pub fn new(policy: AlertPolicy) -> Self {
        Self {
            policy,
            subjects: BTreeMap::new(),
        }
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Takes one transition; answers the alerts it causes at once (with a zero grace period, a
    /// recovery, the start of flapping), and first any that fell due before it happened, so the
    /// result does not depend on whether `tick` ran in between.
    ///
    /// A transition to the state the subject is already in (the same change seen by both the
    /// event stream and a poll) changes nothing. A transition dated before the subject's previous
    /// one is taken as happening at the same time as that one, so per-subject time never runs
    /// backwards.
    pub fn observe(&mut self, t: &Transition) -> Vec<Alert> {
        let key = (t.host.clone(), t.app.clone(), t.aspect.clone());
        let policy = &self.policy;
        let subject = self.subjects.entry(key.clone()).or_default();
        let mut alerts = Vec::new();
        let at = t.at_ms.max(subject.last_change_ms);

        advance(policy, &key, subject, at, &mut alerts);

        if subject.state == t.state && subject.health == t.health && t.health != Health::Blip {
            return alerts;
        }
        let was = subject.health;
        subject.state.clone_from(&t.state);
        // A blip leaves the subject healthy (the restart policy healed it).
        subject.health = if t.health == Health::Blip {
            Health::Ok
        } else {
            t.health
        };
        subject.exit = t.exit;
        if matches!(t.health, Health::Problem | Health::Blip) || subject.flap.is_none() {
            subject.severity = t.severity;
            subject.detail = t.detail.clone();
        }
        subject.last_change_ms = at;

        if t.health == Health::Blip {
            // Announced once, at once: no grace (it is over already), no pending, no recovery.
            // It still counts as a problem entry for flapping, and a flap under way holds it.
            let message = format!(
                "{} {}{}",
                subject_name(&key),
                blip_phrase(t.exit),
                why(&subject.detail)
            );
            subject.entries.push_back(at);
            prune_entries(&mut subject.entries, millis(policy.flap_window), at);
            if let Some(flap) = &mut subject.flap {
                flap.count = flap.count.saturating_add(1);
                flap.last_ms = at;
            } else {
                alerts.push(alert(AlertKind::Problem, &key, subject, message, at));
            }
        }

        match t.health {
            Health::Problem if was != Health::Problem => {
                enter_problem(policy, &key, subject, at, &mut alerts);
            }
            Health::Ok | Health::Blip => {
                subject.pending = None;
                if subject.flap.is_none() && subject.open {
                    let since = subject.down_since.unwrap_or(at);
                    alerts.push(alert(
                        AlertKind::Recovery,
                        &key,
                        subject,
                        format!(
                            "{} recovered after {}",
                            subject_name(&key),
                            human_duration(at.saturating_sub(since))
                        ),
                        at,
                    ));
                    subject.open = false;
                }
                subject.down_since = None;
            }
            // Problem to problem is the same problem; a neutral state neither raises nor clears.
            Health::Problem | Health::Other => {}
        }

        // A zero grace period makes the new pending problem due right now.
        advance(policy, &key, subject, at, &mut alerts);
        if subject.is_idle() {
            self.subjects.remove(&key);
        }
        alerts
    }

    /// Answers the alerts that fell due by `now_ms`: problems that outlasted the grace period
    /// and flapping episodes that have been quiet for a flap window.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for (key, subject) in &mut self.subjects {
            advance(&self.policy, key, subject, now_ms, &mut alerts);
        }
        self.subjects.retain(|_, subject| !subject.is_idle());
        alerts.sort_by_key(|a| a.at_ms);
        alerts
    }

    /// The earliest time at which `tick` may have something to say, so the caller sleeps until
    /// then instead of polling.
    pub fn next_deadline(&self) -> Option<u64> {
        let grace = millis(self.policy.grace);
        let window = millis(self.policy.flap_window);
        self.subjects
            .values()
            .flat_map(|s| {
                let pending = s.pending.map(|p| p.saturating_add(grace));
                let flap = s
                    .flap
                    .as_ref()
                    .map(|_| s.last_change_ms.saturating_add(window));
                pending.into_iter().chain(flap)
            })
            .min()
    }
}

/// Counts an entry into a problem state: it either starts flapping, is held by a flap under
/// way, becomes a pending problem, or (while an alert is already open) only counts.
fn enter_problem(
    policy: &AlertPolicy,
    key: &SubjectKey,
    subject: &mut Subject,
    at: u64,
    alerts: &mut Vec<Alert>,
) {
    subject.down_since.get_or_insert(at);
    let window = millis(policy.flap_window);
    subject.entries.push_back(at);
    prune_entries(&mut subject.entries, window, at);

    if let Some(flap) = &mut subject.flap {
        flap.count = flap.count.saturating_add(1);
        flap.last_ms = at;
        return;
    }
    let count = u32::try_from(subject.entries.len()).unwrap_or(u32::MAX);
    if policy.flap_threshold >= 2 && count >= policy.flap_threshold {
        let first_ms = subject.entries.front().copied().unwrap_or(at);
        subject.flap = Some(Flap {
            first_ms,
            last_ms: at,
            count,
        });
        // The flapping alert supersedes the problem waiting for its grace period, and it tells
        // the operator something is wrong: the alert is open until a recovery or summary.
        subject.pending = None;
        subject.open = true;
        let message = format!(
            "{} is flapping: {} in {}; further alerts held until it is stable",
            subject_name(key),
            problems(key, count),
            human_duration(window)
        );
        alerts.push(alert(AlertKind::Flapping, key, subject, message, at));
        return;
    }
    if !subject.open && subject.pending.is_none() {
        subject.pending = Some(at);
    }
}

/// Brings one subject up to `now`: raises the problem whose grace period has passed, ends a
/// flapping episode that has been quiet for a window, forgets problem entries out of the window.
fn advance(
    policy: &AlertPolicy,
    key: &SubjectKey,
    subject: &mut Subject,
    now: u64,
    alerts: &mut Vec<Alert>,
) {
    let window = millis(policy.flap_window);
    prune_entries(&mut subject.entries, window, now);

    if let Some(since) = subject.pending {
        if since.saturating_add(millis(policy.grace)) <= now {
            subject.pending = None;
            // Only if still unwell: a subject that went to a neutral state (stopped by the
            // operator, say) within the grace period raises nothing.
            if subject.health == Health::Problem {
                let message = format!(
                    "{} {}{}",
                    subject_name(key),
                    state_phrase(&subject.state, subject.exit),
                    why(&subject.detail)
                );
                alerts.push(alert(AlertKind::Problem, key, subject, message, since));
                subject.open = true;
            }
        }
    }

    let quiet_until = subject.last_change_ms.saturating_add(window);
    if subject.flap.is_some() && quiet_until <= now {
        if let Some(flap) = subject.flap.take() {
            let message = format!(
                "{} stopped flapping after {} between {}; now {}",
                subject_name(key),
                problems(key, flap.count),
                utc_span(flap.first_ms, flap.last_ms),
                now_phrase(subject)
            );
            alerts.push(alert(
                AlertKind::FlapEnded,
                key,
                subject,
                message,
                quiet_until,
            ));
            subject.entries.clear();
            // Ending healthy, the summary is the recovery message. Otherwise the operator was
            // told of a problem and not of its end: the alert stays open for a recovery.
            subject.open = subject.health != Health::Ok;
        }
    }
}

/// Drops entries that are no longer within the window ending at `now`.
fn prune_entries(entries: &mut VecDeque<u64>, window: u64, now: u64) {
    while entries
        .front()
        .is_some_and(|&t| t.saturating_add(window) <= now)
    {
        entries.pop_front();
    }
}

fn alert(
    kind: AlertKind,
    key: &SubjectKey,
    subject: &Subject,
    message: String,
    at_ms: u64,
) -> Alert {
    Alert {
        kind,
        host: key.0.clone(),
        app: key.1.clone(),
        state: subject.state.clone(),
        exit: subject.exit,
        message,
        at_ms,
        aspect: key.2.clone(),
        severity: subject.severity,
        detail: subject.detail.clone(),
        healthy: subject.health == Health::Ok,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `web on vm-1` for an app, `vm-1` for a host; `check health of web on vm-1`, `the docker
/// source of vm-1`, `the clock of vm-1` for the other aspects.
fn subject_name((host, app, aspect): &SubjectKey) -> String {
    let who = match app {
        Some(app) => format!("{app} on {host}"),
        None => host.clone(),
    };
    match aspect {
        Aspect::Check(name) => format!("check {name} of {who}"),
        Aspect::Source(name) => format!("the {name} source of {who}"),
        Aspect::Clock => format!("the clock of {who}"),
        Aspect::CertExpiring(name) | Aspect::CertCritical(name) => {
            format!("the certificate of check {name} of {who}")
        }
        _ => who,
    }
}

/// `crashed and was restarted (exit code 1)`.
fn blip_phrase(exit: Option<Exit>) -> String {
    match exit {
        Some(exit) => format!("crashed ({}) and was restarted", exit_text(exit)),
        None => "crashed and was restarted".to_owned(),
    }
}

/// `: why` from the detail (a reason, a check's error, a crash's OOM kill and last log line),
/// or nothing.
fn why(detail: &Detail) -> String {
    let mut parts = Vec::new();
    if let Some(reason) = &detail.reason {
        parts.push(reason.clone());
    }
    if let Some(check) = &detail.check {
        if let Some(error) = &check.error {
            parts.push(error.clone());
        }
    }
    if let Some(context) = &detail.context {
        if context.oom_killed {
            parts.push("killed by the OOM killer".to_owned());
        }
        if let Some(line) = context.last_line() {
            parts.push(format!("last line: {line}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// `3 failures` for an app, `3 outages` for a host.
fn problems((_, app, _): &SubjectKey, count: u32) -> String {
    let noun = match (app.is_some(), count == 1) {
        (true, true) => "failure",
        (true, false) => "failures",
        (false, true) => "outage",
        (false, false) => "outages",
    };
    format!("{count} {noun}")
}

/// `failed (exit code 3)`, `is crash-looping (killed by SIGKILL)`, `is down: 2 polls missed`.
fn state_phrase(state: &str, exit: Option<Exit>) -> String {
    let mut phrase = if state == "failed" {
        state.to_owned()
    } else {
        format!("is {state}")
    };
    if let Some(exit) = exit {
        phrase.push_str(&format!(" ({})", exit_text(exit)));
    }
    phrase
}

/// The current state for a flap summary, with the exit when it is still unwell.
fn now_phrase(subject: &Subject) -> String {
    match (subject.health, subject.exit) {
        (Health::Problem, Some(exit)) => format!("{} ({})", subject.state, exit_text(exit)),
        _ => subject.state.clone(),
    }
}

fn exit_text(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit code {code}"),
        Exit::Signal(signal) => match signal_name(signal) {
            Some(name) => format!("killed by {name}"),
            None => format!("killed by signal {signal}"),
        },
    }
}

/// The two most significant units: `4m 12s`, `1h 30m`, `2d 3h`, `45s`, `0s`.
fn human_duration(ms: u64) -> String {
    let secs = ms / 1000;
    let units = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let parts: Vec<String> = units
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// `12:01 and 12:19 UTC`, with dates when the two are on different UTC days.
fn utc_span(first_ms: u64, last_ms: u64) -> String {
    let (first_day, first_hm) = utc_day_and_time(first_ms);
    let (last_day, last_hm) = utc_day_and_time(last_ms);
    if first_day == last_day {
        format!("{first_hm} and {last_hm} UTC")
    } else {
        format!(
            "{} {first_hm} and {} {last_hm} UTC",
            civil_date(first_day),
            civil_date(last_day)
        )
    }
}

/// Days since the Unix epoch and `HH:MM` within that UTC day.
fn utc_day_and_time(ms: u64) -> (u64, String) {
    let secs = ms / 1000;
    let day = secs / 86_400;
    let in_day = secs % 86_400;
    (day, format!("{:02}:{:02}", in_day / 3600, in_day / 60 % 60))
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (the proleptic Gregorian calendar, after
/// Howard Hinnant's `civil_from_days`; Unix time has no leap seconds, so days are exact).
fn civil_date(days: u64) -> String {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests;

//! The threshold evaluator: fed each host's newly stored samples (oldest first), it answers the
//! alerts to raise. Pure: times are the samples' `taken_unix_ms`, so `for` is measured in sample
//! time and every rule is a deterministic unit test.
//!
//! Per host, rule, app and subject (a *series*): the condition starts *pending* at the first
//! sample that breaches the threshold; a sample that does not breach it resets it; once it has
//! held `for`, one `Problem` alert goes out and the series is *firing* until a sample is past the
//! clear level, which raises one `Recovery`. Series not reported for [`STALE_MS`] (an unmounted
//! filesystem, a removed app) and hosts not heard of for [`HOST_GONE_MS`] (by the collector's
//! clock: an agent's clock, far ahead or set back, makes no other host look gone) are forgotten,
//! a firing one with a recovery saying so: the state stays bounded by what the fleet reports.
//!
//! An agent whose clock is set back (its now is earlier than samples already evaluated) has its
//! series rebased on the new time: pending conditions start their `for` again, firing ones keep
//! firing, predicted-full fits start afresh; its rules never stall until the clock catches up.
//!
//! History is not news: samples older than the agent's latest "now" (its last polled snapshot)
//! by more than [`CATCH_UP_MS`] (a backlog brought in after a collector outage) move the series
//! as usual, but a problem that fires in them is held: it goes out once the samples reach the
//! present and it still fires, and a problem that fired and cleared inside the backlog raises
//! nothing. A recovery goes out only for a problem that was announced.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fleetdeck_proto::{Problem, Sample, ThresholdHit};

use super::fit::FillWindow;
use super::{Direction, Metric, Rule};
use crate::alerting::rules::{Alert, AlertKind, Aspect, Detail};

/// A series not in any sample for this long (sample time of its host) is forgotten.
pub const STALE_MS: u64 = 15 * 60_000;
/// Samples older than the agent's now by more than this are history (see the module's notes).
pub const CATCH_UP_MS: u64 = 15 * 60_000;
/// A host not heard of for this long (by the collector's clock) is forgotten.
pub const HOST_GONE_MS: u64 = 24 * 3_600_000;
/// An agent's now this far before its newest evaluated sample: its clock was set back.
pub const CLOCK_BACK_MS: u64 = 30_000;
/// `disk.hours_to_full` of a filesystem that is not filling, in a [`ThresholdHit`] (JSON has no
/// infinity).
pub const NOT_FILLING_HOURS: f64 = 1e6;

/// The open (firing) thresholds by host, shared with whoever lists problems (the fleet API).
/// Kept per host so that an alert storm costs each host's own series, not the fleet's, per
/// change.
#[derive(Debug, Clone, Default)]
pub struct OpenThresholds(Arc<RwLock<HashMap<String, Vec<Problem>>>>);

impl OpenThresholds {
    /// Every firing threshold, critical first, then oldest first.
    pub fn open_problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect();
        problems.sort_by(|a, b| {
            (b.severity as u8)
                .cmp(&(a.severity as u8))
                .then(a.since_unix_ms.cmp(&b.since_unix_ms))
                .then_with(|| {
                    (&a.host, &a.app, &a.rule, &a.subject)
                        .cmp(&(&b.host, &b.app, &b.rule, &b.subject))
                })
        });
        problems
    }

    /// Takes what `other` has firing, whole (a standby's copy of what the database says).
    pub fn mirror(&self, other: &OpenThresholds) {
        let fresh = other.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    fn set(&self, host: &str, problems: Vec<Problem>) {
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        if problems.is_empty() {
            all.remove(host);
        } else {
            all.insert(host.to_owned(), problems);
        }
    }
}

/// A threshold alerted by a previous run and not recovered (from the alert history).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumedThreshold {
    pub host: String,
    pub app: Option<String>,
    pub rule: String,
    pub subject: Option<String>,
    pub since_ms: u64,
    pub message: String,
}

/// (rule index, app, subject).
type SeriesKey = (usize, Option<String>, Option<String>);

#[derive(Debug, Default)]
struct Series {
    pending_since: Option<u64>,
    /// (since, the firing message) while firing.
    firing: Option<(u64, String)>,
    last_seen_ms: u64,
    /// Its firing was alerted (so its recovery is, too).
    announced: bool,
    /// The problem alert of a firing that began in history, sent once the present is reached.
    held: Option<Alert>,
}

impl Series {
    /// Sorts what `step` just added to `alerts` (from `from` on): a problem in history is held,
    /// a recovery of one never announced is dropped.
    fn settle(&mut self, alerts: &mut Vec<Alert>, from: usize, history: bool) {
        let mut i = from;
        while i < alerts.len() {
            match alerts[i].kind {
                AlertKind::Problem if history => {
                    self.held = Some(alerts.remove(i));
                    self.announced = false;
                    continue;
                }
                AlertKind::Problem => {
                    self.held = None;
                    self.announced = true;
                }
                AlertKind::Recovery if !self.announced => {
                    alerts.remove(i);
                    self.held = None;
                    continue;
                }
                AlertKind::Recovery => self.announced = false,
                _ => {}
            }
            i += 1;
        }
    }
}

#[derive(Debug, Default)]
struct HostState {
    /// Whether a sample was evaluated yet (`last_ms` is its time).
    seen: bool,
    last_ms: u64,
    /// When the host was last heard of, by the collector's clock.
    heard_ms: u64,
    /// The agent's latest "now" (its polled snapshot's time), by its own clock.
    agent_now_ms: u64,
    series: HashMap<SeriesKey, Series>,
    /// (rule index, mount point) → used bytes over the rule's window.
    fills: HashMap<(usize, String), FillWindow>,
}

/// The threshold rules and what they remember.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    hosts: HashMap<String, HostState>,
    /// The collector's latest time given to [`Evaluator::observe_at`].
    now_ms: u64,
    open: OpenThresholds,
    rounds: u64,
}

/// One value a rule sees in a sample.
struct Value<'a> {
    app: Option<&'a str>,
    subject: Option<&'a str>,
    value: f64,
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A handle on the open thresholds that stays current.
    pub fn open(&self) -> OpenThresholds {
        self.open.clone()
    }

    /// An evaluator of `rules` that takes over what this one has firing (a reload): a rule kept
    /// by name keeps its firing series (no second alert, one recovery), the open list handle
    /// stays the same; pending conditions start again.
    pub fn with_rules(&self, rules: Vec<Rule>, now_ms: u64) -> Self {
        let mut next = Evaluator {
            rules,
            open: self.open.clone(),
            ..Evaluator::default()
        };
        for (host, state) in &self.hosts {
            for ((index, app, subject), series) in &state.series {
                if let Some((since, message)) = series.firing.as_ref().filter(|_| series.announced)
                {
                    next.resume(
                        &ResumedThreshold {
                            host: host.clone(),
                            app: app.clone(),
                            rule: self.rules[*index].name.clone(),
                            subject: subject.clone(),
                            since_ms: *since,
                            message: message.clone(),
                        },
                        now_ms,
                    );
                }
            }
        }
        // Hosts whose firing rules are gone have nothing open any more.
        let kept: std::collections::HashSet<&String> = next.hosts.keys().collect();
        for host in self.hosts.keys().filter(|h| !kept.contains(h)) {
            next.open.set(host, Vec::new());
        }
        next
    }

    /// Takes up a threshold a previous run alerted and did not recover: it is not alerted again,
    /// and its recovery is. A rule that no longer exists is skipped.
    pub fn resume(&mut self, open: &ResumedThreshold, now_ms: u64) {
        let Some(index) = self.rules.iter().position(|r| r.name == open.rule) else {
            return;
        };
        let state = self.hosts.entry(open.host.clone()).or_default();
        state.series.insert(
            (index, open.app.clone(), open.subject.clone()),
            Series {
                pending_since: Some(open.since_ms),
                firing: Some((open.since_ms, open.message.clone())),
                // Reported or not, it has until [`STALE_MS`] after the host's next sample.
                last_seen_ms: now_ms,
                announced: true,
                held: None,
            },
        );
        state.heard_ms = state.heard_ms.max(now_ms);
        self.now_ms = self.now_ms.max(now_ms);
        self.publish(&open.host);
    }

    /// Evaluates `samples` of `host` (oldest first), all of the present, heard at the newest
    /// sample's time, and answers the alerts they raise.
    pub fn observe(&mut self, host: &str, samples: &[Sample]) -> Vec<Alert> {
        let now = samples.iter().map(|s| s.taken_unix_ms).max();
        let heard = now.unwrap_or(self.now_ms);
        self.observe_at(host, samples, now, heard)
    }

    /// Evaluates `samples` of `host` (oldest first) brought by a poll whose snapshot the agent
    /// took at `agent_now_ms`, or by a backfill page (`None`: the agent's now is the last one a
    /// poll told), stored by the collector at `heard_ms` (its own clock), and answers the
    /// alerts they raise.
    pub fn observe_at(
        &mut self,
        host: &str,
        samples: &[Sample],
        agent_now_ms: Option<u64>,
        heard_ms: u64,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if self.rules.is_empty() {
            return alerts;
        }
        self.now_ms = self.now_ms.max(heard_ms);
        let state = self.hosts.entry(host.to_owned()).or_default();
        state.heard_ms = state.heard_ms.max(heard_ms);
        let mut changed = false;
        if let Some(now) = agent_now_ms {
            if state.seen && now.saturating_add(CLOCK_BACK_MS) < state.last_ms {
                tracing::info!(
                    host,
                    back_by_ms = state.last_ms - now,
                    "the agent's clock went back: its threshold series start again from its new time"
                );
                state.rebase(now);
            }
            state.agent_now_ms = now;
        }
        for sample in samples {
            let t = sample.taken_unix_ms;
            if state.seen && t <= state.last_ms {
                // Already seen (a re-sent page), or out of order: `for` needs time to advance.
                continue;
            }
            state.seen = true;
            state.last_ms = t;
            let history = t.saturating_add(CATCH_UP_MS) < state.agent_now_ms;
            for (index, rule) in self.rules.iter().enumerate() {
                if !rule.applies_to_host(host) {
                    continue;
                }
                let values = values(rule, index, sample, &mut state.fills);
                for v in values {
                    let key = (
                        index,
                        v.app.map(str::to_owned),
                        v.subject.map(str::to_owned),
                    );
                    let series = state.series.entry(key).or_default();
                    series.last_seen_ms = t;
                    let from = alerts.len();
                    let was_firing = series.firing.is_some();
                    step(rule, host, &v, t, series, &mut alerts);
                    changed |= series.firing.is_some() != was_firing;
                    series.settle(&mut alerts, from, history);
                }
            }
        }
        // Reached the present: what still fires from history is news now.
        if state.last_ms.saturating_add(CATCH_UP_MS) >= state.agent_now_ms {
            for series in state.series.values_mut() {
                if let Some(held) = series.held.take() {
                    if series.firing.is_some() {
                        series.announced = true;
                        alerts.push(held);
                    }
                }
            }
        }
        // Forget what this host no longer reports.
        let last = state.last_ms;
        let rules = &self.rules;
        state.series.retain(|(index, app, subject), series| {
            if last.saturating_sub(series.last_seen_ms) <= STALE_MS {
                return true;
            }
            changed |= series.firing.is_some();
            if let Some((since, _)) = series.firing.as_ref().filter(|_| series.announced) {
                alerts.push(gone(&rules[*index], host, app, subject, *since, last));
            }
            false
        });
        state.fills.retain(|(index, _), fill| {
            let window = millis(rules[*index].window);
            fill.last_ms()
                .is_some_and(|l| last.saturating_sub(l) <= window)
        });
        if changed {
            self.publish(host);
        }
        self.rounds += 1;
        if self.rounds.is_multiple_of(1024) {
            self.forget_gone_hosts(&mut alerts);
        }
        alerts
    }

    /// Forgets hosts not heard of for [`HOST_GONE_MS`] by the collector's clock (removed from
    /// the config, or long dead), recovering what fired on them.
    pub fn forget_gone_hosts(&mut self, alerts: &mut Vec<Alert>) {
        let now = self.now_ms;
        let rules = &self.rules;
        let open = &self.open;
        self.hosts.retain(|host, state| {
            if now.saturating_sub(state.heard_ms) <= HOST_GONE_MS {
                return true;
            }
            for ((index, app, subject), series) in &state.series {
                if let Some((since, _)) = series.firing.as_ref().filter(|_| series.announced) {
                    // Dated by the host's own clock, like its other alerts.
                    let at = state.last_ms.max(*since);
                    alerts.push(gone(&rules[*index], host, app, subject, *since, at));
                }
            }
            open.set(host, Vec::new());
            false
        });
    }

    /// Forgets `host` at once (removed from the config): what fired on it is dropped unsaid.
    pub fn forget_host(&mut self, host: &str) {
        if self.hosts.remove(host).is_some() {
            self.open.set(host, Vec::new());
        }
    }

    /// Series tracked (for tests and the benchmark: the state is bounded).
    pub fn series_count(&self) -> usize {
        self.hosts.values().map(|h| h.series.len()).sum()
    }

    /// Rebuilds `host`'s part of the shared list of open thresholds.
    fn publish(&self, host: &str) {
        let mut problems: Vec<Problem> = Vec::new();
        if let Some(state) = self.hosts.get(host) {
            for ((index, app, subject), series) in &state.series {
                if let Some((since, message)) = &series.firing {
                    let rule = &self.rules[*index];
                    problems.push(Problem {
                        kind: "threshold".into(),
                        rule: Some(rule.name.clone()),
                        severity: rule.severity,
                        host: host.to_owned(),
                        app: app.clone(),
                        subject: subject.clone(),
                        message: message.clone(),
                        since_unix_ms: *since,
                    });
                }
            }
        }
        self.open.set(host, problems);
    }
}

impl HostState {
    /// Takes up the agent's new time `now` after its clock went back: conditions not yet firing
    /// start their `for` again, every series counts as seen at `now` (so none goes stale at
    /// once), and the predicted-full fits, whose time axis broke, start afresh.
    fn rebase(&mut self, now: u64) {
        self.seen = false;
        self.last_ms = now;
        for series in self.series.values_mut() {
            if series.firing.is_none() {
                series.pending_since = None;
            }
            series.last_seen_ms = now;
        }
        self.fills.clear();
    }
}

/// The values `rule` sees in `sample`.
fn values<'a>(
    rule: &Rule,
    index: usize,
    sample: &'a Sample,
    fills: &mut HashMap<(usize, String), FillWindow>,
) -> Vec<Value<'a>> {
    let host_value = |value: Option<f64>| {
        value
            .filter(|v| v.is_finite())
            .map(|value| Value {
                app: None,
                subject: None,
                value,
            })
            .into_iter()
            .collect()
    };
    let percent = |used: u64, total: u64| (total > 0).then(|| used as f64 * 100.0 / total as f64);
    match rule.metric {
        Metric::CpuPercent => host_value(sample.cpu_percent.map(f64::from)),
        Metric::MemoryUsedPercent => {
            host_value(percent(sample.memory_used_bytes, sample.memory_total_bytes))
        }
        // No swap: 0 %, which never fires.
        Metric::SwapUsedPercent => host_value(Some(
            percent(sample.swap_used_bytes, sample.swap_total_bytes).unwrap_or(0.0),
        )),
        Metric::LoadPerCore => host_value(
            (sample.cores > 0).then(|| f64::from(sample.load1) / f64::from(sample.cores)),
        ),
        Metric::DiskUsedPercent => sample
            .filesystems
            .iter()
            .filter_map(|fs| {
                percent(fs.used_bytes, fs.total_bytes).map(|value| Value {
                    app: None,
                    subject: Some(fs.mount_point.as_str()),
                    value,
                })
            })
            .collect(),
        Metric::DiskInodesUsedPercent => sample
            .filesystems
            .iter()
            .filter_map(|fs| {
                percent(fs.inodes_used, fs.inodes_total).map(|value| Value {
                    app: None,
                    subject: Some(fs.mount_point.as_str()),
                    value,
                })
            })
            .collect(),
        Metric::DiskHoursToFull => {
            let window = millis(rule.window);
            sample
                .filesystems
                .iter()
                .filter(|fs| fs.total_bytes > 0)
                .filter_map(|fs| {
                    let fill = fills.entry((index, fs.mount_point.clone())).or_default();
                    fill.push(sample.taken_unix_ms, fs.used_bytes, window);
                    fill.hours_to_full(fs.total_bytes, window)
                        .map(|value| Value {
                            app: None,
                            subject: Some(fs.mount_point.as_str()),
                            value,
                        })
                })
                .collect()
        }
        Metric::AppCpuPercent | Metric::AppMemoryBytes | Metric::AppMemoryLimitPercent => sample
            .apps
            .iter()
            .filter(|app| rule.applies_to_app(&app.name))
            .filter_map(|app| {
                let value = match rule.metric {
                    Metric::AppCpuPercent => app.cpu_percent.map(f64::from),
                    Metric::AppMemoryBytes => app.memory_bytes.map(|b| b as f64),
                    _ => match (app.memory_bytes, app.memory_limit_bytes) {
                        (Some(used), Some(limit)) => percent(used, limit),
                        _ => None,
                    },
                }?;
                value.is_finite().then_some(Value {
                    app: Some(app.name.as_str()),
                    subject: None,
                    value,
                })
            })
            .collect(),
        Metric::CheckLatencyMs => sample
            .apps
            .iter()
            .filter(|app| rule.applies_to_app(&app.name))
            .flat_map(|app| {
                app.checks.iter().filter_map(move |check| {
                    check.latency_ms.map(|ms| Value {
                        app: Some(app.name.as_str()),
                        subject: Some(check.name.as_str()),
                        value: f64::from(ms),
                    })
                })
            })
            .collect(),
    }
}

/// One sample's value through one series.
fn step(
    rule: &Rule,
    host: &str,
    v: &Value<'_>,
    t: u64,
    series: &mut Series,
    alerts: &mut Vec<Alert>,
) {
    if series.firing.is_some() {
        if rule.cleared(v.value) {
            series.firing = None;
            series.pending_since = None;
            let message = format!(
                "{} (rule {}: back {} {})",
                describe(rule.metric, host, v.app, v.subject, v.value),
                rule.name,
                match rule.direction {
                    Direction::Above => "below",
                    Direction::Below => "above",
                },
                level(rule.metric, rule.clear),
            );
            alerts.push(alert(
                rule,
                host,
                v,
                AlertKind::Recovery,
                t,
                message,
                rule.clear,
                0,
            ));
        }
        return;
    }
    if !rule.breached(v.value) {
        series.pending_since = None;
        return;
    }
    let since = *series.pending_since.get_or_insert(t);
    let held = t - since;
    if held < millis(rule.for_) {
        return;
    }
    let during = if rule.for_.is_zero() {
        String::new()
    } else {
        format!(" for {}", human(rule.for_))
    };
    let message = format!(
        "{} (rule {}: {} {}{during})",
        describe(rule.metric, host, v.app, v.subject, v.value),
        rule.name,
        rule.direction.as_str(),
        level(rule.metric, rule.threshold),
    );
    series.firing = Some((since, message.clone()));
    alerts.push(alert(
        rule,
        host,
        v,
        AlertKind::Problem,
        t,
        message,
        rule.threshold,
        held / 1000,
    ));
}

#[allow(clippy::too_many_arguments)]
fn alert(
    rule: &Rule,
    host: &str,
    v: &Value<'_>,
    kind: AlertKind,
    at_ms: u64,
    message: String,
    threshold: f64,
    for_secs: u64,
) -> Alert {
    let value = if v.value.is_finite() {
        v.value
    } else {
        NOT_FILLING_HOURS
    };
    Alert {
        kind,
        host: host.to_owned(),
        app: v.app.map(str::to_owned),
        state: if kind == AlertKind::Problem {
            "firing"
        } else {
            "ok"
        }
        .into(),
        exit: None,
        message,
        at_ms,
        aspect: Aspect::Threshold {
            rule: rule.name.clone(),
            subject: v.subject.map(str::to_owned),
        },
        severity: rule.severity,
        detail: Detail {
            threshold: Some(ThresholdHit {
                rule: rule.name.clone(),
                metric: rule.metric.as_str().into(),
                subject: v.subject.or(v.app).map(str::to_owned),
                value,
                threshold,
                direction: rule.direction.as_str().into(),
                for_secs,
            }),
            ..Detail::default()
        },
        healthy: kind == AlertKind::Recovery,
    }
}

/// The recovery of a firing series that is no longer reported.
fn gone(
    rule: &Rule,
    host: &str,
    app: &Option<String>,
    subject: &Option<String>,
    since: u64,
    at_ms: u64,
) -> Alert {
    let what = match (app, subject) {
        (Some(app), Some(check)) => format!("check {check} of {app}"),
        (Some(app), None) => app.clone(),
        (None, Some(mount)) => mount.clone(),
        (None, None) => rule.metric.as_str().to_owned(),
    };
    let message = format!(
        "{what} on {host} is no longer reported (rule {}: firing since {} s before)",
        rule.name,
        at_ms.saturating_sub(since) / 1000
    );
    let v = Value {
        app: app.as_deref(),
        subject: subject.as_deref(),
        value: f64::NAN,
    };
    let mut alert = alert(
        rule,
        host,
        &v,
        AlertKind::Recovery,
        at_ms,
        message,
        rule.clear,
        0,
    );
    if let Some(hit) = alert.detail.threshold.as_mut() {
        hit.value = rule.clear;
    }
    alert
}

/// The value in a sentence a person reads: `/var on db-1 is 93.2% full`.
pub fn describe(
    metric: Metric,
    host: &str,
    app: Option<&str>,
    subject: Option<&str>,
    value: f64,
) -> String {
    let app = app.unwrap_or("-");
    let mount = subject.unwrap_or("-");
    match metric {
        Metric::CpuPercent => format!("CPU on {host} is at {value:.1}%"),
        Metric::MemoryUsedPercent => format!("memory on {host} is {value:.1}% used"),
        Metric::SwapUsedPercent => format!("swap on {host} is {value:.1}% used"),
        Metric::LoadPerCore => format!("load on {host} is {value:.2} per core"),
        Metric::DiskUsedPercent => format!("{mount} on {host} is {value:.1}% full"),
        Metric::DiskInodesUsedPercent => {
            format!("{mount} on {host} has {value:.1}% of its inodes used")
        }
        Metric::DiskHoursToFull if !value.is_finite() || value >= NOT_FILLING_HOURS => {
            format!("{mount} on {host} is no longer filling")
        }
        Metric::DiskHoursToFull => format!(
            "{mount} on {host} will be full in ~{} at the current rate",
            hours(value)
        ),
        Metric::AppCpuPercent => format!("{app} on {host} uses {value:.1}% CPU"),
        Metric::AppMemoryBytes => format!("{app} on {host} uses {} of memory", bytes(value)),
        Metric::AppMemoryLimitPercent => {
            format!("{app} on {host} uses {value:.1}% of its memory limit")
        }
        Metric::CheckLatencyMs => format!(
            "check {} of {app} on {host} answers in {value:.0} ms",
            subject.unwrap_or("-")
        ),
    }
}

/// A rule's level with its unit: `90%`, `24 h`, `4`, `512 MiB`.
fn level(metric: Metric, value: f64) -> String {
    match metric {
        Metric::AppMemoryBytes => bytes(value),
        _ => format!("{}{}", trim(value), metric.unit()),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn hours(h: f64) -> String {
    if h < 1.0 {
        format!("{} min", (h * 60.0).round().max(1.0))
    } else if h < 48.0 {
        format!("{} h", h.round())
    } else {
        format!("{} days", (h / 24.0).round())
    }
}

fn bytes(b: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

/// `5 min`, `30 s`, `2 h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;

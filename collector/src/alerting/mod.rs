//! Alerts on failures, crash loops and hosts going down, and on their recovery.
//!
//! Detecting and delivering are separate: [`rules`] decides which transitions deserve an alert
//! and when (pure, no I/O, no clock), [`notify`] renders an alert for a webhook and posts it with
//! retries. This module is the glue: [`spawn`] starts the task that owns the rules, feeds them
//! the transitions the collector sees and the wall clock, stores each alert in the history
//! ([`AlertLog`]) and hands it to every webhook.
//!
//! Why a task of its own: the pollers and event streams only send a [`Transition`] down a channel,
//! and a slow or failing webhook delays neither detection nor the other webhooks. The channel is
//! bounded ([`INPUT_QUEUE`]): should the task ever fall behind, senders wait for room (nothing is
//! dropped) instead of the queue growing without bound.

pub mod maintenance;
pub mod notify;
pub mod problems;
pub mod route;
pub mod rules;
pub mod silence;
pub mod thresholds;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

pub use notify::{deliver, render, Delivery, Rendered, RetryPolicy, Webhook, WebhookFormat};
pub use problems::{OpenProblems, ProblemKey, SharedProblems};
pub use rules::{Alert, AlertKind, AlertPolicy, Health, Rules, Transition};

/// The alert history, implemented by the collector's store. Calls are synchronous (the store is
/// SQLite); the alerting task makes them on tokio's blocking pool, never on a runtime worker.
pub trait AlertLog: Send + Sync + 'static {
    /// Stores a raised alert and answers its id for [`AlertLog::delivered`].
    fn record(&self, alert: &Alert) -> Result<i64, String>;
    /// Stores how the delivery of alert `alert_id` to one webhook ended. `webhook` is the
    /// redacted URL ([`Webhook::redacted`]): the history never holds a webhook's secret.
    fn delivered(&self, alert_id: i64, webhook: &str, delivery: &Delivery);
    /// The silences not over at `now_ms` (see [`silence`]). None by default.
    fn silences(&self, _now_ms: u64) -> Result<Vec<fleetdeck_proto::Silence>, String> {
        Ok(Vec::new())
    }
    /// Records that `silence` kept alert `alert_id` from the channels, `held` while it waits
    /// for the silence to end (`held = false` once it went out, or needs not).
    fn silenced(&self, _alert_id: i64, _silence: Option<i64>, _held: bool) {}
    /// The alerts a silence holds that have not recovered: (id, alert, silence id).
    fn held(&self) -> Vec<(i64, Alert, i64)> {
        Vec::new()
    }
    /// Which of `ids` were acknowledged (their repeats and escalation stop).
    fn acknowledged(&self, _ids: &[i64]) -> Vec<i64> {
        Vec::new()
    }
    /// Whether an alert that could not be recorded must not go out: on a shared database only
    /// the leader records and delivers, and a failed record means it may no longer lead.
    fn must_record(&self) -> bool {
        false
    }
    /// Alerts recorded since `since_ms` that no silence took, with the channels (redacted, as
    /// [`AlertLog::delivered`] names them) their deliveries ended at: a previous run, or a leader
    /// that died, may have recorded them without delivering them everywhere.
    fn undelivered(&self, _since_ms: u64) -> Vec<(i64, Alert, Vec<String>)> {
        Vec::new()
    }
}

/// How far back a starting alerting task looks for alerts recorded but not delivered.
pub const REDELIVER_WITHIN: Duration = Duration::from_secs(3600);

/// How often held alerts are looked at while any are held: a silence that ends (or is removed,
/// through the API or the command line) lets them out within this.
pub const HELD_CHECK: Duration = Duration::from_secs(2);

/// Alerting settings: when to alert, where to, how hard to try.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    pub policy: AlertPolicy,
    /// Unnamed webhooks (each becomes channel `webhook-N` after `channels`).
    pub webhooks: Vec<Webhook>,
    /// Named channels and the routes over them (see [`route`]).
    #[serde(skip)]
    pub channels: Vec<route::Channel>,
    #[serde(skip)]
    pub routes: Vec<route::Route>,
    pub retry: RetryPolicy,
    /// Threshold rules over samples (the config's effective set: shipped and `[[rules]]`).
    #[serde(skip)]
    pub thresholds: Vec<thresholds::Rule>,
    /// Thresholds a previous run alerted that have not recovered (see
    /// [`crate::store::audit::open_thresholds`]).
    #[serde(skip)]
    pub resumed_thresholds: Vec<thresholds::ResumedThreshold>,
}

/// Inputs queued for the alerting task at most; a sender waits for room beyond it.
pub const INPUT_QUEUE: usize = 1024;

/// Deliveries in flight to one webhook at most. A burst (a network split takes down a hundred
/// hosts at once) then reaches a rate-limited receiver such as Slack as a queue, not a stampede.
const DELIVERIES_IN_FLIGHT_PER_WEBHOOK: usize = 4;

/// What the alerting task is fed.
#[derive(Debug, Clone)]
pub enum AlertInput {
    /// A status change of a host or app (or of one aspect of it: a check, a source, the clock).
    Transition(Box<Transition>),
    /// A reloaded collector.toml's alerting settings.
    Reload(Box<Reload>),
    /// App `app` of `host` left the fleet (its agent no longer watches it): what the task knows
    /// of it is dropped, as of a removed host (its open alerts are resolved in the store).
    Unwatched { host: String, app: String },
    /// Samples just stored for `host`, oldest first: what threshold rules are evaluated over.
    Samples {
        host: String,
        samples: Arc<[fleetdeck_proto::Sample]>,
        /// The agent's "now" (its snapshot's time) when a poll brought them; `None` for a
        /// backfill page. Samples much older than the agent's now are history: a problem that
        /// began and ended in them is not alerted (see `thresholds::eval`).
        agent_now_ms: Option<u64>,
    },
}

/// What a reload of collector.toml changes in the alerting task: open alerts, silences and
/// acknowledgements stay; channels, routes, the policy and threshold rules are the new ones.
#[derive(Debug, Clone)]
pub struct Reload {
    pub channels: Vec<route::Channel>,
    pub routes: Vec<route::Route>,
    pub policy: AlertPolicy,
    pub thresholds: Vec<thresholds::Rule>,
    /// Hosts no longer in the config: what the task knows of them is dropped (no reminder, no
    /// escalation, no pending problem, nothing in the fleet's problems).
    pub removed_hosts: Vec<String>,
}

/// The way in to the alerting task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct AlerterHandle {
    transitions: mpsc::Sender<AlertInput>,
    problems: SharedProblems,
    thresholds: thresholds::OpenThresholds,
}

impl AlerterHandle {
    /// The open problems the alerting task keeps (for `GET /v1/fleet`).
    pub fn problems(&self) -> SharedProblems {
        Arc::clone(&self.problems)
    }

    /// Hands a transition to the alerting task, waiting for room in its queue (dropping a
    /// transition could drop an alert; the task only runs the rules on each one).
    ///
    /// The task measures grace periods and quiet windows against the collector's wall clock, so
    /// `at_ms` should be on (or not after) that clock. A transition dated further back than the
    /// grace period alerts at once: right for a crash first seen at a poll, but transitions
    /// replayed from a backfill would raise alerts about the past.
    pub async fn observe(&self, transition: Transition) {
        self.send(AlertInput::Transition(Box::new(transition)))
            .await;
    }

    /// The threshold rules firing now, critical first, then oldest first (for `Fleet.problems`).
    pub fn open_problems(&self) -> Vec<fleetdeck_proto::Problem> {
        self.thresholds.open_problems()
    }

    /// A handle on the firing thresholds that stays current (for the fleet API's state).
    pub fn open_thresholds(&self) -> thresholds::OpenThresholds {
        self.thresholds.clone()
    }

    /// Hands anything the alerting task is fed to it, waiting for room in its queue.
    pub async fn send(&self, input: AlertInput) {
        if self.transitions.send(input).await.is_err() {
            tracing::error!(
                "the alerting task has stopped; a transition was not checked for alerts"
            );
        }
    }
}

/// Starts the alerting task on the current tokio runtime.
pub fn spawn(
    config: AlertConfig,
    log: Arc<dyn AlertLog>,
    client: reqwest::Client,
) -> AlerterHandle {
    spawn_resuming(config, Vec::new(), log, client)
}

/// Starts the alerting task knowing the problems a previous run already alerted (hosts still
/// down, apps still failed): they are not alerted again, and their recovery is.
pub fn spawn_resuming(
    config: AlertConfig,
    already_alerted: Vec<Transition>,
    log: Arc<dyn AlertLog>,
    client: reqwest::Client,
) -> AlerterHandle {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let sinks = config
        .channels
        .into_iter()
        .chain(
            config
                .webhooks
                .into_iter()
                .enumerate()
                .map(|(i, hook)| route::Channel {
                    name: format!("webhook-{}", i + 1),
                    target: notify::Target::Webhook(hook),
                }),
        )
        .map(Sink::new)
        .collect();
    let mut rules = Rules::new(config.policy);
    let problems = problems::shared();
    for t in &already_alerted {
        // What these raise was sent before the restart.
        let _ = rules.observe(t);
        lock(&problems).observe(t);
    }
    let _ = rules.tick(now_ms());
    let mut evaluator = thresholds::Evaluator::new(config.thresholds);
    for open in &config.resumed_thresholds {
        evaluator.resume(open, now_ms());
    }
    let open = evaluator.open();
    let held = log
        .held()
        .into_iter()
        .map(|(id, alert, silence)| {
            let key = held_key(&alert);
            (
                key,
                Held {
                    alert: Arc::new(alert),
                    id,
                    silence,
                },
            )
        })
        .collect();
    let since = now_ms().saturating_sub(REDELIVER_WITHIN.as_millis() as u64);
    let undelivered = log.undelivered(since);
    let task = AlertTask {
        already_sent: Vec::new(),
        routes: config.routes,
        open: HashMap::new(),
        held,
        next_release: tokio::time::Instant::now() + HELD_CHECK,
        rules,
        thresholds: evaluator,
        sinks,
        retry: Arc::new(config.retry),
        log,
        client,
        last_delivery: HashMap::new(),
        problems: Arc::clone(&problems),
    };
    tokio::spawn(task.run(rx, undelivered));
    AlerterHandle {
        transitions: tx,
        problems,
        thresholds: open,
    }
}

/// One channel and what its deliveries share.
#[derive(Debug)]
struct Sink {
    name: String,
    target: notify::Target,
    /// Computed once: it names the channel in logs and the history: `name (scheme://host/…)`.
    redacted: String,
    in_flight: Semaphore,
}

impl Sink {
    fn new(channel: route::Channel) -> Arc<Self> {
        Arc::new(Self {
            redacted: format!("{} ({})", channel.name, channel.target.redacted()),
            name: channel.name,
            target: channel.target,
            in_flight: Semaphore::new(DELIVERIES_IN_FLIGHT_PER_WEBHOOK),
        })
    }
}

/// (webhook index, host, app): alerts about one subject reach one webhook in the order they
/// were raised, so a recovery never arrives before the problem it ends.
type DeliveryKey = (usize, String, Option<String>);

/// (host, app, aspect, kind): what a silence holds.
type HeldKey = (String, Option<String>, rules::Aspect, AlertKind);

fn held_key(alert: &Alert) -> HeldKey {
    (
        alert.host.clone(),
        alert.app.clone(),
        alert.aspect.clone(),
        alert.kind,
    )
}

/// An alert a silence keeps from the channels until the silence ends.
#[derive(Debug)]
struct Held {
    alert: Arc<Alert>,
    id: i64,
    silence: i64,
}

/// (host, app, aspect): one subject's open alert.
type SubjectKey = (String, Option<String>, rules::Aspect);

/// An open alert that went out: where to (its recovery goes there too), and what follows if
/// nobody acknowledges it.
#[derive(Debug)]
struct Tracked {
    id: Option<i64>,
    alert: Arc<Alert>,
    channels: Vec<usize>,
    repeat: Option<(Duration, u64)>,
    escalate: Option<(u64, Vec<usize>)>,
}

struct AlertTask {
    /// While redelivering: the channels (redacted) the alert already reached.
    already_sent: Vec<String>,
    routes: Vec<route::Route>,
    /// The open alerts that went out, by subject.
    open: HashMap<SubjectKey, Tracked>,
    /// Problems raised under a silence, not recovered: delivered when it ends.
    held: HashMap<HeldKey, Held>,
    /// When the held problems are looked at next.
    next_release: tokio::time::Instant,
    rules: Rules,
    thresholds: thresholds::Evaluator,
    sinks: Vec<Arc<Sink>>,
    retry: Arc<RetryPolicy>,
    log: Arc<dyn AlertLog>,
    client: reqwest::Client,
    /// The latest delivery task per subject and webhook; the next one waits for it to end.
    last_delivery: HashMap<DeliveryKey, JoinHandle<()>>,
    /// What is wrong now, for the fleet API; threshold rules write their own keys here too.
    problems: SharedProblems,
}

impl AlertTask {
    async fn run(
        mut self,
        mut transitions: mpsc::Receiver<AlertInput>,
        undelivered: Vec<(i64, Alert, Vec<String>)>,
    ) {
        for (id, alert, done) in undelivered {
            self.already_sent = done;
            if self.dispatch(Arc::new(alert), Some(id)) > 0 {
                tracing::info!(
                    alert_id = id,
                    "delivering an alert recorded but not delivered before this start"
                );
            }
            self.already_sent.clear();
        }
        loop {
            let deadline = self.rules.next_deadline();
            let rules_wait = deadline.map(|d| Duration::from_millis(d.saturating_sub(now_ms())));
            // On a fixed beat, not from each wake-up: inputs come every second or so.
            let follow_ups = self
                .open
                .values()
                .any(|t| t.repeat.is_some() || t.escalate.is_some());
            let held_wait = (!self.held.is_empty() || follow_ups).then(|| {
                self.next_release
                    .saturating_duration_since(tokio::time::Instant::now())
            });
            let transition = tokio::select! {
                transition = transitions.recv() => transition,
                () = sleep_or_never(rules_wait) => {
                    let alerts = self.rules.tick(now_ms());
                    self.raise(alerts).await;
                    continue;
                }
                () = sleep_or_never(held_wait) => {
                    self.release().await;
                    self.follow_up().await;
                    self.next_release = tokio::time::Instant::now() + HELD_CHECK;
                    continue;
                }
            };
            let Some(transition) = transition else {
                // Every handle is gone: the collector is shutting down.
                break;
            };
            let alerts = match transition {
                AlertInput::Transition(transition) => {
                    lock(&self.problems).observe(&transition);
                    self.rules.observe(&transition)
                }
                AlertInput::Reload(reload) => {
                    self.reload(*reload);
                    continue;
                }
                AlertInput::Unwatched { host, app } => {
                    let app = Some(app);
                    self.open.retain(|(h, a, _), _| !(*h == host && *a == app));
                    self.held
                        .retain(|(h, a, _, _), _| !(*h == host && *a == app));
                    self.rules.forget_app(&host, app.as_deref());
                    lock(&self.problems).forget_app(&host, app.as_deref());
                    continue;
                }
                AlertInput::Samples {
                    host,
                    samples,
                    agent_now_ms,
                } => self
                    .thresholds
                    .observe_at(&host, &samples, agent_now_ms, now_ms()),
            };
            self.raise(alerts).await;
        }
    }

    /// Records each alert, then starts its delivery to every webhook without waiting for it,
    /// unless a silence covers it: a problem is then held until the silence ends, and the
    /// recovery of a held problem goes nowhere (nobody was told of the problem).
    async fn raise(&mut self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let silences = self.silences().await;
        let now = now_ms();
        for alert in alerts {
            tracing::info!(
                kind = %alert.kind,
                host = %alert.host,
                app = alert.app.as_deref().unwrap_or("-"),
                "alert: {}",
                alert.message
            );
            let alert_id = self.record(&alert).await;
            if alert_id.is_none() && self.log.must_record() {
                tracing::warn!(host = %alert.host, "alert not sent: only a leader that recorded it sends it (this collector may no longer lead; the leader raises it)");
                continue;
            }
            let key = held_key(&alert);
            let resolves = alert.healthy && alert.kind != AlertKind::Problem;
            let mut held_before = None;
            if resolves {
                for kind in [AlertKind::Problem, AlertKind::Flapping] {
                    let mut k = key.clone();
                    k.3 = kind;
                    held_before = self.held.remove(&k).or(held_before);
                }
            }
            if let Some(held) = held_before {
                tracing::info!(host = %alert.host, silence = held.silence, "a silenced problem recovered under its silence: neither goes out");
                self.mark_silenced(alert_id, Some(held.silence), false)
                    .await;
                continue;
            }
            if !resolves {
                if let Some(s) = silence::covering(&silences, &alert, now) {
                    let hold = !alert.healthy;
                    tracing::info!(host = %alert.host, silence = s.id, held = hold, "alert silenced: not delivered");
                    self.mark_silenced(alert_id, Some(s.id), hold).await;
                    if let (true, Some(id)) = (hold, alert_id) {
                        self.held.insert(
                            key,
                            Held {
                                alert: Arc::new(alert),
                                id,
                                silence: s.id,
                            },
                        );
                    }
                    continue;
                }
            }
            self.dispatch(Arc::new(alert), alert_id);
        }
        self.last_delivery
            .retain(|_, delivery| !delivery.is_finished());
    }

    /// Takes up a reloaded config. An open alert keeps the channels it went to that still exist
    /// (by name), so its reminders, escalation and recovery go there.
    fn reload(&mut self, reload: Reload) {
        let old: Vec<String> = self.sinks.iter().map(|s| s.name.clone()).collect();
        self.sinks = reload.channels.into_iter().map(Sink::new).collect();
        let names: Vec<String> = self.sinks.iter().map(|s| s.name.clone()).collect();
        let remap = |indices: &mut Vec<usize>| {
            *indices = indices
                .iter()
                .filter_map(|&i| old.get(i))
                .filter_map(|name| names.iter().position(|n| n == name))
                .collect();
        };
        for tracked in self.open.values_mut() {
            remap(&mut tracked.channels);
            if let Some((_, to)) = tracked.escalate.as_mut() {
                remap(to);
            }
        }
        // In-flight deliveries keep their order by the old indices; new ones start afresh.
        self.last_delivery.clear();
        self.routes = reload.routes;
        for host in &reload.removed_hosts {
            self.open.retain(|(h, _, _), _| h != host);
            self.held.retain(|(h, _, _, _), _| h != host);
            self.rules.forget_host(host);
            self.thresholds.forget_host(host);
            lock(&self.problems).forget_host(host);
        }
        self.rules.set_policy(reload.policy);
        if self.thresholds.rules() != reload.thresholds.as_slice() {
            self.thresholds = self.thresholds.with_rules(reload.thresholds, now_ms());
        }
        tracing::info!(
            channels = self.sinks.len(),
            routes = self.routes.len(),
            rules = self.thresholds.rules().len(),
            "alerting reloaded"
        );
    }

    /// Delivers the held problems no silence covers any more (it ended, or was removed).
    async fn release(&mut self) {
        let silences = self.silences().await;
        let now = now_ms();
        let free: Vec<HeldKey> = self
            .held
            .iter()
            .filter(|(_, h)| silence::covering(&silences, &h.alert, now).is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in free {
            let Some(held) = self.held.remove(&key) else {
                continue;
            };
            tracing::info!(host = %held.alert.host, silence = held.silence, "silence over: delivering the problem it held");
            self.mark_silenced(Some(held.id), None, false).await;
            self.dispatch(held.alert, Some(held.id));
        }
        self.last_delivery
            .retain(|_, delivery| !delivery.is_finished());
    }

    /// The silences not over (none if the history cannot be read: alerting never stops on it).
    async fn silences(&self) -> Vec<fleetdeck_proto::Silence> {
        let log = Arc::clone(&self.log);
        let now = now_ms();
        match tokio::task::spawn_blocking(move || log.silences(now)).await {
            Ok(Ok(silences)) => silences,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the silences; alerts go out unsilenced");
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(%error, "reading the silences panicked; alerts go out unsilenced");
                Vec::new()
            }
        }
    }

    async fn mark_silenced(&self, alert_id: Option<i64>, silence: Option<i64>, held: bool) {
        let Some(id) = alert_id else { return };
        let log = Arc::clone(&self.log);
        if let Err(error) =
            tokio::task::spawn_blocking(move || log.silenced(id, silence, held)).await
        {
            tracing::warn!(%error, "recording an alert's silence panicked");
        }
    }

    /// Sends `alert` where its route says (a recovery: where its problem went, escalation
    /// included), and keeps an opening alert's repeat and escalation.
    fn dispatch(&mut self, alert: Arc<Alert>, alert_id: Option<i64>) -> usize {
        let subject = (alert.host.clone(), alert.app.clone(), alert.aspect.clone());
        let resolves = alert.healthy && alert.kind != AlertKind::Problem;
        let channels = match self.open.remove(&subject) {
            Some(tracked) if resolves => tracked.channels,
            other => {
                if let Some(tracked) = other {
                    self.open.insert(subject.clone(), tracked);
                }
                let routed = route::route(&self.routes, self.sinks.len(), &alert);
                let opens = !alert.healthy && alert.kind != AlertKind::FlapEnded;
                if opens && !self.open.contains_key(&subject) {
                    let now = now_ms();
                    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                    self.open.insert(
                        subject,
                        Tracked {
                            id: alert_id,
                            alert: Arc::clone(&alert),
                            channels: routed.channels.clone(),
                            repeat: routed.repeat_every.map(|d| (d, now.saturating_add(ms(d)))),
                            escalate: routed
                                .escalate
                                .map(|(after, to)| (now.saturating_add(ms(after)), to)),
                        },
                    );
                }
                routed.channels
            }
        };
        self.send_to(&channels, &alert, alert_id)
    }

    /// Repeats and escalates open alerts nobody acknowledged, when they are due.
    async fn follow_up(&mut self) {
        let now = now_ms();
        let due: Vec<i64> = self
            .open
            .values()
            .filter(|t| {
                t.repeat.is_some_and(|(_, at)| at <= now)
                    || t.escalate.as_ref().is_some_and(|(at, _)| *at <= now)
            })
            .filter_map(|t| t.id)
            .collect();
        if due.is_empty() {
            return;
        }
        let log = Arc::clone(&self.log);
        let ids = due.clone();
        let acked = tokio::task::spawn_blocking(move || log.acknowledged(&ids))
            .await
            .unwrap_or_default();
        let mut sends = Vec::new();
        for t in self.open.values_mut() {
            let Some(id) = t.id.filter(|id| due.contains(id)) else {
                continue;
            };
            if acked.contains(&id) {
                // Someone is on it: no more reminders, no escalation.
                t.repeat = None;
                t.escalate = None;
                continue;
            }
            if let Some((every, at)) = t.repeat.filter(|(_, at)| *at <= now) {
                let open_for = eval_human(now.saturating_sub(t.alert.at_ms));
                let mut reminder = (*t.alert).clone();
                reminder.message = format!(
                    "Reminder: {} (open for {open_for}, not acknowledged)",
                    t.alert.message
                );
                sends.push((t.channels.clone(), Arc::new(reminder), id));
                let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
                t.repeat = Some((every, at.saturating_add(every_ms).max(now)));
            }
            if let Some((_, to)) = t.escalate.take_if(|(at, _)| *at <= now) {
                let mut escalated = (*t.alert).clone();
                escalated.message =
                    format!("Escalated, not acknowledged in time: {}", t.alert.message);
                let fresh: Vec<usize> = to
                    .iter()
                    .copied()
                    .filter(|c| !t.channels.contains(c))
                    .collect();
                t.channels.extend(fresh.iter().copied());
                sends.push((fresh, Arc::new(escalated), id));
            }
        }
        for (channels, alert, id) in sends {
            tracing::info!(host = %alert.host, alert_id = id, "alert not acknowledged: {}", alert.message);
            self.send_to(&channels, &alert, Some(id));
        }
        self.last_delivery
            .retain(|_, delivery| !delivery.is_finished());
    }

    /// Starts the delivery of `alert` to `channels`, each after the previous alert of its
    /// subject there.
    /// Starts the deliveries; answers how many.
    fn send_to(&mut self, channels: &[usize], alert: &Arc<Alert>, alert_id: Option<i64>) -> usize {
        let mut started = 0;
        {
            for &index in channels {
                let Some(sink) = self.sinks.get(index) else {
                    continue;
                };
                if self.already_sent.contains(&sink.redacted) {
                    continue;
                }
                let key = (index, alert.host.clone(), alert.app.clone());
                let previous = self.last_delivery.remove(&key);
                let delivery = tokio::spawn(deliver_in_turn(
                    previous,
                    Arc::clone(sink),
                    Arc::clone(alert),
                    self.client.clone(),
                    Arc::clone(&self.retry),
                    Arc::clone(&self.log),
                    alert_id,
                ));
                self.last_delivery.insert(key, delivery);
                started += 1;
            }
        }
        started
    }

    /// The alert's id in the history, or `None` if it could not be stored: the alert still goes
    /// out (telling the operator matters more than the history), only its deliveries go unrecorded.
    async fn record(&self, alert: &Alert) -> Option<i64> {
        let log = Arc::clone(&self.log);
        let stored = alert.clone();
        match tokio::task::spawn_blocking(move || log.record(&stored)).await {
            Ok(Ok(id)) => Some(id),
            Ok(Err(error)) => {
                tracing::warn!(%error, host = %alert.host, "could not store an alert in the history");
                None
            }
            Err(error) => {
                tracing::warn!(%error, host = %alert.host, "storing an alert in the history panicked");
                None
            }
        }
    }
}

/// Delivers one alert to one webhook once the previous alert about the same subject is done
/// there, then records the outcome.
async fn deliver_in_turn(
    previous: Option<JoinHandle<()>>,
    sink: Arc<Sink>,
    alert: Arc<Alert>,
    client: reqwest::Client,
    retry: Arc<RetryPolicy>,
    log: Arc<dyn AlertLog>,
    alert_id: Option<i64>,
) {
    if let Some(previous) = previous {
        // Only its end matters here; it records its own outcome, and a panic in it must not
        // stop this alert.
        let _ = previous.await;
    }
    // The semaphore is never closed, so acquiring only waits; if it ever failed, delivering
    // without a permit is better than not delivering.
    let _permit = sink.in_flight.acquire().await.ok();
    let delivery = notify::deliver_to(&client, &sink.target, &alert, &retry).await;
    match &delivery.result {
        Ok(status) => tracing::debug!(
            webhook = %sink.redacted,
            kind = %alert.kind,
            host = %alert.host,
            status,
            attempts = delivery.attempts,
            "alert delivered"
        ),
        Err(error) => tracing::warn!(
            webhook = %sink.redacted,
            kind = %alert.kind,
            host = %alert.host,
            attempts = delivery.attempts,
            %error,
            "alert not delivered; giving up on this webhook for this alert"
        ),
    }
    if let Some(alert_id) = alert_id {
        let webhook = sink.redacted.clone();
        let stored = tokio::task::spawn_blocking(move || {
            log.delivered(alert_id, &webhook, &delivery);
        })
        .await;
        if let Err(error) = stored {
            tracing::warn!(%error, alert_id, "recording an alert delivery panicked");
        }
    }
}

/// `2 h 5 min`-like, for a reminder.
fn eval_human(ms: u64) -> String {
    let min = ms / 60_000;
    match (min / 60, min % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Sleeps `wait`, or forever without one (a `select!` branch that never fires).
async fn sleep_or_never(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// The open problems, even if a writer panicked while holding them (the map stays usable).
pub fn lock(problems: &SharedProblems) -> std::sync::MutexGuard<'_, OpenProblems> {
    problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wall-clock Unix milliseconds: the time base of [`Transition::at_ms`]. A clock before 1970 reads
/// as 0, which only makes deadlines due at once.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

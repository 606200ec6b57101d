//! Alerts on failures, crash loops and hosts going down, and on their recovery.
//!
//! Detecting and delivering are separate: [`rules`] decides which transitions deserve an alert
//! and when (pure, no I/O, no clock), [`notify`] renders an alert for a webhook and posts it with
//! retries. This module is the glue: [`spawn`] starts the task that owns the rules, feeds them
//! the transitions the collector sees and the wall clock, stores each alert in the history
//! ([`AlertLog`]) and hands it to every webhook.
//!
//! Why a task of its own: the pollers and event streams only send a [`Transition`] down a channel
//! and never wait, and a slow or failing webhook delays neither detection nor the other webhooks.

pub mod notify;
pub mod problems;
pub mod rules;
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
}

/// Alerting settings: when to alert, where to, how hard to try.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    pub policy: AlertPolicy,
    pub webhooks: Vec<Webhook>,
    pub retry: RetryPolicy,
    /// Threshold rules over samples (the config's effective set: shipped and `[[rules]]`).
    #[serde(skip)]
    pub thresholds: Vec<thresholds::Rule>,
    /// Thresholds a previous run alerted that have not recovered (see
    /// [`crate::store::audit::open_thresholds`]).
    #[serde(skip)]
    pub resumed_thresholds: Vec<thresholds::ResumedThreshold>,
}

/// Deliveries in flight to one webhook at most. A burst (a network split takes down a hundred
/// hosts at once) then reaches a rate-limited receiver such as Slack as a queue, not a stampede.
const DELIVERIES_IN_FLIGHT_PER_WEBHOOK: usize = 4;

/// What the alerting task is fed.
#[derive(Debug, Clone)]
pub enum AlertInput {
    /// A status change of a host or app (or of one aspect of it: a check, a source, the clock).
    Transition(Box<Transition>),
    /// Samples just stored for `host`, oldest first: what threshold rules are evaluated over.
    Samples {
        host: String,
        samples: Arc<[fleetdeck_proto::Sample]>,
    },
}

/// The way in to the alerting task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct AlerterHandle {
    transitions: mpsc::UnboundedSender<AlertInput>,
    problems: SharedProblems,
    thresholds: thresholds::OpenThresholds,
}

impl AlerterHandle {
    /// The open problems the alerting task keeps (for `GET /v1/fleet`).
    pub fn problems(&self) -> SharedProblems {
        Arc::clone(&self.problems)
    }

    /// Hands a transition to the alerting task. Never blocks: the channel is unbounded because
    /// dropping a transition could drop an alert, and the task only runs the rules on each one.
    ///
    /// The task measures grace periods and quiet windows against the collector's wall clock, so
    /// `at_ms` should be on (or not after) that clock. A transition dated further back than the
    /// grace period alerts at once: right for a crash first seen at a poll, but transitions
    /// replayed from a backfill would raise alerts about the past.
    pub fn observe(&self, transition: Transition) {
        self.send(AlertInput::Transition(Box::new(transition)));
    }

    /// The threshold rules firing now, critical first, then oldest first (for `Fleet.problems`).
    pub fn open_problems(&self) -> Vec<fleetdeck_proto::Problem> {
        self.thresholds.open_problems()
    }

    /// A handle on the firing thresholds that stays current (for the fleet API's state).
    pub fn open_thresholds(&self) -> thresholds::OpenThresholds {
        self.thresholds.clone()
    }

    /// Hands anything the alerting task is fed to it; never blocks.
    pub fn send(&self, input: AlertInput) {
        if self.transitions.send(input).is_err() {
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
    let (tx, rx) = mpsc::unbounded_channel();
    let sinks = config
        .webhooks
        .into_iter()
        .map(|hook| {
            Arc::new(Sink {
                redacted: hook.redacted(),
                hook,
                in_flight: Semaphore::new(DELIVERIES_IN_FLIGHT_PER_WEBHOOK),
            })
        })
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
    let task = AlertTask {
        rules,
        thresholds: evaluator,
        sinks,
        retry: Arc::new(config.retry),
        log,
        client,
        last_delivery: HashMap::new(),
        problems: Arc::clone(&problems),
    };
    tokio::spawn(task.run(rx));
    AlerterHandle {
        transitions: tx,
        problems,
        thresholds: open,
    }
}

/// One webhook and what its deliveries share.
#[derive(Debug)]
struct Sink {
    hook: Webhook,
    /// Computed once: it names the webhook in logs and the history.
    redacted: String,
    in_flight: Semaphore,
}

/// (webhook index, host, app): alerts about one subject reach one webhook in the order they
/// were raised, so a recovery never arrives before the problem it ends.
type DeliveryKey = (usize, String, Option<String>);

struct AlertTask {
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
    async fn run(mut self, mut transitions: mpsc::UnboundedReceiver<AlertInput>) {
        loop {
            let transition = match self.rules.next_deadline() {
                None => transitions.recv().await,
                Some(deadline) => {
                    let wait = Duration::from_millis(deadline.saturating_sub(now_ms()));
                    tokio::select! {
                        transition = transitions.recv() => transition,
                        () = tokio::time::sleep(wait) => {
                            let alerts = self.rules.tick(now_ms());
                            self.raise(alerts).await;
                            continue;
                        }
                    }
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
                AlertInput::Samples { host, samples } => self.thresholds.observe(&host, &samples),
            };
            self.raise(alerts).await;
        }
    }

    /// Records each alert, then starts its delivery to every webhook without waiting for it.
    async fn raise(&mut self, alerts: Vec<Alert>) {
        for alert in alerts {
            tracing::info!(
                kind = %alert.kind,
                host = %alert.host,
                app = alert.app.as_deref().unwrap_or("-"),
                "alert: {}",
                alert.message
            );
            let alert_id = self.record(&alert).await;
            let alert = Arc::new(alert);
            for (index, sink) in self.sinks.iter().enumerate() {
                let key = (index, alert.host.clone(), alert.app.clone());
                let previous = self.last_delivery.remove(&key);
                let delivery = tokio::spawn(deliver_in_turn(
                    previous,
                    Arc::clone(sink),
                    Arc::clone(&alert),
                    self.client.clone(),
                    Arc::clone(&self.retry),
                    Arc::clone(&self.log),
                    alert_id,
                ));
                self.last_delivery.insert(key, delivery);
            }
        }
        self.last_delivery
            .retain(|_, delivery| !delivery.is_finished());
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
    let delivery = deliver(&client, &sink.hook, &alert, &retry).await;
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

//! Alert delivery against a real HTTP receiver: an axum server on 127.0.0.1 that records every
//! request it gets (path, headers, body) and answers as each test tells it to.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use fleetdeck_collector::alerting::rules::{Aspect, Detail};
use fleetdeck_collector::alerting::{
    self, deliver, Alert, AlertConfig, AlertKind, AlertLog, AlertPolicy, Delivery, Health,
    RetryPolicy, Transition, Webhook, WebhookFormat,
};
use fleetdeck_proto::{Exit, Severity};
use serde_json::{json, Value};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} missing: {:?}", self.headers))
            .to_str()
            .expect("an ASCII header")
    }
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answer 500 to this many requests, then 200.
    FailFirst(u32),
    /// Never answer.
    Hang,
}

#[derive(Debug, Clone)]
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct ReceiverState {
    behaviour: Behaviour,
    failures_left: Arc<AtomicU32>,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let failures_left = match behaviour {
            Behaviour::FailFirst(n) => n,
            Behaviour::Hang => 0,
        };
        let state = ReceiverState {
            behaviour,
            failures_left: Arc::new(AtomicU32::new(failures_left)),
            requests: Arc::clone(&requests),
        };
        let app = Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Self {
            url: format!("http://{addr}"),
            requests,
        }
    }

    fn hook(&self, path: &str, format: WebhookFormat) -> Webhook {
        Webhook::new(format!("{}{path}", self.url), format).expect("a valid URL")
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().expect("receiver lock").clone()
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if matches!(state.behaviour, Behaviour::Hang) {
        std::future::pending::<()>().await;
    }
    let fail = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state
        .requests
        .lock()
        .expect("receiver lock")
        .push(Received {
            path: uri.path().to_owned(),
            headers,
            body: body.to_vec(),
            status: status.as_u16(),
        });
    status
}

/// Polls `check` every 20 ms until it answers something, or fails the test after `limit`.
async fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PATIENCE: Duration = Duration::from_secs(10);

/// The alert history in memory, as the store would keep it.
#[derive(Debug, Default)]
struct MemoryLog {
    alerts: Mutex<Vec<Alert>>,
    deliveries: Mutex<Vec<(i64, String, Delivery)>>,
}

impl AlertLog for MemoryLog {
    fn record(&self, alert: &Alert) -> Result<i64, String> {
        let mut alerts = self.alerts.lock().expect("log lock");
        alerts.push(alert.clone());
        Ok(i64::try_from(alerts.len()).expect("few alerts"))
    }

    fn delivered(&self, alert_id: i64, webhook: &str, delivery: &Delivery) {
        self.deliveries.lock().expect("log lock").push((
            alert_id,
            webhook.to_owned(),
            delivery.clone(),
        ));
    }
}

impl MemoryLog {
    fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().expect("log lock").clone()
    }

    fn deliveries(&self) -> Vec<(i64, String, Delivery)> {
        self.deliveries.lock().expect("log lock").clone()
    }
}

fn problem_alert() -> Alert {
    Alert {
        kind: AlertKind::Problem,
        host: "vm-1".into(),
        app: Some("web".into()),
        state: "failed".into(),
        exit: Some(Exit::Code(3)),
        message: "web on vm-1 failed (exit code 3)".into(),
        at_ms: 1_714_564_800_000,
        aspect: Aspect::State,
        severity: Severity::Critical,
        detail: Detail::default(),
        healthy: false,
    }
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    }
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(since_epoch.as_millis()).expect("a sane clock")
}

fn app_transition(app: &str, state: &str, health: Health, exit: Option<Exit>) -> Transition {
    Transition {
        host: "vm-1".into(),
        app: Some(app.into()),
        state: state.into(),
        health,
        exit,
        at_ms: now_ms(),
        aspect: Aspect::State,
        severity: Severity::Critical,
        detail: Detail::default(),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn each_format_arrives_as_its_receiver_expects() {
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await;
    let alert = problem_alert();
    let retry = fast_retry(1);
    for (path, format) in [
        ("/json", WebhookFormat::Json),
        ("/services/T0/B0/secret", WebhookFormat::Slack),
        ("/api/webhooks/1/secret", WebhookFormat::Discord),
        ("/fleet-alerts", WebhookFormat::Ntfy),
    ] {
        let delivery = deliver(&client(), &receiver.hook(path, format), &alert, &retry).await;
        assert_eq!(
            delivery,
            Delivery {
                attempts: 1,
                last_status: Some(200),
                result: Ok(200)
            },
            "{format:?}"
        );
    }
    let got = receiver.requests();
    assert_eq!(got.len(), 4, "{got:?}");

    assert_eq!(got[0].path, "/json");
    assert_eq!(got[0].header("content-type"), "application/json");
    assert_eq!(
        got[0].json(),
        json!({
            "kind": "problem",
            "host": "vm-1",
            "app": "web",
            "state": "failed",
            "exit": {"code": 3},
            "message": "web on vm-1 failed (exit code 3)",
            "severity": "critical",
            "aspect": {"aspect": "state"},
            "detail": {"context": null, "check": null, "threshold": null, "reason": null},
            "at": "2024-05-01T12:00:00.000Z",
            "at_unix_ms": 1_714_564_800_000_u64,
        })
    );

    assert_eq!(got[1].path, "/services/T0/B0/secret");
    assert_eq!(got[1].header("content-type"), "application/json");
    assert_eq!(
        got[1].json(),
        json!({"text": ":red_circle: web on vm-1 failed (exit code 3)"})
    );

    assert_eq!(got[2].path, "/api/webhooks/1/secret");
    assert_eq!(got[2].header("content-type"), "application/json");
    let discord = got[2].json();
    assert_eq!(
        discord["content"],
        "\u{1f534} web on vm-1 failed (exit code 3)"
    );
    assert_eq!(discord["username"], "Fleetdeck");
    assert_eq!(discord["allowed_mentions"], json!({"parse": []}));

    assert_eq!(got[3].path, "/fleet-alerts");
    assert_eq!(got[3].header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(got[3].header("title"), "web on vm-1 failed");
    assert_eq!(got[3].header("priority"), "5");
    assert_eq!(got[3].header("tags"), "rotating_light");
    assert_eq!(got[3].body, b"web on vm-1 failed (exit code 3)");
}

#[tokio::test]
async fn ntfy_priorities_and_tags_follow_the_kind() {
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await;
    let hook = receiver.hook("/topic", WebhookFormat::Ntfy);
    for kind in [AlertKind::Recovery, AlertKind::Flapping] {
        let alert = Alert {
            kind,
            ..problem_alert()
        };
        let delivery = deliver(&client(), &hook, &alert, &fast_retry(1)).await;
        assert_eq!(delivery.result, Ok(200));
    }
    let got = receiver.requests();
    assert_eq!(got[0].header("title"), "web on vm-1 recovered");
    assert_eq!(
        (got[0].header("priority"), got[0].header("tags")),
        ("3", "white_check_mark")
    );
    assert_eq!(got[1].header("title"), "web on vm-1 is flapping");
    assert_eq!(
        (got[1].header("priority"), got[1].header("tags")),
        ("4", "warning")
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_the_alert_on_the_third_attempt() {
    let receiver = Receiver::start(Behaviour::FailFirst(2)).await;
    let hook = receiver.hook("/hook", WebhookFormat::Json);
    let delivery = deliver(&client(), &hook, &problem_alert(), &fast_retry(6)).await;
    assert_eq!(
        delivery,
        Delivery {
            attempts: 3,
            last_status: Some(200),
            result: Ok(200)
        }
    );
    let got = receiver.requests();
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "every attempt sends the same alert"
    );
}

#[tokio::test]
async fn retries_stop_when_attempts_run_out() {
    let receiver = Receiver::start(Behaviour::FailFirst(u32::MAX)).await;
    let hook = receiver.hook("/hook", WebhookFormat::Slack);
    let delivery = deliver(&client(), &hook, &problem_alert(), &fast_retry(3)).await;
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.last_status, Some(500));
    let error = delivery.result.expect_err("never accepted");
    assert!(error.starts_with("HTTP 500"), "{error}");
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn transport_errors_are_retried_and_never_show_the_url() {
    // A port that was just free: nothing listens there, so every connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let hook = Webhook::new(
        format!("http://{addr}/services/T0/B0/SECRET-TOKEN"),
        WebhookFormat::Slack,
    )
    .expect("valid URL");
    let delivery = deliver(&client(), &hook, &problem_alert(), &fast_retry(2)).await;
    assert_eq!(delivery.attempts, 2);
    assert_eq!(delivery.last_status, None);
    let error = delivery.result.expect_err("nobody listens");
    assert!(error.contains("connect"), "{error}");
    assert!(!error.contains("SECRET"), "{error}");
    assert!(!format!("{hook:?}").contains("SECRET"));
}

fn config(grace: Duration, webhooks: Vec<Webhook>) -> AlertConfig {
    AlertConfig {
        policy: AlertPolicy {
            grace,
            ..AlertPolicy::default()
        },
        webhooks,
        channels: Vec::new(),
        routes: Vec::new(),
        retry: fast_retry(5),
        thresholds: Vec::new(),
        resumed_thresholds: Vec::new(),
    }
}

fn kinds(requests: &[Received]) -> Vec<(String, u16)> {
    requests
        .iter()
        .map(|r| {
            let kind = r.json()["kind"].as_str().unwrap_or_default().to_owned();
            (kind, r.status)
        })
        .collect()
}

#[tokio::test]
async fn alerter_delivers_a_problem_then_its_recovery_once_each() {
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await;
    let log = Arc::new(MemoryLog::default());
    let hook = receiver.hook("/hook", WebhookFormat::Json);
    let alerter = alerting::spawn(
        config(Duration::ZERO, vec![hook]),
        Arc::clone(&log) as Arc<dyn AlertLog>,
        client(),
    );
    alerter
        .observe(app_transition(
            "web",
            "failed",
            Health::Problem,
            Some(Exit::Code(3)),
        ))
        .await;
    alerter
        .observe(app_transition("web", "running", Health::Ok, None))
        .await;

    let deliveries = wait_for("two recorded deliveries", PATIENCE, || {
        let d = log.deliveries();
        (d.len() >= 2).then_some(d)
    })
    .await;
    // Deliveries are recorded after the receiver answered, so everything has arrived by now.
    assert_eq!(
        kinds(&receiver.requests()),
        [("problem".to_owned(), 200), ("recovery".to_owned(), 200)]
    );
    let alerts = log.alerts();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].message, "web on vm-1 failed (exit code 3)");
    assert!(
        alerts[1]
            .message
            .starts_with("web on vm-1 recovered after "),
        "{}",
        alerts[1].message
    );
    // The channel's name, then where it posts: never the webhook's path.
    let redacted = format!("webhook-1 ({}/…)", receiver.url);
    let ok = Delivery {
        attempts: 1,
        last_status: Some(200),
        result: Ok(200),
    };
    assert_eq!(
        deliveries,
        [(1, redacted.clone(), ok.clone()), (2, redacted, ok)]
    );
}

#[tokio::test]
async fn a_recovery_waits_for_its_problem_to_be_delivered() {
    // The problem's first attempt fails; the recovery, raised right after it, must still arrive
    // after the problem's successful retry, not before it.
    let receiver = Receiver::start(Behaviour::FailFirst(1)).await;
    let log = Arc::new(MemoryLog::default());
    let alerter = alerting::spawn(
        config(
            Duration::ZERO,
            vec![receiver.hook("/hook", WebhookFormat::Json)],
        ),
        Arc::clone(&log) as Arc<dyn AlertLog>,
        client(),
    );
    alerter
        .observe(app_transition(
            "web",
            "failed",
            Health::Problem,
            Some(Exit::Code(3)),
        ))
        .await;
    alerter
        .observe(app_transition("web", "running", Health::Ok, None))
        .await;

    let deliveries = wait_for("two recorded deliveries", PATIENCE, || {
        let d = log.deliveries();
        (d.len() >= 2).then_some(d)
    })
    .await;
    assert_eq!(
        kinds(&receiver.requests()),
        [
            ("problem".to_owned(), 500),
            ("problem".to_owned(), 200),
            ("recovery".to_owned(), 200)
        ]
    );
    assert_eq!((deliveries[0].0, deliveries[0].2.attempts), (1, 2));
    assert_eq!((deliveries[1].0, deliveries[1].2.attempts), (2, 1));
}

#[tokio::test]
async fn a_hung_webhook_delays_neither_the_others_nor_detection() {
    let hung = Receiver::start(Behaviour::Hang).await;
    let good = Receiver::start(Behaviour::FailFirst(0)).await;
    let log = Arc::new(MemoryLog::default());
    let alerter = alerting::spawn(
        config(
            Duration::ZERO,
            vec![
                hung.hook("/hook", WebhookFormat::Json),
                good.hook("/hook", WebhookFormat::Json),
            ],
        ),
        Arc::clone(&log) as Arc<dyn AlertLog>,
        client(),
    );
    alerter
        .observe(app_transition("web", "failed", Health::Problem, None))
        .await;
    alerter
        .observe(app_transition("db", "crash-looping", Health::Problem, None))
        .await;
    alerter
        .observe(app_transition("web", "running", Health::Ok, None))
        .await;

    // Well under the 10 s a request to the hung receiver may take.
    let got = wait_for(
        "three alerts at the good receiver",
        Duration::from_secs(5),
        || {
            let got = good.requests();
            (got.len() >= 3).then_some(got)
        },
    )
    .await;
    let mut messages: Vec<String> = got
        .iter()
        .map(|r| r.json()["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    messages.sort();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0], "db on vm-1 is crash-looping");
    assert_eq!(messages[1], "web on vm-1 failed");
    assert!(messages[2].starts_with("web on vm-1 recovered after "));
    assert_eq!(log.alerts().len(), 3);
}

#[tokio::test]
async fn the_grace_period_runs_on_the_wall_clock() {
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await;
    let log = Arc::new(MemoryLog::default());
    let grace = Duration::from_millis(300);
    let alerter = alerting::spawn(
        config(grace, vec![receiver.hook("/hook", WebhookFormat::Json)]),
        Arc::clone(&log) as Arc<dyn AlertLog>,
        client(),
    );
    let started = Instant::now();
    // Recovered within the grace period: must raise nothing.
    alerter
        .observe(app_transition("web", "failed", Health::Problem, None))
        .await;
    alerter
        .observe(app_transition("web", "running", Health::Ok, None))
        .await;
    // Still failed when the grace period ends: must raise one problem, after the grace period.
    alerter
        .observe(app_transition("db", "failed", Health::Problem, None))
        .await;

    let got = wait_for("the db problem", PATIENCE, || {
        let got = receiver.requests();
        (!got.is_empty()).then_some(got)
    })
    .await;
    let waited = started.elapsed();
    // The wall clock and Instant may disagree by a millisecond of rounding.
    assert!(
        waited >= grace - Duration::from_millis(5),
        "alerted after {waited:?}"
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json()["message"], "db on vm-1 failed");
    // Alerts are stored in the order they are raised: had web's problem been raised (its
    // deadline came first), it would be stored before db's.
    let alerts = log.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].app.as_deref(), Some("db"));
}

//! Issue 14's problems end to end on real parts: the real agent watching a real systemd unit with
//! an HTTP check against a local server and an HTTPS check against a server whose certificate
//! (made here with rcgen) expires in 5 days; the real collector alerting to a real local receiver
//! in every webhook format. Each step asserts what reaches the receiver, the event log and the
//! fleet's problems.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// One webhook delivery: the format (the URL's last segment), ntfy's `Title` header, the body.
#[derive(Debug, Clone)]
struct Delivery {
    format: String,
    title: String,
    body: String,
}

/// A receiver for all four formats at `/hook/{format}`, keeping every body as text.
#[derive(Clone, Default)]
struct Hooks {
    got: Arc<Mutex<Vec<Delivery>>>,
    base: String,
}

impl Hooks {
    async fn start() -> Self {
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let store = got.clone();
        let app = axum::Router::new().route(
            "/hook/{format}",
            post(
                move |UrlPath(format): UrlPath<String>, headers: HeaderMap, body: String| {
                    let store = store.clone();
                    async move {
                        let title = headers
                            .get("title")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        store.lock().expect("hooks").push(Delivery {
                            format,
                            title,
                            body,
                        });
                        StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hooks");
        let base = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { got, base }
    }

    fn config(&self) -> String {
        ["json", "slack", "discord", "ntfy"]
            .iter()
            .map(|f| {
                format!(
                    "[[webhooks]]\nurl = \"{}/{f}\"\nformat = \"{f}\"\n",
                    self.base
                )
            })
            .collect()
    }

    /// The JSON-format alerts matching `pred`.
    fn json(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.got
            .lock()
            .expect("hooks")
            .iter()
            .filter(|d| d.format == "json")
            .filter_map(|d| serde_json::from_str::<Value>(&d.body).ok())
            .filter(|v| pred(v))
            .collect()
    }

    /// The formats whose title or body holds `text`.
    fn formats_saying(&self, text: &str) -> Vec<String> {
        let mut formats: Vec<String> = self
            .got
            .lock()
            .expect("hooks")
            .iter()
            .filter(|d| d.body.contains(text) || d.title.contains(text))
            .map(|d| d.format.clone())
            .collect();
        formats.sort();
        formats.dedup();
        formats
    }
}

/// An HTTP server answering `/healthz` with the status held in `status`.
async fn http_server(status: Arc<AtomicU16>) -> u16 {
    let app = axum::Router::new().route(
        "/healthz",
        get(move || {
            let status = status.clone();
            async move {
                let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("status");
                (code, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn problems(fleet: &Value) -> Vec<Value> {
    fleet["problems"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_certificates_crashes_stops_and_removal_through_the_real_agent() {
    require_testbed();
    let work = Workdir::new();
    let die = work.path("die");
    // Prints each line of the die-file it finds and exits 3 (a crash whose last line is that).
    let unit = UnitFile::start(
        "i14-real",
        &format!(
            "while true; do if [ -f {d} ]; then read -r last <{d}; rm -f {d}; echo \"$$last\"; exit 3; fi; echo tick; sleep 0.2; done",
            d = die.display()
        ),
    );
    let status = Arc::new(AtomicU16::new(200));
    let http_port = http_server(status.clone()).await;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("whole seconds");
    let expires = now + time::Duration::days(5) + time::Duration::hours(1);
    let (ca, tls) = certificates(expires);
    let https_port = https_server(tls).await;
    let ca_file = work.write("ca.pem", &ca);
    let agent_config = agent_config(
        &work,
        "real",
        "127.0.0.1:0",
        &format!(
            "[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\nallow_actions = true\n\
             [[apps.checks]]\nname = \"health\"\nhttp = \"http://127.0.0.1:{http_port}/healthz\"\n\
             interval = \"1s\"\ntimeout = \"500ms\"\n\
             [[apps.checks]]\nname = \"tls\"\nhttp = \"https://localhost:{https_port}/\"\n\
             ca_file = {ca_file:?}\ninterval = \"2s\"\ntimeout = \"1s\"\n",
            unit.name
        ),
    );
    let agent = start_agent(&agent_config);
    let hooks = Hooks::start().await;
    let config = collector_config(
        &work,
        &format!(
            // (flap_threshold: this test makes one app fail, stop and vanish within a minute,
            // which the default would rightly call flapping)
            "[alerts]\ngrace = \"0s\"\nflap_threshold = 10\ndefault_rules = false\n{}{}",
            hooks.config(),
            agent_entry("real", agent.addr)
        ),
    );
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "op", "operator"));

    // The certificate: one warning naming its date, nothing critical (5 days > 3).
    let day = format!(
        "{:04}-{:02}-{:02}",
        expires.year(),
        u8::from(expires.month()),
        expires.day()
    );
    let cert_alert = wait_for("the certificate warning", LIMIT, || async {
        hooks
            .json(|b| b["kind"] == "problem" && b["aspect"]["aspect"] == "cert-expiring")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(cert_alert["severity"], "warning", "{cert_alert}");
    assert_eq!(cert_alert["app"], "web");
    let text = cert_alert.to_string();
    assert!(
        text.contains(&format!("expires on {day} (5 days left)")),
        "the alert names the date: {text}"
    );
    let fleet = api.json("/v1/fleet").await;
    let cert_problem = problems(&fleet)
        .into_iter()
        .find(|p| p["kind"] == "cert-expiring")
        .unwrap_or_else(|| panic!("no certificate problem: {fleet}"));
    assert_eq!(cert_problem["subject"], "tls");
    assert_eq!(cert_problem["severity"], "warning");
    let events = api.json("/v1/events?kind=cert-expiring&host=real").await;
    let event = &events["events"][0];
    assert_eq!(event["severity"], "warning", "{events}");
    assert!(
        event["message"].as_str().expect("message").contains(&day),
        "{event}"
    );
    assert!(
        event["check"]["cert_not_after_unix_ms"].is_number(),
        "{event}"
    );
    assert!(
        hooks
            .json(|b| b["aspect"]["aspect"] == "cert-critical")
            .is_empty(),
        "5 days left is not critical"
    );

    // The HTTP check turned to 500: its event, one alert, and recovery when it answers 200.
    let mut stream = api.sse("/v1/events/stream", None).await;
    status.store(500, Ordering::SeqCst);
    let failed = stream
        .wait_for("the check-failed event", Duration::from_secs(5), |ev| {
            let v: Value = serde_json::from_str(&ev.data).ok()?;
            (v["kind"] == "check-failed" && v["check"]["name"] == "health").then_some(v)
        })
        .await;
    assert_eq!(failed["check"]["status_code"], 500);
    let alert = wait_for("the check alert", LIMIT, || async {
        hooks
            .json(|b| b["kind"] == "problem" && b["aspect"]["name"] == "health")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(alert["severity"], "warning");
    status.store(200, Ordering::SeqCst);
    wait_for("the check recovery", LIMIT, || async {
        hooks
            .json(|b| b["kind"] == "recovery" && b["aspect"]["name"] == "health")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        hooks
            .json(|b| b["kind"] == "problem" && b["aspect"]["name"] == "health")
            .len(),
        1,
        "one alert for one failure"
    );

    // A crash with a distinctive last line: in the event and in every webhook format.
    let last = format!("fatal: ledger {} is corrupt", unique("x"));
    std::fs::write(&die, format!("{last}\n")).expect("die-file");
    let crash = wait_for("the crash event with its context", LIMIT, || async {
        let page = api
            .json("/v1/events?host=real&app=web&kind=transition")
            .await;
        page["events"]
            .as_array()?
            .iter()
            .find(|e| e["to"] == "failed" && !e["context"].is_null())
            .cloned()
    })
    .await;
    assert_eq!(crash["exit"]["code"], 3, "{crash}");
    let lines = crash["context"]["last_lines"].to_string();
    assert!(lines.contains(&last), "{crash}");
    wait_for("the last line in every webhook format", LIMIT, || async {
        (hooks.formats_saying(&last) == ["discord", "json", "ntfy", "slack"]).then_some(())
    })
    .await;

    // Started again; stopped from outside: an alert. Started; stopped through Fleetdeck: none.
    run("systemctl", &["--user", "start", &unit.name]);
    let running = || async {
        let host = api.json("/v1/hosts/real").await;
        (host["apps"][0]["status"]["state"] == "running").then_some(())
    };
    wait_for("web running again", LIMIT, running).await;
    run("systemctl", &["--user", "stop", &unit.name]);
    let stopped = wait_for("the stopped-from-outside alert", LIMIT, || async {
        hooks
            .json(|b| b["kind"] == "problem" && b["app"] == "web" && b["state"] == "stopped")
            .into_iter()
            .next()
    })
    .await;
    assert!(
        stopped.to_string().contains("without a request"),
        "says nobody asked: {stopped}"
    );
    run("systemctl", &["--user", "start", &unit.name]);
    wait_for("web running again", LIMIT, running).await;
    let before = hooks.json(|b| b["app"] == "web").len();
    let resp = api
        .http
        .post(format!("{}/v1/hosts/real/apps/web/actions/stop", api.base))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("stop");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    // Five polls later: the requested stop raised nothing.
    let seen = poll_count(&work);
    wait_for("five more polls", LIMIT, || async {
        (poll_count(&work) >= seen + 5).then_some(())
    })
    .await;
    let after: Vec<Value> = hooks.json(|b| b["app"] == "web");
    assert!(
        after[before..].iter().all(|b| b["state"] != "stopped"),
        "a stop through Fleetdeck alerted: {:?}",
        &after[before..]
    );

    // The unit removed: not-found, critical.
    drop(unit);
    wait_for("web not found", LIMIT, || async {
        let host = api.json("/v1/hosts/real").await;
        (host["apps"][0]["status"]["state"] == "not-found").then_some(())
    })
    .await;
    let gone = wait_for("the not-found alert", LIMIT, || async {
        hooks
            .json(|b| b["kind"] == "problem" && b["app"] == "web" && b["state"] == "not-found")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(gone["severity"], "critical", "{gone}");
    drop(collector);
    drop(agent);
}

/// Polls the collector has stored (one raw sample per poll of the agent's ring, at least).
fn poll_count(work: &Workdir) -> i64 {
    db(work)
        .run(|c| {
            c.query_row(
                "SELECT count(*) FROM samples_raw",
                fleetdeck_collector::params![],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_engine_that_stops_answering_is_a_host_warning_until_it_is_back() {
    require_testbed();
    let work = Workdir::new();
    let socket = work.path("engine.sock");
    let mut engine = OwnEngine::start(&socket).await;
    let agent_config = agent_config(
        &work,
        "eng",
        "127.0.0.1:0",
        &format!(
            "docker_socket = \"unix://{}\"\n[[apps]]\nname = \"cache\"\ndocker_container = \"{}\"\n",
            socket.display(),
            unique("i14-absent")
        ),
    );
    let agent = start_agent(&agent_config);
    let hooks = Hooks::start().await;
    let config = collector_config(
        &work,
        &format!(
            "[alerts]\ngrace = \"0s\"\ndefault_rules = false\n{}{}",
            hooks.config(),
            agent_entry("eng", agent.addr)
        ),
    );
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "viewer", "viewer"));
    wait_for("the host up", LIMIT, || async {
        (api.json("/v1/hosts/eng").await["status"] == "up").then_some(())
    })
    .await;
    let docker = |kind: &'static str| {
        let hooks = hooks.clone();
        move || {
            hooks
                .json(|b| {
                    b["kind"] == kind
                        && b["aspect"] == serde_json::json!({"aspect": "source", "name": "docker"})
                })
                .into_iter()
                .next()
        }
    };
    assert!(docker("problem")().is_none(), "the engine answers");

    engine.kill();
    let down = wait_for("the source warning", LIMIT, || {
        let f = docker("problem");
        async move { f() }
    })
    .await;
    assert_eq!(down["severity"], "warning", "{down}");
    assert!(down["app"].is_null(), "a host-level problem: {down}");
    let fleet = api.json("/v1/fleet").await;
    assert!(
        problems(&fleet)
            .iter()
            .any(|p| p["kind"] == "source" && p["subject"] == "docker" && p["app"].is_null()),
        "{fleet}"
    );

    let _engine = OwnEngine::start(&socket).await;
    wait_for("the source recovery", LIMIT, || {
        let f = docker("recovery");
        async move { f() }
    })
    .await;
    assert_eq!(
        hooks
            .json(|b| b["kind"] == "problem" && b["aspect"]["aspect"] == "source")
            .len(),
        1,
        "one warning for one outage"
    );
    drop(collector);
    drop(agent);
}

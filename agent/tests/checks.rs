//! Endpoint checks through the real agent binary, against real servers made here: an HTTP server
//! switched from 200 to 500 and back, a closed TCP port, and HTTPS servers whose certificates
//! (from their own CA, made with rcgen) expire in 5 days or expired yesterday.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleetdeck_proto::{AppStatus, CheckEvent, CheckResult, SamplesPage};

/// The app the checks belong to: a unit that does not exist (its state does not matter here).
fn app_with(checks: &str) -> String {
    format!(
        "sample_interval = \"1s\"\n{}{checks}",
        unit_app("web", "i14-agent-no-such.service")
    )
}

fn check_event(ev: &SseEvent) -> Option<CheckEvent> {
    (ev.event.as_deref() == Some("check"))
        .then(|| serde_json::from_str(&ev.data).expect("CheckEvent JSON"))
}

fn check<'a>(status: &'a AppStatus, name: &str) -> Option<&'a CheckResult> {
    status.checks.iter().find(|c| c.name == name)
}

/// An HTTP server answering every request with the status in `status` and body `ok`.
async fn http_server(status: Arc<AtomicU16>) -> SocketAddr {
    let app = axum::Router::new().fallback(move || {
        let status = status.clone();
        async move {
            let code = axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst))
                .expect("status code");
            (code, "ok")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn http_check_fails_degrades_and_recovers_on_the_event_stream() {
    require_testbed();
    let status = Arc::new(AtomicU16::new(200));
    let addr = http_server(status.clone()).await;
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&app_with(&format!(
        "[[apps.checks]]\nname = \"health\"\nhttp = \"http://{addr}/healthz?token=s3cr3t\"\n\
         expect_status = 200\ninterval = \"1s\"\ntimeout = \"500ms\"\n"
    ))));
    let passing = wait_for("the check to pass", Duration::from_secs(5), || async {
        let s = agent.app("web").await;
        check(&s, "health").filter(|c| c.ok).cloned()
    })
    .await;
    assert_eq!(passing.status_code, Some(200));
    assert_eq!(
        passing.target,
        format!("http://{addr}/healthz"),
        "no query shown"
    );
    assert!(passing.latency_ms.is_some());
    let mut stream = agent.sse("/v1/events", None).await;

    status.store(500, Ordering::SeqCst);
    // One interval plus one second.
    let e = stream
        .wait_for("a failing check event", Duration::from_secs(2), |ev| {
            check_event(ev).filter(|e| !e.result.ok)
        })
        .await;
    assert_eq!(e.app, "web");
    assert_eq!(e.result.name, "health");
    assert_eq!(e.result.status_code, Some(500));
    assert_eq!(e.result.error.as_deref(), Some("HTTP 500, expected 200"));
    assert_eq!(e.result.consecutive_failures, 1);
    let degraded = wait_for("the app to be degraded", Duration::from_secs(4), || async {
        let s = agent.app("web").await;
        s.degraded.then_some(s)
    })
    .await;
    let c = check(&degraded, "health").expect("check in the snapshot");
    assert!(!c.ok && c.consecutive_failures >= 2, "{c:?}");

    status.store(200, Ordering::SeqCst);
    let back = stream
        .wait_for("a passing check event", Duration::from_secs(2), |ev| {
            check_event(ev).filter(|e| e.result.ok)
        })
        .await;
    assert!(back.id > e.id);
    assert_eq!(back.result.consecutive_failures, 0);
    let s = agent.app("web").await;
    assert!(!s.degraded, "{s:?}");

    // Samples carry the check's result and latency.
    let page: SamplesPage =
        serde_json::from_value(agent.get_json("/v1/samples?after=0").await).expect("samples");
    assert!(
        page.samples.iter().any(|s| s.apps.iter().any(|a| a
            .checks
            .iter()
            .any(|c| c.name == "health" && c.latency_ms.is_some()))),
        "no sample holds the check"
    );
    // The URL's query (a token) never reaches the log.
    let mut agent = agent;
    assert!(
        agent.logs().iter().all(|l| !l.contains("s3cr3t")),
        "a secret of the URL was logged"
    );
}

#[tokio::test]
async fn tcp_check_against_a_closed_port_fails_with_a_clear_error() {
    require_testbed();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&app_with(&format!(
        "[[apps.checks]]\nname = \"db\"\ntcp = \"127.0.0.1:{port}\"\ninterval = \"1s\"\n"
    ))));
    let mut stream = agent.sse("/v1/events", Some("replay-all")).await;
    let e = stream
        .wait_for(
            "the first failing result",
            Duration::from_secs(3),
            check_event,
        )
        .await;
    assert!(!e.result.ok);
    assert_eq!(
        e.result.error.as_deref(),
        Some(format!("connection refused to 127.0.0.1:{port}").as_str())
    );
}

#[tokio::test]
async fn https_checks_report_the_certificate_date_and_body_mismatch() {
    require_testbed();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("whole seconds");
    let soon = now + time::Duration::days(5);
    let (ca, config) = certificates(soon);
    let port = https_server(config).await;
    let expired_at = now - time::Duration::days(1);
    let (old_ca, old_config) = certificates(expired_at);
    let old_port = https_server(old_config).await;
    let work = Workdir::new();
    std::fs::write(work.path("ca.pem"), ca).expect("write CA");
    std::fs::write(work.path("old-ca.pem"), old_ca).expect("write CA");
    let ca_file = work.path("ca.pem");
    let old_ca_file = work.path("old-ca.pem");
    let agent = RunningAgent::start(&work.config(&app_with(&format!(
        "[[apps.checks]]\nname = \"tls\"\nhttp = \"https://localhost:{port}/\"\nexpect_body = \"ok\"\n\
         ca_file = {ca_file:?}\ninterval = \"1s\"\n\
         [[apps.checks]]\nname = \"body\"\nhttp = \"https://localhost:{port}/\"\nexpect_body = \"healthy\"\n\
         ca_file = {ca_file:?}\ninterval = \"1s\"\n\
         [[apps.checks]]\nname = \"expired\"\nhttp = \"https://localhost:{old_port}/\"\n\
         ca_file = {old_ca_file:?}\ninterval = \"1s\"\n"
    ))));
    let status = wait_for(
        "all three checks to run",
        Duration::from_secs(5),
        || async {
            let s = agent.app("web").await;
            (s.checks.len() == 3).then_some(s)
        },
    )
    .await;
    let names: Vec<&str> = status.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["tls", "body", "expired"], "config order");

    let tls = check(&status, "tls").expect("tls");
    assert!(tls.ok, "{tls:?}");
    assert_eq!(
        tls.cert_not_after_unix_ms,
        Some(soon.unix_timestamp() as u64 * 1000),
        "the certificate's notAfter, to the second"
    );
    // A later run still sees the certificate (no resumed session hiding it).
    let first = tls.checked_unix_ms;
    let later = wait_for("a later run of tls", Duration::from_secs(5), || async {
        let s = agent.app("web").await;
        check(&s, "tls")
            .filter(|c| c.checked_unix_ms > first)
            .cloned()
    })
    .await;
    assert_eq!(
        later.cert_not_after_unix_ms,
        Some(soon.unix_timestamp() as u64 * 1000),
        "{later:?}"
    );

    let body = check(&status, "body").expect("body");
    assert!(!body.ok);
    assert_eq!(body.status_code, Some(200));
    assert_eq!(
        body.error.as_deref(),
        Some("body does not contain \"healthy\"")
    );

    let expired = check(&status, "expired").expect("expired");
    assert!(!expired.ok);
    let date = format!(
        "{:04}-{:02}-{:02}",
        expired_at.year(),
        u8::from(expired_at.month()),
        expired_at.day()
    );
    assert_eq!(
        expired.error.as_deref(),
        Some(format!("certificate expired on {date}").as_str())
    );
    assert_eq!(
        expired.cert_not_after_unix_ms,
        Some(expired_at.unix_timestamp() as u64 * 1000)
    );
}

#[tokio::test]
async fn container_network_rates_come_from_the_second_read_on() {
    require_testbed();
    let c = Container::run("i14-agent-net", &[], &["sleep", "100000"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("box", &c.name)));
    // The first read has no earlier counters; every later one gives a rate.
    let detail = wait_for("network rates", Duration::from_secs(10), || async {
        let s = agent.app("box").await;
        s.docker.filter(|d| d.net_rx_bytes_per_sec.is_some())
    })
    .await;
    let (rx, tx) = (
        detail.net_rx_bytes_per_sec.expect("rx"),
        detail.net_tx_bytes_per_sec.expect("tx"),
    );
    assert!(rx >= 0.0 && tx >= 0.0, "{rx} {tx}");
}

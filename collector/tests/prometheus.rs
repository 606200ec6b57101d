//! Issue 17 item 3: `GET /metrics` in the Prometheus text format, off until `[metrics]
//! token_file` is set (a reload turns it on), open only to that token; read by the real
//! `promtool check metrics` (Debian's prometheus package) and scraped by a real Prometheus server,
//! whose queries follow an app going down.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
const SCRAPE_TOKEN: &str = "scrape-token-0123456789abcdef";

/// The value of the series whose line starts with `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(http: &reqwest::Client, collector: &Daemon, token: Option<&str>) -> (u16, String) {
    let mut req = http.get(collector.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("GET /metrics");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn hup(collector: &Daemon) {
    run("kill", &["-HUP", &collector.pid().to_string()]);
}

/// `promtool check metrics` on `text`: its lint (names, units, `_total`, help) must be clean.
fn promtool(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; testbed.sh up installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_until_configured_and_open_only_to_the_scrape_token() {
    require_testbed();
    let work = Workdir::new();
    let unit = TransientUnit::start("prom-off", &[], "while true; do sleep 1; done");
    let agent_config = agent_config(&work, "near", "127.0.0.1:0", &unit_app("web", &unit.name));
    let _agent = start_agent(&agent_config);
    let config = collector_config(&work, &agent_entry("near", _agent.addr));
    let mut collector = start_collector(&config);
    let admin = create_key(&config, "root", "admin");
    let http = reqwest::Client::new();

    // Off by default: nobody, not even an admin key, gets the fleet this way.
    for token in [None, Some(admin.as_str()), Some(SCRAPE_TOKEN)] {
        let (status, body) = scrape(&http, &collector, token).await;
        assert_eq!(status, 404, "{body}");
        let error: Value = serde_json::from_str(&body).expect("an error body");
        assert_eq!(error["error"]["code"], "metrics_off", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("[metrics] token_file")),
            "the error says what to set: {error}"
        );
    }

    // A token file readable by others is refused by the reload, which changes nothing.
    let token_file = work.secret("metrics.token", SCRAPE_TOKEN);
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!("{text}[metrics]\ntoken_file = \"metrics.token\"\n"),
    )
    .expect("write config");
    hup(&collector);
    let admin_api = Api::new(&collector, &admin);
    // The refusal is logged, saying what to do; metrics stay off.
    let deadline = std::time::Instant::now() + LIMIT;
    while !collector
        .logs()
        .iter()
        .any(|l| l.contains("[metrics] token_file") && l.contains("chmod 600"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the refused reload was not logged: {:?}",
            collector.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scrape(&http, &collector, Some(SCRAPE_TOKEN)).await.0, 404);

    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    hup(&collector);
    let text = wait_for("metrics on after the reload", LIMIT, || async {
        let (status, body) = scrape(&http, &collector, Some(SCRAPE_TOKEN)).await;
        (status == 200 && value(&body, r#"fleetdeck_app_up{app="web",host="near"}"#).is_some())
            .then_some(body)
    })
    .await;
    promtool(&text);

    // Only that token: not no token, a wrong one, or an API key (of any role); and the scrape
    // token does not open the API.
    for token in [
        None,
        Some("scrape-token-0123456789abcdeX"),
        Some(admin.as_str()),
    ] {
        let (status, body) = scrape(&http, &collector, token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(!body.contains("fleetdeck_"), "{body}");
    }
    let fleet = http
        .get(collector.url("/v1/fleet"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .expect("GET /v1/fleet");
    assert_eq!(fleet.status().as_u16(), 401);
    assert_eq!(admin_api.get("/v1/fleet").await.status().as_u16(), 200);
}

/// A Prometheus server of the test's own, scraping `target` every second with `token_file`.
struct PrometheusServer {
    child: std::process::Child,
    url: String,
}

impl PrometheusServer {
    fn start(work: &Workdir, target: std::net::SocketAddr, token_file: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = work.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: fleetdeck\n    \
                 authorization:\n      credentials_file: {}\n    \
                 static_configs:\n      - targets: ['{target}']\n",
                token_file.display()
            ),
        );
        let (log, file) = fleetdeck_testkit::log_file("prometheus");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus (Debian's package): {e}; log {}", log.display())
            });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The value of the single series `query` answers now, if it answers one.
    async fn query(&self, http: &reqwest::Client, query: &str) -> Option<f64> {
        let answer: Value = http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let result = answer["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_fleet_and_sees_an_app_go_down() {
    require_testbed();
    let work = Workdir::new();
    let unit = TransientUnit::start("prom", &[], "while true; do sleep 1; done");
    // Something for the TCP check to reach: the kernel completes the handshake from the backlog.
    let listening = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let check_port = listening.local_addr().expect("addr").port();
    // A container too: the test bed's user manager has no CPU accounting, Docker's stats do.
    let container = Container::run(
        "prom",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    let agent_config = agent_config(
        &work,
        "near",
        "127.0.0.1:0",
        &format!(
            "[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\nallow_actions = true\n\
             [[apps.checks]]\nname = \"port\"\ntcp = \"127.0.0.1:{check_port}\"\ninterval = \"1s\"\n\
             [[apps]]\nname = \"cache\"\ndocker_container = \"{}\"\n",
            unit.name, container.name
        ),
    );
    let agent = start_agent(&agent_config);
    let token_file = work.secret("metrics.token", SCRAPE_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "[metrics]\ntoken_file = \"metrics.token\"\n{}",
            agent_entry("near", agent.addr)
        ),
    );
    let collector = start_collector(&config);
    let http = reqwest::Client::new();

    // What the collector shows, read directly: the app, its check, the host, the collector.
    let text = wait_for("the app, its check and host readings", LIMIT, || async {
        let (status, body) = scrape(&http, &collector, Some(SCRAPE_TOKEN)).await;
        let ready = status == 200
            && value(
                &body,
                r#"fleetdeck_check_up{app="web",check="port",host="near",kind="tcp"}"#,
            ) == Some(1.0)
            && value(
                &body,
                r#"fleetdeck_app_cpu_usage_ratio{app="cache",host="near"}"#,
            )
            .is_some()
            && value(
                &body,
                r#"fleetdeck_app_uptime_ratio{app="web",host="near",window="30d"}"#,
            )
            .is_some();
        ready.then_some(body)
    })
    .await;
    promtool(&text);
    for (series, want) in [
        (r#"fleetdeck_host_up{host="near"}"#, 1.0),
        (r#"fleetdeck_app_up{app="web",host="near"}"#, 1.0),
        (
            r#"fleetdeck_app_state{app="web",host="near",state="running"}"#,
            1.0,
        ),
        (
            r#"fleetdeck_app_state{app="web",host="near",state="failed"}"#,
            0.0,
        ),
        (r#"fleetdeck_app_degraded{app="web",host="near"}"#, 0.0),
        (r#"fleetdeck_collector_agents"#, 1.0),
        (
            r#"fleetdeck_alerts_open{acknowledged="false",severity="critical"}"#,
            0.0,
        ),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}\n{text}");
    }
    for (series, at_least) in [
        (r#"fleetdeck_host_memory_total_bytes{host="near"}"#, 1.0),
        (r#"fleetdeck_host_cpu_cores{host="near"}"#, 1.0),
        (r#"fleetdeck_collector_polls_total{result="ok"}"#, 1.0),
        (r#"fleetdeck_collector_poll_duration_seconds_count"#, 1.0),
        (
            r#"fleetdeck_collector_db_write_duration_seconds_count"#,
            1.0,
        ),
        (r#"fleetdeck_collector_db_writes_total"#, 1.0),
        (r#"fleetdeck_app_memory_bytes{app="web",host="near"}"#, 1.0),
    ] {
        assert!(
            value(&text, series).is_some_and(|v| v >= at_least),
            "{series} below {at_least}\n{text}"
        );
    }
    let latency = value(
        &text,
        r#"fleetdeck_check_latency_seconds{app="web",check="port",host="near",kind="tcp"}"#,
    )
    .expect("the check's latency");
    assert!((0.0..1.0).contains(&latency), "{latency}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("fleetdeck_host_filesystem_avail_bytes{")
                && l.contains(r#"mountpoint="/""#)),
        "the root filesystem\n{text}"
    );
    assert!(
        text.contains("fleetdeck_host_network_receive_bytes_total{"),
        "{text}"
    );
    assert!(
        text.contains("fleetdeck_collector_db_write_queue_depth "),
        "{text}"
    );

    // A real Prometheus scrapes it with the token from a file, as an operator would set it up.
    let prometheus = PrometheusServer::start(&work, collector.addr, &token_file);
    let up = wait_for("Prometheus scraping the collector", LIMIT, || async {
        let up = prometheus.query(&http, r#"up{job="fleetdeck"}"#).await?;
        let app = prometheus
            .query(&http, r#"fleetdeck_app_up{host="near",app="web"}"#)
            .await?;
        (up == 1.0).then_some(app)
    })
    .await;
    assert_eq!(up, 1.0);
    assert!(prometheus
        .query(&http, r#"fleetdeck_collector_polls_total{result="ok"}"#)
        .await
        .is_some_and(|v| v >= 1.0));

    // The app stops (a transient unit is gone once stopped): Prometheus sees it down, and no
    // longer in its running state.
    let stopped = http
        .post(collector.url("/v1/hosts/near/apps/web/actions/stop"))
        .bearer_auth(create_key(&config, "ops", "operator"))
        .send()
        .await
        .expect("stop");
    assert_eq!(stopped.status().as_u16(), 200, "{:?}", stopped.text().await);
    wait_for("Prometheus seeing the app down", LIMIT, || async {
        let app = prometheus
            .query(&http, r#"fleetdeck_app_up{host="near",app="web"}"#)
            .await?;
        let state = prometheus
            .query(
                &http,
                r#"fleetdeck_app_state{host="near",app="web",state="running"}"#,
            )
            .await?;
        (app == 0.0 && state == 0.0).then_some(())
    })
    .await;
    drop(listening);
}

//! The simulator over a real socket: a server on 127.0.0.1:0, driven with reqwest.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use fleetdeck_proto::{
    ActionOutcome, AppEvent, AppKind, AppStatus, EnvFile, EnvWritten, ErrorBody, Info, LogEntry,
    LogPage, SamplesPage, Snapshot, SourceHealth,
};
use fleetdeck_sim::{AppState, Exit, Sim, SimConfig};
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

const TOKEN: &str = "test-token";

/// How long any condition may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(15);

fn config() -> SimConfig {
    SimConfig {
        hosts: 3,
        apps_per_host: 4,
        sample_interval: Duration::from_secs(10),
        token: TOKEN.to_owned(),
        env_dir: None,
        chaos: false,
        seed: 7,
        host_prefix: "demo".to_owned(),
        log_period: None,
    }
}

struct Server {
    sim: Arc<Sim>,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(config: SimConfig) -> Self {
        let sim = Sim::new(config).expect("the simulator starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a bound address");
        let router = sim.router();
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self {
            sim,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, host: usize, path: &str) -> String {
        format!("{}/agents/{host}{path}", self.base)
    }

    fn get(&self, host: usize, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(host, path)).bearer_auth(TOKEN)
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, host: usize, path: &str) -> T {
        let response = self.get(host, path).send().await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("the expected JSON")
    }

    async fn instance(&self, host: usize) -> String {
        self.json::<Info>(host, "/v1/info").await.instance_id
    }
}

/// The error code of an error answer, after checking its status.
async fn error_code(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: ErrorBody = response.json().await.expect("the error shape");
    assert!(!body.error.message.is_empty());
    body.error.code
}

/// Polls `check` until it gives a value, failing after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    id: String,
    data: String,
}

/// Reads Server-Sent Events off a response body.
struct SseReader<S> {
    body: S,
    buf: String,
}

impl<S, B> SseReader<S>
where
    S: Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    /// The next event (keep-alive comments skipped), or `None` when the stream ended.
    async fn next(&mut self) -> Option<SseEvent> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: String::new(),
                    id: String::new(),
                    data: String::new(),
                };
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                if !event.data.is_empty() {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("an SSE event or the end of the stream in time")?;
            let chunk = chunk.ok()?;
            self.buf.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        }
    }
}

async fn sse(
    request: reqwest::RequestBuilder,
) -> SseReader<impl Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin> {
    let response = request.send().await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    SseReader {
        body: Box::pin(response.bytes_stream()),
        buf: String::new(),
    }
}

#[tokio::test]
async fn auth_healthz_and_info() {
    let s = Server::start(config()).await;
    assert_eq!(
        s.sim.agents(),
        [
            ("demo-01".to_owned(), "/agents/0".to_owned()),
            ("demo-02".to_owned(), "/agents/1".to_owned()),
            ("demo-03".to_owned(), "/agents/2".to_owned()),
        ]
    );

    let health = s
        .client
        .get(s.url(0, "/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.expect("text"), "ok");

    for request in [
        s.client.get(s.url(0, "/v1/info")),
        s.client.get(s.url(0, "/v1/info")).bearer_auth("wrong"),
        s.client
            .get(s.url(0, "/v1/snapshot"))
            .header("authorization", TOKEN),
        s.client.get(s.url(0, "/v1/events")),
    ] {
        let response = request.send().await.expect("a response");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert_eq!(
            error_code(response, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }

    let info: Info = s.json(1, "/v1/info").await;
    assert_eq!(info.hostname, "demo-02");
    assert_eq!(info.agent_version, "sim");
    assert_eq!(info.wire_version, 1);
    assert_eq!(info.capabilities, ["sim"]);
    assert_eq!(info.sample_interval_ms, 10_000);
    assert_eq!(info.samples_capacity, 8_640);
    assert_ne!(
        info.instance_id,
        s.instance(0).await,
        "one instance per host"
    );

    let missing = s.get(9, "/v1/info").send().await.expect("a response");
    assert_eq!(
        error_code(missing, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    let nowhere = s
        .client
        .get(format!("{}/v1/info", s.base))
        .send()
        .await
        .expect("a response");
    assert_eq!(
        error_code(nowhere, StatusCode::NOT_FOUND).await,
        "not_found"
    );
}

#[tokio::test]
async fn snapshot_and_apps() {
    let s = Server::start(config()).await;
    let snap: Snapshot = s.json(0, "/v1/snapshot").await;
    assert_eq!(snap.host.hostname, "demo-01");
    assert_eq!(snap.apps.len(), 4);
    let kinds: Vec<AppKind> = snap.apps.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            AppKind::Systemd,
            AppKind::Docker,
            AppKind::Systemd,
            AppKind::Docker
        ]
    );
    assert!(snap.apps.iter().all(|a| a.state == AppState::Running));
    assert!(snap.apps[0].target.ends_with(".service"));
    assert_eq!(
        (snap.sources.systemd, snap.sources.docker),
        (SourceHealth::Up, SourceHealth::Up)
    );
    let mem = &snap.host.memory;
    assert!((4u64 << 30..=16u64 << 30).contains(&mem.total_bytes));
    assert_eq!(mem.used_bytes + mem.available_bytes, mem.total_bytes);

    let apps: Vec<AppStatus> = s.json(0, "/v1/apps").await;
    assert_eq!(apps.len(), 4);
    let one: AppStatus = s.json(0, &format!("/v1/apps/{}", apps[1].name)).await;
    assert_eq!(one.name, apps[1].name);
    let missing = s.get(0, "/v1/apps/nope").send().await.expect("a response");
    assert_eq!(
        error_code(missing, StatusCode::NOT_FOUND).await,
        "app_not_found"
    );
}

#[tokio::test]
async fn samples_page_through_without_gaps() {
    let s = Server::start(SimConfig {
        sample_interval: Duration::from_millis(1),
        hosts: 1,
        ..config()
    })
    .await;
    let info: Info = s.json(0, "/v1/info").await;
    let latest = eventually("1,200 samples", || async {
        let page: SamplesPage = s.json(0, "/v1/samples?after=0&limit=1").await;
        page.latest_seq.filter(|&l| l >= 1_200)
    })
    .await;

    let page: SamplesPage = s.json(0, "/v1/samples").await;
    assert_eq!(page.samples.len(), 500, "default limit");
    assert!(page.more);
    assert_eq!(page.oldest_seq, Some(1));
    assert_eq!(page.instance_id, info.instance_id);
    let page: SamplesPage = s.json(0, "/v1/samples?limit=100000").await;
    assert_eq!(page.samples.len(), 1_000, "maximum limit");

    // Page through with after = the last seq: every seq once, in order, each at its time.
    let mut after = 0;
    let mut seen = 0;
    while after < latest {
        let page: SamplesPage = s
            .json(0, &format!("/v1/samples?after={after}&limit=97"))
            .await;
        assert!(!page.samples.is_empty());
        for sample in &page.samples {
            assert_eq!(sample.seq, after + 1, "no gap, no double");
            assert_eq!(
                sample.taken_unix_ms,
                info.started_unix_ms + sample.seq * info.sample_interval_ms
            );
            assert_eq!(sample.apps.len(), 4);
            after = sample.seq;
            seen += 1;
        }
    }
    assert!(seen >= 1_200);

    let a: SamplesPage = s.json(0, "/v1/samples?after=41&limit=1").await;
    let b: SamplesPage = s.json(0, "/v1/samples?after=41&limit=1").await;
    assert_eq!(a.samples, b.samples, "samples are deterministic");
    assert_eq!(a.samples[0].seq, 42);

    let ahead: SamplesPage = s.json(0, "/v1/samples?after=999999999").await;
    assert!(ahead.samples.is_empty() && !ahead.more);

    for bad in ["/v1/samples?after=x", "/v1/samples?since=3"] {
        let response = s.get(0, bad).send().await.expect("a response");
        assert_eq!(
            error_code(response, StatusCode::BAD_REQUEST).await,
            "bad_request",
            "{bad}"
        );
    }
}

fn app_event(e: &SseEvent) -> AppEvent {
    assert_eq!(e.event, "transition");
    let event: AppEvent = serde_json::from_str(&e.data).expect("an AppEvent");
    assert_eq!(e.id, format!("{}:{}", event.instance_id, event.id));
    event
}

#[tokio::test]
async fn events_replay_after_last_event_id_then_go_live() {
    let s = Server::start(config()).await;
    let instance = s.instance(0).await;
    let app = s.sim.app_names(0)[0].clone();

    s.sim
        .set_state(0, &app, AppState::Failed, Some(Exit::Code(3)));
    s.sim.set_state(0, &app, AppState::Running, None);

    // An id of this instance: only what came after it, then live.
    let mut stream = sse(s
        .get(0, "/v1/events")
        .header("last-event-id", format!("{instance}:1")))
    .await;
    let e = app_event(&stream.next().await.expect("event 2"));
    assert_eq!(
        (e.id, e.from, e.to),
        (2, AppState::Failed, AppState::Running)
    );
    assert_eq!(e.app, app);
    assert_eq!(e.restarts.map(|r| r > 0), Some(true));
    s.sim.set_state(0, &app, AppState::Stopped, None);
    let e = app_event(&stream.next().await.expect("event 3, live"));
    assert_eq!((e.id, e.to), (3, AppState::Stopped));

    // An id of another instance: the whole buffer.
    let mut all = sse(s
        .get(0, "/v1/events")
        .header("last-event-id", "old-instance:57"))
    .await;
    for want in 1..=3 {
        let e = app_event(&all.next().await.expect("a replayed event"));
        assert_eq!(e.id, want);
    }
    let first_failed = {
        let mut again = sse(s.get(0, "/v1/events").header("last-event-id", "garbage")).await;
        app_event(&again.next().await.expect("event 1"))
    };
    assert_eq!(first_failed.exit, Some(Exit::Code(3)));

    // No id: live only.
    let mut live = sse(s.get(0, "/v1/events")).await;
    s.sim.set_state(0, &app, AppState::Running, None);
    let e = app_event(&live.next().await.expect("event 4"));
    assert_eq!(
        (e.id, e.from, e.to),
        (4, AppState::Stopped, AppState::Running)
    );
    // Other hosts have their own events.
    assert_eq!(
        s.sim.app_state(1, &s.sim.app_names(1)[0]),
        Some(AppState::Running)
    );
}

#[tokio::test]
async fn actions_change_state_and_emit_events() {
    let s = Server::start(config()).await;
    let app = s.sim.app_names(1)[1].clone();
    let mut events = sse(s.get(1, "/v1/events")).await;

    let act = |action: &str| {
        s.client
            .post(s.url(1, &format!("/v1/apps/{app}/actions/{action}")))
            .bearer_auth(TOKEN)
            .send()
    };
    let outcome: ActionOutcome = act("stop")
        .await
        .expect("stop")
        .json()
        .await
        .expect("outcome");
    assert_eq!(
        (outcome.result.as_str(), outcome.status.state),
        ("done", AppState::Stopped)
    );
    let e = app_event(&events.next().await.expect("stop event"));
    assert_eq!(
        (e.from, e.to, e.kind),
        (AppState::Running, AppState::Stopped, AppKind::Docker)
    );

    let outcome: ActionOutcome = act("start")
        .await
        .expect("start")
        .json()
        .await
        .expect("outcome");
    assert_eq!(outcome.status.state, AppState::Running);
    let e = app_event(&events.next().await.expect("start event"));
    assert_eq!(e.to, AppState::Running);

    let outcome: ActionOutcome = act("restart")
        .await
        .expect("restart")
        .json()
        .await
        .expect("outcome");
    assert_eq!(outcome.status.state, AppState::Running);
    let e = app_event(&events.next().await.expect("restart event"));
    assert!(e.restarted);
    assert_eq!((e.from, e.to), (AppState::Running, AppState::Running));

    let unknown = act("explode").await.expect("a response");
    assert_eq!(
        error_code(unknown, StatusCode::NOT_FOUND).await,
        "unknown_action"
    );
    let missing = s
        .client
        .post(s.url(1, "/v1/apps/nope/actions/stop"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("a response");
    assert_eq!(
        error_code(missing, StatusCode::NOT_FOUND).await,
        "app_not_found"
    );
}

#[tokio::test]
async fn logs_page_back_without_overlap_and_filter() {
    let s = Server::start(config()).await;
    let app = s.sim.app_names(0)[0].clone();
    let path = format!("/v1/apps/{app}/logs");

    let first: LogPage = s.json(0, &format!("{path}?limit=50")).await;
    assert_eq!(first.entries.len(), 50);
    let last_cursor = first.entries[49].cursor.clone();
    let second: LogPage = s
        .json(0, &format!("{path}?limit=50&before={last_cursor}"))
        .await;
    assert_eq!(second.entries.len(), 50);
    let all: Vec<&LogEntry> = first.entries.iter().chain(&second.entries).collect();
    for pair in all.windows(2) {
        assert!(
            pair[0].unix_us > pair[1].unix_us,
            "newest first, no overlap"
        );
        assert_ne!(pair[0].cursor, pair[1].cursor);
    }

    let default: LogPage = s.json(0, &path).await;
    assert_eq!(default.entries.len(), 200, "default limit");

    let errors: LogPage = s
        .json(0, &format!("{path}?priority=warning&limit=20"))
        .await;
    assert!(!errors.entries.is_empty());
    assert!(errors
        .entries
        .iter()
        .all(|e| e.priority.is_some_and(|p| p <= 4)));
    let numeric: LogPage = s.json(0, &format!("{path}?priority=4&limit=20")).await;
    assert_eq!(numeric, errors);

    let grep: LogPage = s.json(0, &format!("{path}?grep=OK&limit=20")).await;
    assert!(grep
        .entries
        .iter()
        .all(|e| e.message.to_lowercase().contains("ok")));

    for (bad, code) in [
        (format!("{path}?priority=loud"), "bad_request"),
        (format!("{path}?before=nonsense"), "bad_cursor"),
        (format!("{path}?color=red"), "bad_request"),
    ] {
        let response = s.get(0, &bad).send().await.expect("a response");
        assert_eq!(
            error_code(response, StatusCode::BAD_REQUEST).await,
            code,
            "{bad}"
        );
    }
    let missing = s
        .get(0, "/v1/apps/nope/logs")
        .send()
        .await
        .expect("a response");
    assert_eq!(
        error_code(missing, StatusCode::NOT_FOUND).await,
        "app_not_found"
    );
}

#[tokio::test]
async fn log_stream_resumes_right_after_a_cursor() {
    let s = Server::start(config()).await;
    let app = s.sim.app_names(0)[1].clone();
    let page: LogPage = s.json(0, &format!("/v1/apps/{app}/logs?limit=5")).await;
    let stream_path = format!("/v1/apps/{app}/logs/stream");

    // Resuming after the 5th newest line: the 4 newer ones, oldest first, none twice.
    let mut resumed = sse(s
        .get(0, &stream_path)
        .header("last-event-id", page.entries[4].cursor.clone()))
    .await;
    for want in page.entries[..4].iter().rev() {
        let e = resumed.next().await.expect("a log event");
        assert_eq!(e.event, "log");
        assert_eq!(&e.id, &want.cursor);
        let entry: LogEntry = serde_json::from_str(&e.data).expect("a LogEntry");
        assert_eq!(&entry, want);
    }

    // Without Last-Event-ID: from the next line to be written on.
    let mut live = sse(s.get(0, &stream_path)).await;
    let e = live.next().await.expect("a new line");
    let entry: LogEntry = serde_json::from_str(&e.data).expect("a LogEntry");
    assert!(entry.unix_us > page.entries[0].unix_us);

    let bad = s
        .get(0, &stream_path)
        .header("last-event-id", "not-a-cursor")
        .send()
        .await
        .expect("a response");
    assert_eq!(error_code(bad, StatusCode::BAD_REQUEST).await, "bad_cursor");
}

#[tokio::test]
async fn env_put_needs_the_current_etag() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let s = Server::start(SimConfig {
        env_dir: Some(dir.path().to_owned()),
        ..config()
    })
    .await;
    let app = s.sim.app_names(0)[0].clone();
    let path = format!("/v1/apps/{app}/env");
    let on_disk = dir.path().join("demo-01").join(format!("{app}.env"));

    let file: EnvFile = s.json(0, &path).await;
    assert_eq!(file.path, on_disk.display().to_string());
    let bytes = std::fs::read(&on_disk).expect("the file exists");
    assert_eq!(file.etag, hex(&Sha256::digest(&bytes)));
    assert_eq!(file.raw.as_bytes(), bytes);
    let keys: Vec<&str> = file.entries.iter().map(|e| e.key.as_str()).collect();
    for key in ["PORT", "DATABASE_URL", "API_KEY"] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    let mode = std::fs::metadata(&on_disk)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let put = |etag: Option<&str>, body: serde_json::Value| {
        let mut request = s.client.put(s.url(0, &path)).bearer_auth(TOKEN).json(&body);
        if let Some(etag) = etag {
            request = request.header("if-match", format!("\"{etag}\""));
        }
        request.send()
    };
    let edit = serde_json::json!({"set": {"LOG_LEVEL": "debug", "GREETING": "hello world"}, "unset": ["API_KEY"]});

    let response = put(None, edit.clone()).await.expect("a response");
    assert_eq!(
        error_code(response, StatusCode::PRECONDITION_REQUIRED).await,
        "if_match_required"
    );
    let response = put(Some("0123"), edit.clone()).await.expect("a response");
    assert_eq!(
        error_code(response, StatusCode::PRECONDITION_FAILED).await,
        "stale_etag"
    );
    let response = put(Some(&file.etag), serde_json::json!({"set": {"1BAD": "x"}}))
        .await
        .expect("a response");
    assert_eq!(
        error_code(response, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_env"
    );
    assert_eq!(
        std::fs::read(&on_disk).expect("unchanged"),
        bytes,
        "refusals write nothing"
    );

    let response = put(Some(&file.etag), edit).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let written: EnvWritten = response.json().await.expect("EnvWritten");
    let text = std::fs::read_to_string(&on_disk).expect("the new file");
    assert_eq!(written.etag, hex(&Sha256::digest(text.as_bytes())));
    assert!(text.contains("\nLOG_LEVEL=debug\n"), "{text}");
    assert!(text.ends_with("GREETING=\"hello world\"\n"), "{text}");
    assert!(!text.contains("API_KEY"));
    assert!(text.starts_with("# "), "other lines stay as they were");
    let mode = std::fs::metadata(&on_disk)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // The old etag is stale now.
    let response = put(Some(&file.etag), serde_json::json!({"set": {"A": "1"}}))
        .await
        .expect("a response");
    assert_eq!(
        error_code(response, StatusCode::PRECONDITION_FAILED).await,
        "stale_etag"
    );
    let again: EnvFile = s.json(0, &path).await;
    assert_eq!(again.etag, written.etag);
    assert!(again
        .entries
        .iter()
        .any(|e| e.key == "GREETING" && e.value == "hello world"));

    // No env_dir: no file.
    let bench = Server::start(config()).await;
    let response = bench.get(0, &path).send().await.expect("a response");
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "no_env_file"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_unreachable_host_answers_503_and_ends_its_streams() {
    let s = Server::start(config()).await;
    let app = s.sim.app_names(1)[0].clone();
    let mut events = sse(s.get(1, "/v1/events")).await;
    let mut logs = sse(s.get(1, &format!("/v1/apps/{app}/logs/stream"))).await;

    s.sim.set_reachable(1, false);
    assert!(events.next().await.is_none(), "the events stream ends");
    // The log stream may send a line written before it noticed; it ends all the same (each
    // `next` fails the test if nothing comes in time).
    while logs.next().await.is_some() {}

    for path in ["/healthz", "/v1/info", "/v1/snapshot"] {
        let response = s.get(1, path).send().await.expect("a response");
        assert_eq!(
            error_code(response, StatusCode::SERVICE_UNAVAILABLE).await,
            "unreachable",
            "{path}"
        );
    }
    let other: Info = s.json(0, "/v1/info").await;
    assert_eq!(other.hostname, "demo-01", "other hosts still answer");

    s.sim.set_reachable(1, true);
    let back: Info = s.json(1, "/v1/info").await;
    assert_eq!(back.hostname, "demo-02");
}

#[tokio::test]
async fn a_bench_sized_fleet() {
    let started = std::time::Instant::now();
    let s = Server::start(SimConfig {
        hosts: 20_000,
        apps_per_host: 8,
        host_prefix: "sim".to_owned(),
        ..config()
    })
    .await;
    let built = started.elapsed();
    let agents = s.sim.agents();
    assert_eq!(agents.len(), 20_000);
    assert_eq!(agents[0].0, "sim-00001");
    assert_eq!(
        agents[19_999],
        ("sim-20000".to_owned(), "/agents/19999".to_owned())
    );
    assert!(built < Duration::from_secs(10), "built in {built:?}");
    let snap: Snapshot = s.json(19_999, "/v1/snapshot").await;
    assert_eq!(snap.host.hostname, "sim-20000");
    assert_eq!(snap.apps.len(), 8);
    // Apps per host are clamped to 1..=8.
    let clamped = Sim::new(SimConfig {
        apps_per_host: 50,
        ..config()
    })
    .expect("the simulator starts");
    assert_eq!(clamped.app_names(0).len(), 8);
    assert!(Sim::new(SimConfig {
        token: String::new(),
        ..config()
    })
    .is_err());
}

#[tokio::test(start_paused = true)]
async fn chaos_keeps_host_0_in_trouble_and_recovers_the_rest() {
    let sim = Sim::new(SimConfig {
        chaos: true,
        hosts: 2,
        ..config()
    })
    .expect("the simulator starts");
    let troubled = sim.troubled_app().expect("host 0 has apps");
    let chaos = sim.spawn_chaos();

    // Virtual time: each sleep advances the paused clock at once.
    let mut seen = Vec::new();
    let mut crashed_elsewhere = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(state) = sim.app_state(0, &troubled) {
            if !seen.contains(&state) {
                seen.push(state);
            }
        }
        for host in 0..2 {
            for app in sim.app_names(host) {
                if (host, &app) != (0, &troubled)
                    && sim.app_state(host, &app) != Some(AppState::Running)
                {
                    crashed_elsewhere = true;
                }
            }
        }
    }
    for state in [AppState::Failed, AppState::CrashLooping, AppState::Running] {
        assert!(seen.contains(&state), "{state} in {seen:?}");
    }
    assert!(crashed_elsewhere, "chaos crashes other apps too");
    chaos.abort();

    let calm = Sim::new(config()).expect("the simulator starts");
    calm.spawn_chaos()
        .await
        .expect("without chaos the task ends at once");
}

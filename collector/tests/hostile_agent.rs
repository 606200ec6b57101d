//! The collector does not trust agents. A hostile agent — a real HTTP server in this test, first
//! passing a simulated host's answers through, then answering huge, endless, redirecting,
//! trickling and malformed responses — against the real collector binary: the collector's memory
//! stays bounded, a redirect (of an agent or of a webhook receiver) is never followed, a trickling
//! proxied page is cut at its deadline, and another, healthy host (`fleetdeck-sim`) keeps its poll
//! schedule and its proxied pages while it happens.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use common::*;
use fleetdeck_sim::{Sim, SimConfig};
use futures_util::{stream, StreamExt};
use serde_json::Value;

/// The design's target: the collector against one hostile agent, at most this much resident.
const PEAK_LIMIT_KIB: u64 = 200 * 1024;

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What the hostile agent shares with its handlers.
#[derive(Clone)]
struct Hostile {
    /// Honest (passing the simulated host 1 through) until this is set.
    evil: Arc<AtomicBool>,
    sim_base: String,
    bystander: String,
    http: reqwest::Client,
}

/// A body that never ends, as fast as it is read.
fn endless(chunk: &'static [u8]) -> Body {
    Body::from_stream(stream::repeat(Ok::<_, Infallible>(Bytes::from_static(
        chunk,
    ))))
}

static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];
static XS: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// 64 MiB announced by Content-Length and sent.
fn huge() -> Response {
    let body = Body::from_stream(stream::iter(
        (0..1024).map(|_| Ok::<_, Infallible>(Bytes::from_static(&XS))),
    ));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, (64u64 * 1024 * 1024).into());
    resp
}

/// One byte every 200 ms, forever.
fn trickle() -> Response {
    let bytes = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((Ok::<_, Infallible>(Bytes::from_static(b" ")), ()))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(bytes),
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// An SSE stream: a thousand malformed events, then one event whose line never ends.
fn hostile_events() -> Response {
    let malformed = stream::iter((0..1000).map(|i| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "id: {i}\nevent: transition\ndata: {{not json {i}\n\n"
        )))
    }));
    let endless_line = stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b"event: transition\ndata: "))
    })
    .chain(stream::repeat(Ok(Bytes::from_static(&XS))));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(malformed.chain(endless_line)),
    )
        .into_response()
}

impl Hostile {
    /// Passes a request through to the simulated host 1, as an honest agent would answer it.
    async fn honest(&self, uri: &Uri) -> Response {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let resp = self
            .http
            .get(format!("{}{path}", self.sim_base))
            .bearer_auth(AGENT_TOKEN)
            .send()
            .await
            .expect("the simulator answers");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        let body = resp.bytes().await.expect("simulator body");
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

async fn snapshot_or_samples(State(h): State<Hostile>, uri: Uri) -> Response {
    if h.evil.load(Ordering::SeqCst) {
        (StatusCode::OK, endless(&SPACES)).into_response()
    } else {
        h.honest(&uri).await
    }
}

async fn events(State(h): State<Hostile>) -> Response {
    if h.evil.load(Ordering::SeqCst) {
        hostile_events()
    } else {
        // Honest agents keep the stream open; this one says nothing yet.
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(stream::pending::<Result<Bytes, Infallible>>()),
        )
            .into_response()
    }
}

/// A page, by app name: each name is one way to answer badly.
async fn page(State(h): State<Hostile>, Path(app): Path<String>) -> Response {
    match app.as_str() {
        "huge" => huge(),
        "endless" => (StatusCode::OK, endless(&XS)).into_response(),
        "failing" => (StatusCode::INTERNAL_SERVER_ERROR, endless(&XS)).into_response(),
        "trickle" => trickle(),
        "redirect" => redirect(&format!("{}/steal", h.bystander)),
        _ => (StatusCode::NOT_FOUND, "no such app").into_response(),
    }
}

async fn log_stream() -> Response {
    let body = stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b"data: ")) })
        .chain(stream::repeat(Ok(Bytes::from_static(&XS))));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Reads a response to its end (or `limit`), returning how many bytes came and whether it ended.
async fn drain(resp: reqwest::Response, limit: Duration) -> (usize, bool) {
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + limit;
    let mut n = 0;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => n += chunk.len(),
            Ok(Some(Err(_)) | None) => return (n, true),
            Err(_) => return (n, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_agent_costs_bounded_memory_and_never_affects_another_host() {
    // The bystander: any request reaching it is a followed redirect.
    let bystander_hits = Arc::new(AtomicUsize::new(0));
    let hits = bystander_hits.clone();
    let bystander = serve(Router::new().fallback(any(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            "stolen"
        }
    })))
    .await;

    // Two simulated hosts: `sim` stays healthy, the other is behind the hostile agent.
    let sim = Sim::new(SimConfig {
        hosts: 2,
        apps_per_host: 2,
        sample_interval: Duration::from_millis(200),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .expect("the simulator");
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let sim_addr = sim_listener.local_addr().expect("simulator address");
    let server = sim.clone();
    tokio::spawn(async move {
        let _ = server.serve(sim_listener, std::future::pending()).await;
    });
    let healthy_app = sim.app_names(0)[0].clone();

    let hostile = Hostile {
        evil: Arc::default(),
        sim_base: format!("http://{sim_addr}/agents/1"),
        bystander: format!("http://{bystander}"),
        http: reqwest::Client::new(),
    };
    let evil = hostile.evil.clone();
    let hostile_addr = serve(
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/snapshot", get(snapshot_or_samples))
            .route("/v1/samples", get(snapshot_or_samples))
            .route("/v1/events", get(events))
            .route("/v1/apps/{app}/logs", get(page))
            .route("/v1/apps/{app}/env", get(page))
            .route("/v1/apps/{app}/logs/stream", get(log_stream))
            // The webhook receiver is hostile too: it redirects every alert to the bystander.
            .route(
                "/hook",
                any({
                    let to = format!("http://{bystander}/hook");
                    move || async move { redirect(&to) }
                }),
            )
            .with_state(hostile),
    )
    .await;

    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    work.secret("evil.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "down_after = 2\n[alerts]\ngrace = \"0s\"\nretry_attempts = 1\n\
             [[webhooks]]\nurl = \"http://{hostile_addr}/hook\"\nformat = \"json\"\n\
             [[agents]]\nname = \"sim\"\nurl = \"http://{sim_addr}/agents/0\"\ntoken_file = \"sim.token\"\n\
             [[agents]]\nname = \"evil\"\nurl = \"http://{hostile_addr}\"\ntoken_file = \"evil.token\"\n"
        ),
    );
    let mut collector = start_collector(&config);
    let pid = collector.pid();
    // A collector that reads without bounds must fail this test, not exhaust the machine running
    // it: its address space is capped far above the target (allocations past it abort it).
    run(
        "prlimit",
        &["--pid", &pid.to_string(), &format!("--as={}", 4u64 << 30)],
    );
    let viewer = Api::new(&collector, &create_key(&config, "viewer", "viewer"));
    let operator = Api::new(&collector, &create_key(&config, "ops", "operator"));

    // Both hosts up while the agent is honest.
    for host in ["sim", "evil"] {
        wait_for(&format!("{host} up"), Duration::from_secs(20), || async {
            let v = viewer.json(&format!("/v1/hosts/{host}")).await;
            (v["status"] == "up").then_some(())
        })
        .await;
    }
    let (rss_before, hwm_before) = memory_kib(pid);
    eprintln!("collector before the attack: VmRSS {rss_before} KiB, VmHWM {hwm_before} KiB");

    // The healthy host's schedule and pages are watched through the whole attack.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        let viewer = viewer.clone();
        let app = healthy_app.clone();
        tokio::spawn(async move {
            let (mut last_seen, mut changed_at) = (0u64, Instant::now());
            let (mut worst_gap, mut worst_page, mut pages) =
                (Duration::ZERO, Duration::ZERO, 0usize);
            while watching.load(Ordering::SeqCst) {
                let host = viewer.json("/v1/hosts/sim").await;
                let seen = host["last_seen_unix_ms"].as_u64().unwrap_or(0);
                if seen != last_seen {
                    if last_seen != 0 {
                        worst_gap = worst_gap.max(changed_at.elapsed());
                    }
                    (last_seen, changed_at) = (seen, Instant::now());
                }
                let asked = Instant::now();
                let resp = viewer
                    .get(&format!("/v1/hosts/sim/apps/{app}/logs?limit=5"))
                    .await;
                assert_eq!(resp.status(), 200, "the healthy host's log page");
                worst_page = worst_page.max(asked.elapsed());
                pages += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            worst_gap = worst_gap.max(changed_at.elapsed());
            (worst_gap, worst_page, pages)
        })
    };

    // The attack: polls and the event stream meet endless and malformed answers, and every
    // proxied route a bad answer, several times at once.
    evil.store(true, Ordering::SeqCst);
    let attack_started = Instant::now();
    let trickled = {
        let viewer = viewer.clone();
        tokio::spawn(async move {
            let asked = Instant::now();
            let resp = viewer.get("/v1/hosts/evil/apps/trickle/logs").await;
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body, asked.elapsed())
        })
    };
    for round in 0..3 {
        let mut answers = Vec::new();
        for (api, path) in [
            (&viewer, "/v1/hosts/evil/apps/huge/logs"),
            (&viewer, "/v1/hosts/evil/apps/endless/logs"),
            (&viewer, "/v1/hosts/evil/apps/failing/logs"),
            (&viewer, "/v1/hosts/evil/apps/redirect/logs"),
            (&operator, "/v1/hosts/evil/apps/endless/env"),
            (&operator, "/v1/hosts/evil/apps/huge/env"),
        ] {
            let api = api.clone();
            answers.push(tokio::spawn(async move {
                let resp = api.get(path).await;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                (path, status, body)
            }));
        }
        let follow = viewer.get("/v1/hosts/evil/apps/any/logs/stream").await;
        assert_eq!(follow.status(), 200);
        let (streamed, ended) = drain(follow, Duration::from_secs(20)).await;
        assert!(
            ended,
            "round {round}: a follow whose event never ends was not ended"
        );
        assert!(
            streamed <= 2 * 1024 * 1024,
            "round {round}: {streamed} bytes of one event passed on"
        );
        for answer in answers {
            let (path, status, body) = answer.await.expect("request task");
            assert_eq!(status, 502, "round {round}: {path}: {body}");
            assert_eq!(body["error"]["code"], "agent_bad_answer", "{path}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if path.contains("redirect") {
                assert!(message.contains("never follows"), "{message}");
            } else {
                assert!(message.contains("16 MiB"), "{path}: {message}");
            }
        }
    }

    // The polls of the hostile host fail (the host goes down) and its alert goes to the
    // webhook, whose redirect is not followed either.
    wait_for("evil down", Duration::from_secs(20), || async {
        let v = viewer.json("/v1/hosts/evil").await;
        (v["status"] == "down").then_some(())
    })
    .await;
    let delivery: (Option<i64>, Option<String>) =
        wait_for("the alert's delivery", Duration::from_secs(30), || async {
            db(&work)
                .run(|c| {
                    c.query_row(
                        "SELECT d.status, d.error FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
                         WHERE a.host = 'evil' AND a.app IS NULL AND a.kind = 'problem'",
                        fleetdeck_collector::params![],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                })
                .ok()
        })
        .await;
    assert_eq!(delivery.0, Some(302), "{delivery:?}");

    // A trickling page is cut at the proxy's deadline (30 s), however long the agent trickles.
    let (status, body, took) = trickled.await.expect("trickle task");
    eprintln!("trickling page answered {status} after {took:?}");
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "agent_unreachable", "{body}");
    assert!(took < Duration::from_secs(40), "{took:?}");

    watching.store(false, Ordering::SeqCst);
    let (worst_gap, worst_page, pages) = watcher.await.expect("watcher");
    let (rss_after, hwm_after) = memory_kib(pid);
    eprintln!(
        "attack of {:?}: collector VmRSS {rss_after} KiB, VmHWM {hwm_after} KiB (before: {rss_before} / {hwm_before}); \
         healthy host: longest time without a poll {worst_gap:?}, slowest proxied page {worst_page:?} of {pages}",
        attack_started.elapsed()
    );
    assert_eq!(
        bystander_hits.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
    assert!(
        hwm_after <= PEAK_LIMIT_KIB,
        "the collector peaked at {hwm_after} KiB against one hostile agent (target {PEAK_LIMIT_KIB} KiB)"
    );
    assert!(
        worst_gap <= Duration::from_secs(4),
        "the healthy host went {worst_gap:?} without a poll (every 1 s)"
    );
    assert!(
        worst_page <= Duration::from_secs(2),
        "a healthy page took {worst_page:?}"
    );
    let health = reqwest::get(collector.url("/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    collector.stop();
}

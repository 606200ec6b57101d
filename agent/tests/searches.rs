//! Log searches as an attacker sends them, on the real agent: patterns with a huge automaton or
//! past the length bound are refused before they run, searches never hold up the agent's other
//! work (`/healthz` keeps answering), at most two run at once (a third gets 429 with
//! Retry-After), and a journald search that would burn CPU for minutes is stopped at its
//! deadline, its journalctl gone.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fleetdeck_proto::LogPage;

/// What a task needs to search an agent (the agent itself stays with the test).
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn of(agent: &RunningAgent) -> Self {
        Self {
            client: agent.client.clone(),
            base: agent.url(""),
        }
    }

    fn request(&self, app: &str, grep: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!(
                "{}/v1/apps/{app}/logs?limit=200&grep={}",
                self.base,
                urlencode(grep)
            ))
            .bearer_auth(TOKEN)
    }

    async fn search(&self, app: &str, grep: &str) -> reqwest::Response {
        self.request(app, grep).send().await.expect("request")
    }

    /// The search asked for one entry a line (NDJSON).
    fn streamed(&self, app: &str, grep: &str) -> reqwest::RequestBuilder {
        self.request(app, grep)
            .header("accept", "application/x-ndjson")
    }

    /// The search's page, which must be a page.
    async fn page(&self, app: &str, grep: &str) -> LogPage {
        self.search(app, grep).await.json().await.expect("LogPage")
    }
}

async fn error_code(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("JSON error");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
        body["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

/// Polls `/healthz` every 20 ms until `stop`, returning the slowest answer.
fn watch_health(agent: &RunningAgent, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = agent.url("/healthz");
    tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let resp = client.get(&url).send().await.expect("healthz answers");
            assert_eq!(resp.status(), 200);
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn costly_container_searches_are_refused_and_never_stall_the_agent() {
    require_testbed();
    let c = Container::run(
        "search",
        &[],
        &[
            "sh",
            "-c",
            "seq 1 16000 | sed 's/$/ the quick brown fox jumps over the lazy dog/'; sleep 100000",
        ],
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("noisy", &c.name)));
    wait_for("all 16,000 lines", Duration::from_secs(20), || async {
        let page: LogPage = serde_json::from_value(
            agent
                .get_json("/v1/apps/noisy/logs?limit=1&grep=%5E1%20the")
                .await,
        )
        .expect("LogPage");
        (page.entries.len() == 1).then_some(())
    })
    .await;

    // Over the bounds: refused before anything runs, with a reason.
    for (pattern, code, says) in [
        (r"\w{1000}{1000}", "grep_too_costly", "too costly"),
        (r"[\p{L}\p{N}]{5000}", "grep_too_costly", "too costly"),
        (&*"a".repeat(600), "grep_too_costly", "at most 512"),
        ("(unclosed", "bad_request", "not a regular expression"),
    ] {
        let (status, got, message) =
            error_code(Api::of(&agent).search("noisy", pattern).await).await;
        assert_eq!((status, got.as_str()), (400, code), "{pattern}: {message}");
        assert!(message.contains(says), "{pattern}: {message}");
    }

    // Searches that scan everything, two at a time for a while, while /healthz is watched.
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(&agent, stop.clone());
    let mut searchers = Vec::new();
    for pattern in [
        r"fox\s+jumps\s+over\s+the\s+lazy\s+cat",
        r"(?:dog|cat)\d{3,}$",
    ] {
        let (api, stop) = (Api::of(&agent), stop.clone());
        searchers.push(tokio::spawn(async move {
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let resp = api.search("noisy", pattern).await;
                let status = resp.status().as_u16();
                assert!(status == 200 || status == 429, "{pattern}: {status}");
                if status == 200 {
                    let page: LogPage = resp.json().await.expect("LogPage");
                    assert!(page.entries.is_empty(), "{pattern} matches nothing");
                    done += 1;
                }
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_secs(8)).await; // the length of the attack, not a wait
    stop.store(true, Ordering::Relaxed);
    let mut searches = 0;
    for s in searchers {
        searches += s.await.expect("searcher");
    }
    let worst = health.await.expect("health watcher");
    println!("{searches} full searches of 16,000 lines in 8 s; slowest /healthz {worst:?}");
    assert!(searches >= 2, "the searches ran");
    // Main took over 30 s here; 1 s leaves room for a loaded machine (the figure is recorded in
    // docs/reliability.md).
    assert!(worst < Duration::from_secs(1), "healthz took {worst:?}");

    // A search still finds what is there.
    let page = Api::of(&agent).page("noisy", "^15999 the quick").await;
    assert_eq!(page.entries.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journald_searches_are_bounded_in_number_and_time() {
    require_testbed();
    let unit = TransientUnit::start("search", &[], BACKTRACKING_LINES);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let api = Api::of(&agent);
    wait_for("the unit's lines", Duration::from_secs(20), || async {
        let page: LogPage =
            serde_json::from_value(agent.get_json("/v1/apps/web/logs?limit=1").await)
                .expect("LogPage");
        (page.entries.first().map(|e| e.message.as_str()) == Some("ready")).then_some(())
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(&agent, stop.clone());
    let started = Instant::now();
    let costly: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(
                async move { error_code(api.search("web", BACKTRACKING_GREP).await).await },
            )
        })
        .collect();
    let pid = agent.pid();
    wait_for(
        "two journalctl searches running",
        Duration::from_secs(5),
        || async { (children_running(pid, "journalctl", Some("--grep=")) == 2).then_some(()) },
    )
    .await;

    // A third, of any kind, waits for nobody: 429 with Retry-After.
    let third = api.search("web", "ready").await;
    assert_eq!(third.status(), 429);
    assert_eq!(
        third
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let (_, code, message) = error_code(third).await;
    assert_eq!(code, "too_many_searches", "{message}");

    for c in costly {
        let (status, code, message) = c.await.expect("search");
        assert_eq!(
            (status, code.as_str()),
            (400, "search_too_costly"),
            "{message}"
        );
    }
    let took = started.elapsed();
    wait_for(
        "the journalctl searches gone",
        Duration::from_secs(5),
        || async { (children_running(pid, "journalctl", Some("--grep=")) == 0).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let worst = health.await.expect("health watcher");
    println!("costly journald searches stopped after {took:?}; slowest /healthz {worst:?}");
    assert!(
        took < Duration::from_secs(15),
        "the deadline is 5 s: {took:?}"
    );
    assert!(worst < Duration::from_secs(1), "healthz took {worst:?}");

    // The slots are free again.
    assert_eq!(api.page("web", "^ready$").await.entries.len(), 1);

    // Streamed (NDJSON), the same costly scan sends what it finds first: the newest line
    // matches at once, then the deadline ends the answer with an error line (the JSON page of
    // the same search is only the 400).
    let resp = api
        .streamed("web", &format!("^ready$|{BACKTRACKING_GREP}"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let lines: Vec<serde_json::Value> = resp
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["message"], "ready", "{lines:?}");
    assert_eq!(lines[1]["error"]["code"], "search_too_costly", "{lines:?}");
    let (status, code, _) = error_code(
        api.search("web", &format!("^ready$|{BACKTRACKING_GREP}"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "search_too_costly"));

    // Streamed searches whose clients leave before any match free their slots at once, not at
    // the deadline: a client searching again right away is not refused.
    let leaving: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.streamed("web", BACKTRACKING_GREP).send().await })
        })
        .collect();
    wait_for(
        "two streamed journalctl searches running",
        Duration::from_secs(5),
        || async { (children_running(pid, "journalctl", Some("--grep=")) == 2).then_some(()) },
    )
    .await;
    let left = Instant::now();
    for l in leaving {
        l.abort();
    }
    // The deadline would end them about 5 s after they started; leaving ends them well before.
    wait_for(
        "the searches ended with their clients",
        Duration::from_secs(3),
        || async { (children_running(pid, "journalctl", Some("--grep=")) == 0).then_some(()) },
    )
    .await;
    println!(
        "streamed searches ended {:?} after their clients left",
        left.elapsed()
    );
    assert_eq!(api.page("web", "^ready$").await.entries.len(), 1);
}

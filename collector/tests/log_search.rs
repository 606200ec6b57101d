//! Issue 18 item 2: `GET /v1/logs/search` through the real collector binary, on simulated hosts
//! (`fleetdeck-sim`, real HTTP): every app of the chosen hosts searched, its lines streamed as
//! JSON lines as they come, an unreachable host's apps reported failed while the others answer,
//! the time range kept, and bad requests refused with what was wrong. (The desktop end-to-end
//! test runs the same search on two real agents, journald and a regular expression.)

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use std::time::Duration;

use common::*;
use fleetdeck_proto::{LogSearchEvent, LogTarget};
use fleetdeck_sim::SimConfig;
use sim_bench::LIMIT;

fn sim_agent(name: &str, addr: std::net::SocketAddr, index: usize) -> String {
    format!(
        "[[agents]]\nname = \"{name}\"\nurl = \"http://{addr}/agents/{index}\"\ntoken_file = \"sim.token\"\n"
    )
}

/// The search's events, each line parsed.
async fn search(api: &Api, query: &str) -> Vec<LogSearchEvent> {
    let resp = api.get(&format!("/v1/logs/search?{query}")).await;
    assert_eq!(resp.status(), 200, "{query}");
    assert_eq!(
        resp.headers()["content-type"],
        "application/x-ndjson",
        "{query}"
    );
    let body = resp.text().await.expect("body");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_runs_on_every_chosen_app_and_streams_each_answer() {
    let (sim, addr) = serve_sim(SimConfig {
        hosts: 3,
        apps_per_host: 2,
        sample_interval: Duration::from_millis(500),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "s".to_owned(),
        log_period: Some(Duration::from_millis(20)),
        ..SimConfig::default()
    })
    .await;
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let agents: String = (0..3)
        .map(|i| sim_agent(&format!("s-0{}", i + 1), addr, i))
        .collect();
    let config = collector_config(&work, &format!("poll_interval = \"1s\"\n{agents}"));
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "reader", "viewer"));
    wait_for("every host up with its apps", LIMIT, || async {
        let fleet = api.json("/v1/fleet").await;
        let hosts = fleet["hosts"].as_array()?;
        (hosts.len() == 3
            && hosts
                .iter()
                .all(|h| h["status"] == "up" && h["apps"].as_array().is_some_and(|a| a.len() == 2)))
        .then_some(())
    })
    .await;

    // Every app, the last 10 s, 5 lines each; the third host stops answering first.
    sim.set_reachable(2, false);
    let since = now_ms() - 10_000;
    let events = search(&api, &format!("since={since}&limit=5")).await;
    let Some(LogSearchEvent::Started { targets }) = events.first() else {
        panic!("started first: {events:?}");
    };
    assert_eq!(targets.len(), 6, "{targets:?}");
    let Some(LogSearchEvent::Done {
        searched, failed, ..
    }) = events.last()
    else {
        panic!("done last: {events:?}");
    };
    assert_eq!((*searched, *failed), (4, 2), "{events:?}");
    for event in &events[1..events.len() - 1] {
        match event {
            LogSearchEvent::Result {
                host,
                entries,
                more,
                ..
            } => {
                assert_ne!(host, "s-03");
                assert_eq!(entries.len(), 5, "{host}: the limit");
                assert!(more);
                assert!(entries.windows(2).all(|w| w[0].unix_us >= w[1].unix_us));
                assert!(entries.iter().all(|e| e.unix_us >= since * 1_000));
            }
            LogSearchEvent::Failed {
                host,
                status,
                message,
                ..
            } => {
                assert_eq!(host, "s-03");
                assert_eq!(*status, 503, "{message}");
                assert!(message.contains("unreachable"), "{message}");
            }
            other => panic!("in the middle: {other:?}"),
        }
    }
    sim.set_reachable(2, true);

    // One host, one app, a closed range: only lines written inside it.
    let app = sim.app_names(0)[0].clone();
    let until = now_ms() - 2_000;
    let since = until - 3_000;
    let events = search(
        &api,
        &format!("hosts=s-01&apps={app}&since={since}&until={until}&limit=500"),
    )
    .await;
    assert_eq!(
        events[0],
        LogSearchEvent::Started {
            targets: vec![LogTarget {
                host: "s-01".into(),
                app: app.clone()
            }]
        }
    );
    let LogSearchEvent::Result { entries, .. } = &events[1] else {
        panic!("a result: {events:?}");
    };
    // 20 ms apart over 3 s.
    assert!((140..=151).contains(&entries.len()), "{}", entries.len());
    assert!(entries
        .iter()
        .all(|e| e.unix_us >= since * 1_000 && e.unix_us < until * 1_000));

    // A pattern: the search asks the agent to stream its page (NDJSON); an agent that answers
    // a whole JSON page, as this simulated one does, gives one result with every line.
    let range = format!(
        "hosts=s-01&apps={app}&since={}&until={until}&grep=e",
        until - 8_000
    );
    let events = search(&api, &format!("{range}&limit=50")).await;
    let pages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            LogSearchEvent::Result {
                entries,
                more,
                partial,
                ..
            } => Some((entries.len(), *more, *partial)),
            _ => None,
        })
        .collect();
    assert_eq!(pages, [(50, true, false)], "{events:?}");
    assert!(matches!(
        events.last(),
        Some(LogSearchEvent::Done {
            searched: 1,
            failed: 0,
            ..
        })
    ));

    // Bad requests: what was wrong, nothing run.
    for (query, status, says) in [
        ("limit=0", 400, "limit 0"),
        ("limit=501", 400, "from 1 to 500"),
        ("hosts=nowhere", 404, "nowhere"),
        ("hosts=a%20b", 400, "not a name"),
        ("since=10&until=5", 400, "must be before"),
        ("until=18446744073709551615", 400, "at most"),
        ("priority=loud", 400, "priority"),
        ("colour=red", 400, "colour"),
    ] {
        let resp = api.get(&format!("/v1/logs/search?{query}")).await;
        assert_eq!(resp.status(), status, "{query}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{query}: {body}"
        );
    }
    let long = "x".repeat(513);
    let resp = api.get(&format!("/v1/logs/search?grep={long}")).await;
    assert_eq!(resp.status(), 400);
}

/// On a real agent and journald: a search that matches nothing is one empty result, not a
/// failure; a client that leaves a search while the agent is still scanning ends the agent's
/// journalctl at once, not at the agent's 5 s deadline or the collector's 15 s request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_that_finds_nothing_or_is_left_ends_cleanly_on_a_real_agent() {
    require_testbed();
    let unit = TransientUnit::start("scan", &[], BACKTRACKING_LINES);
    let work = Workdir::new();
    let agent_config = agent_config(&work, "near", "127.0.0.1:0", &unit_app("web", &unit.name));
    let agent = start_agent(&agent_config);
    let config = collector_config(
        &work,
        &format!(
            "poll_interval = \"1s\"\n{}",
            agent_entry("near", agent.addr)
        ),
    );
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "reader", "viewer"));
    wait_for("the app known and its last line written", LIMIT, || async {
        let fleet = api.json("/v1/fleet").await;
        fleet["hosts"][0]["apps"]
            .as_array()
            .filter(|a| a.len() == 1)?;
        let page = api.json("/v1/hosts/near/apps/web/logs?limit=1").await;
        (page["entries"][0]["message"] == "ready").then_some(())
    })
    .await;

    let events = search(&api, "grep=no%20line%20says%20this&limit=5").await;
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            LogSearchEvent::Result { entries, more, .. } => Some((entries.len(), *more)),
            _ => None,
        })
        .collect();
    assert_eq!(results, vec![(0, false)], "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(LogSearchEvent::Done {
                searched: 1,
                failed: 0,
                ..
            })
        ),
        "{events:?}"
    );

    let leaving = {
        let (http, url, key) = (
            api.http.clone(),
            format!(
                "{}/v1/logs/search?grep={}",
                api.base,
                urlencode(BACKTRACKING_GREP)
            ),
            api.key.clone(),
        );
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(key).send().await?;
            resp.text().await
        })
    };
    let scanning = || children_running(agent.pid(), "journalctl", Some("--grep="));
    wait_for("the agent scanning", Duration::from_secs(5), || async {
        (scanning() == 1).then_some(())
    })
    .await;
    leaving.abort();
    // Within the agent's 5 s deadline, which would end the scan anyway.
    wait_for(
        "the scan ended with its client",
        Duration::from_secs(3),
        || async { (scanning() == 0).then_some(()) },
    )
    .await;
}

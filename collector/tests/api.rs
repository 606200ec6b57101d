//! The collector against real agents on the test bed, over real sockets: crash events reach the
//! event stream, a restarted collector backfills without a gap, every route enforces its role,
//! and logs, `.env` and actions are proxied to the agent (the `.env` change lands in the file).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// An agent watching one unit (with an env file and actions allowed) and a collector polling it.
struct Fleet {
    work: Workdir,
    unit: TransientUnit,
    agent: Daemon,
    config: std::path::PathBuf,
    collector: Daemon,
    env_file: std::path::PathBuf,
}

/// `GET /metrics`'s token where a test turns metrics on.
const SCRAPE_TOKEN: &str = "matrix-scrape-token-0123456789";

fn fleet(prefix: &str) -> Fleet {
    fleet_with(prefix, "")
}

/// The same, with `extra` at the top of collector.toml.
fn fleet_with(prefix: &str, extra: &str) -> Fleet {
    require_testbed();
    let unit = TransientUnit::start(
        prefix,
        &[],
        "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.3; done",
    );
    let work = Workdir::new();
    // For `[metrics] token_file = "metrics.token"` in `extra`.
    work.secret("metrics.token", SCRAPE_TOKEN);
    let env_file = work.secret("web.env", "# web\nPORT=8080\nSECRET=old-secret-value\n");
    let agent_config = agent_config(
        &work,
        "near",
        "127.0.0.1:0",
        &format!(
            "[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\nenv_file = \"{}\"\nallow_actions = true\n",
            unit.name,
            env_file.display()
        ),
    );
    let agent = start_agent(&agent_config);
    let config = collector_config(
        &work,
        &format!("{extra}{}", agent_entry("near", agent.addr)),
    );
    let collector = start_collector(&config);
    Fleet {
        work,
        unit,
        agent,
        config,
        collector,
        env_file,
    }
}

async fn wait_app_state(api: &Api, state: &str) {
    wait_for(&format!("web {state}"), Duration::from_secs(20), || async {
        let host = api.json("/v1/hosts/near").await;
        (host["apps"][0]["status"]["state"] == state).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_unit_reaches_the_event_stream() {
    // Polls every minute: only the agent's event stream can bring the crash in time.
    let mut f = fleet_with("kill", "poll_interval = \"60s\"\n");
    let key = create_key(&f.config, "viewer", "viewer");
    let api = Api::new(&f.collector, &key);
    wait_app_state(&api, "running").await;
    wait_for(
        "the collector's subscription to the agent",
        Duration::from_secs(10),
        || {
            let open = f
                .collector
                .logs()
                .iter()
                .any(|l| l.contains("event stream open"));
            async move { open.then_some(()) }
        },
    )
    .await;
    let mut stream = api.sse("/v1/events/stream", None).await;
    let killed = Instant::now();
    run("systemctl", &["--user", "kill", "-s", "KILL", &f.unit.name]);
    let event: Value = stream
        .wait_for("the crash event", Duration::from_secs(10), |ev| {
            let v: Value = serde_json::from_str(&ev.data).ok()?;
            (ev.event.as_deref() == Some("fleet") && v["app"] == "web" && v["to"] == "failed")
                .then_some(v)
        })
        .await;
    // The latency is measured by the crash-to-stream benchmark; here it is only reported.
    eprintln!("crash → collector stream: {:?}", killed.elapsed());
    assert_eq!(event["host"], "near");
    // systemd may pass the unit through `deactivating` (its remaining processes get SIGTERM)
    // before `failed`; the agent reports the state it last saw, so either is the truth.
    assert!(
        event["from"] == "running" || event["from"] == "stopping",
        "the crash comes from the running unit: {event}"
    );
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["exit"], json!({"signal": 9}));
    assert_eq!(
        event["source"], "agent-stream",
        "the stream, not a poll, saw it first"
    );
    // Resuming after the event's id replays nothing older; the log holds it once.
    let id = stream_id(&event);
    let page = api.json("/v1/events?host=near&app=web").await;
    let same: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["to"] == "failed")
        .collect();
    assert_eq!(same.len(), 1, "one transition, whoever saw it: {page}");
    let mut resumed = api
        .sse("/v1/events/stream", Some(&(id - 1).to_string()))
        .await;
    let again = resumed
        .wait_for("the replayed event", Duration::from_secs(5), |ev| {
            ev.id.as_deref().map(str::to_owned)
        })
        .await;
    assert_eq!(again, id.to_string());
}

fn stream_id(event: &Value) -> i64 {
    event["id"].as_i64().expect("event id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_collector_backfills_without_a_gap() {
    let mut f = fleet("restart");
    wait_for("samples stored", Duration::from_secs(20), || async {
        let seqs = stored_seqs(&f.work, "near");
        seqs.first()
            .is_some_and(|(_, s)| s.len() >= 2)
            .then_some(())
    })
    .await;
    f.collector.stop();
    let stopped_at = stored_seqs(&f.work, "near")[0]
        .1
        .last()
        .copied()
        .unwrap_or(0);
    // The agent samples on while no collector runs.
    let http = reqwest::Client::new();
    let agent_latest = wait_for(
        "the agent to sample on",
        Duration::from_secs(20),
        || async {
            agent_latest_seq(&http, &f.agent.url(""))
                .await
                .filter(|l| *l >= stopped_at + 3)
        },
    )
    .await;
    f.collector = start_collector(&f.config);
    let seqs = wait_for("the backfill", Duration::from_secs(20), || async {
        let seqs = stored_seqs(&f.work, "near");
        (seqs.first()?.1.last().copied().unwrap_or(0) >= agent_latest).then_some(seqs)
    })
    .await;
    assert_eq!(seqs.len(), 1, "the same agent instance");
    assert_contiguous(&seqs[0].1, "across a collector restart");
    assert!(seqs[0].1.contains(&(stopped_at + 1)));
    // The history API serves the same samples, raw at a 1 s step, each with its time.
    let api = Api::new(&f.collector, &create_key(&f.config, "viewer", "viewer"));
    let from = humantime::format_rfc3339(std::time::SystemTime::now() - Duration::from_secs(600));
    let metrics = api
        .json(&format!("/v1/hosts/near/metrics?from={from}&step=1s"))
        .await;
    assert_eq!(metrics["resolution"], "raw", "{metrics}");
    let points = metrics["points"].as_array().expect("points");
    assert!(
        points.len() >= seqs[0].1.len(),
        "{} points for {} samples",
        points.len(),
        seqs[0].1.len()
    );
    assert!(points
        .iter()
        .all(|p| p["ts"].is_string() && p["memory_total_bytes"].as_u64() > Some(0)));
    let bad = api.get("/v1/hosts/near/metrics?from=yesterday").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("error body");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("RFC 3339")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_role() {
    let f = fleet_with("roles", "[metrics]\ntoken_file = \"metrics.token\"\n");
    let keys: Vec<(&str, Option<String>)> = vec![
        ("no key", None),
        (
            "bad key",
            Some("fdk_0000000000000000000000000000000000000000000000".into()),
        ),
        ("viewer", Some(create_key(&f.config, "viewer", "viewer"))),
        (
            "operator",
            Some(create_key(&f.config, "operator", "operator")),
        ),
        ("admin", Some(create_key(&f.config, "admin", "admin"))),
    ];
    let admin = Api::new(&f.collector, keys[4].1.as_deref().expect("admin key"));
    wait_app_state(&admin, "running").await;
    // (method, path, the least role that may use it, the status it answers that role); "public"
    // needs no key, "scrape" only the scrape token (no API key). It must cover exactly the routes of the OpenAPI document (checked below), so a
    // new route cannot skip its role.
    let routes: &[(&str, &str, &str, u16)] = &[
        ("GET", "/healthz", "public", 200),
        ("GET", "/metrics", "scrape", 200),
        ("GET", "/v1/openapi.json", "viewer", 200),
        ("GET", "/v1/fleet", "viewer", 200),
        ("GET", "/v1/cluster", "viewer", 200),
        ("GET", "/v1/hosts/near", "viewer", 200),
        ("GET", "/v1/hosts/near/metrics", "viewer", 200),
        ("GET", "/v1/hosts/near/apps/web/uptime", "viewer", 200),
        ("GET", "/v1/hosts/near/apps/web/metrics", "viewer", 200),
        ("GET", "/v1/hosts/near/apps/web/logs?limit=2", "viewer", 200),
        ("GET", "/v1/hosts/near/apps/web/logs/stream", "viewer", 200),
        ("GET", "/v1/logs/search?limit=2", "viewer", 200),
        ("GET", "/v1/events", "viewer", 200),
        ("GET", "/v1/events/stream", "viewer", 200),
        ("GET", "/v1/hosts/near/apps/web/env", "operator", 200),
        (
            "GET",
            "/v1/hosts/near/apps/web/env/backups",
            "operator",
            200,
        ),
        (
            "GET",
            "/v1/hosts/near/apps/web/env/backups/3",
            "operator",
            404,
        ),
        // No If-Match: the agent's 428 comes back through the collector.
        ("PUT", "/v1/hosts/near/apps/web/env", "operator", 428),
        (
            "POST",
            "/v1/hosts/near/apps/web/actions/restart",
            "operator",
            200,
        ),
        ("GET", "/v1/audit", "admin", 200),
        ("GET", "/v1/keys", "admin", 200),
        ("POST", "/v1/keys", "admin", 201),
        ("DELETE", "/v1/keys/nobody", "admin", 404),
        ("GET", "/v1/alerts", "viewer", 200),
        ("POST", "/v1/alerts/999999/ack", "operator", 404),
        ("GET", "/v1/silences", "viewer", 200),
        ("POST", "/v1/silences", "operator", 201),
        ("DELETE", "/v1/silences/999999", "operator", 404),
        ("GET", "/v1/channels", "viewer", 200),
        ("POST", "/v1/channels/nochannel/test", "admin", 404),
    ];
    let doc = admin.json("/v1/openapi.json").await;
    assert_matrix_matches_the_document(&doc, routes);
    // What scripts/api-fuzz.sh found undocumented: the 400 of a bad app name or action on the
    // proxied routes, and the shape of a streamed event (its `data` holds the JSON payload).
    for (method, route) in [
        ("get", "/v1/hosts/{host}/apps/{app}/logs"),
        ("get", "/v1/hosts/{host}/apps/{app}/logs/stream"),
        ("get", "/v1/hosts/{host}/apps/{app}/env"),
        ("put", "/v1/hosts/{host}/apps/{app}/env"),
        ("post", "/v1/hosts/{host}/apps/{app}/actions/{action}"),
    ] {
        assert!(
            doc["paths"][route][method]["responses"]["400"].is_object(),
            "{method} {route}: its 400 is not documented"
        );
    }
    // Bodies over the collector's limits answer 413 in the one error shape: documented.
    for (method, route) in [
        ("put", "/v1/hosts/{host}/apps/{app}/env"),
        ("post", "/v1/keys"),
        ("post", "/v1/silences"),
        ("post", "/v1/alerts/{id}/ack"),
    ] {
        assert!(
            doc["paths"][route][method]["responses"]["413"].is_object(),
            "{method} {route}: its 413 is not documented"
        );
    }
    let event = &doc["paths"]["/v1/events/stream"]["get"]["responses"]["200"]["content"]
        ["text/event-stream"]["schema"];
    assert_eq!(
        event["properties"]["data"]["contentSchema"]["$ref"], "#/components/schemas/FleetEvent",
        "{event}"
    );
    let rank = |r: &str| ["viewer", "operator", "admin"].iter().position(|x| *x == r);
    let http = reqwest::Client::new();
    let mut n = 0;
    for (who, key) in &keys {
        for (method, path, least, ok_status) in routes {
            n += 1;
            let mut req = http.request(method.parse().expect("method"), f.collector.url(path));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            req = match *method {
                "PUT" => req.json(&json!({"set": {"PORT": "8081"}})), // no If-Match: 428 from the agent
                "POST" if path.ends_with("keys") => {
                    req.json(&json!({"name": format!("k{n}"), "role": "viewer"}))
                }
                "POST" if path.ends_with("silences") => req.json(
                    &json!({"hosts": "matrix-*", "duration": "1m", "reason": "the role matrix"}),
                ),
                _ => req,
            };
            // Streams answer their headers at once; the body is dropped unread.
            let status = req.send().await.expect("request").status().as_u16();
            let expected_ok = match (rank(who), rank(least)) {
                (Some(has), Some(needs)) => has >= needs,
                _ => false,
            };
            let want = if *least == "public" {
                *ok_status
            } else if *least == "scrape" || key.is_none() || *who == "bad key" {
                // /metrics opens to its scrape token only, never to an API key.
                401
            } else if expected_ok {
                *ok_status
            } else {
                403
            };
            assert_eq!(status, want, "{who} {method} {path}");
        }
    }
    // The scrape token opens /metrics, and nothing else.
    for (method, path, least, ok_status) in routes {
        let mut req = http.request(method.parse().expect("method"), f.collector.url(path));
        req = req.bearer_auth(SCRAPE_TOKEN);
        let status = req.send().await.expect("request").status().as_u16();
        let want = match *least {
            "scrape" | "public" => *ok_status,
            _ => 401,
        };
        assert_eq!(status, want, "the scrape token: {method} {path}");
    }
    // Refused mutations are audited as denied, with the key's name; keys made at the command line
    // are audited too.
    let audit = admin.json("/v1/audit?limit=1000").await;
    let entries = audit["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["key_name"] == "(command line)" && e["target"] == "key operator"),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["key_name"] == "viewer"
            && e["action"] == "app.restart"
            && e["result"] == "denied"),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["key_name"] == "operator"
            && e["action"] == "app.restart"
            && e["result"].as_str().is_some_and(|r| r.starts_with("ok"))),
        "{audit}"
    );
}

/// Fails unless every (method, path) of the collector's OpenAPI document has exactly one row in
/// `routes` and every row is a documented route, with the document's security where a key is needed.
fn assert_matrix_matches_the_document(doc: &Value, routes: &[(&str, &str, &str, u16)]) {
    let instance_of = |path: &str, template: &str| {
        let path = path.split('?').next().unwrap_or(path);
        let (p, t): (Vec<&str>, Vec<&str>) =
            (path.split('/').collect(), template.split('/').collect());
        p.len() == t.len()
            && p.iter()
                .zip(&t)
                .all(|(p, t)| p == t || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
    };
    let mut documented = Vec::new();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            documented.push((
                method.to_uppercase(),
                template.clone(),
                op["security"].is_array(),
            ));
        }
    }
    assert!(
        documented.len() >= 2,
        "an OpenAPI document without routes: {doc}"
    );
    let mut missing = Vec::new();
    for (method, template, secured) in &documented {
        let rows: Vec<_> = routes
            .iter()
            .filter(|(m, p, _, _)| m == method && instance_of(p, template))
            .collect();
        match rows.as_slice() {
            [] => missing.push(format!("{method} {template}")),
            [(_, path, least, _)] => assert_eq!(
                *secured,
                *least != "public",
                "{method} {path}: the document's security and the matrix disagree"
            ),
            more => panic!("{method} {template} has several rows: {more:?}"),
        }
    }
    assert!(
        missing.is_empty(),
        "documented routes missing from the role matrix: {missing:?}"
    );
    let undocumented: Vec<_> = routes
        .iter()
        .filter(|(m, p, _, _)| {
            !documented
                .iter()
                .any(|(dm, t, _)| dm == m && instance_of(p, t))
        })
        .map(|(m, p, _, _)| format!("{m} {p}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "the role matrix has routes the OpenAPI document lacks: {undocumented:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_logs_and_actions_go_through_the_agent() {
    let mut f = fleet("proxy");
    let operator = Api::new(&f.collector, &create_key(&f.config, "ops", "operator"));
    let admin = Api::new(&f.collector, &create_key(&f.config, "root", "admin"));
    wait_app_state(&operator, "running").await;

    // .env: read, write with If-Match, stale If-Match refused, the file on disk changed.
    let env = operator.json("/v1/hosts/near/apps/web/env").await;
    let etag = env["etag"].as_str().expect("etag").to_owned();
    let put = |if_match: String, value: &'static str| {
        let http = operator.http.clone();
        let url = format!("{}/v1/hosts/near/apps/web/env", operator.base);
        let key = operator.key.clone();
        async move {
            http.put(url)
                .bearer_auth(key)
                .header("If-Match", if_match)
                .json(&json!({"set": {"SECRET": value}}))
                .send()
                .await
                .expect("put")
        }
    };
    secret("new secret #1");
    secret("never written");
    let written = put(etag.clone(), "new secret #1").await;
    assert_eq!(written.status(), 200);
    let text = std::fs::read_to_string(&f.env_file).expect("env file");
    assert!(text.contains("SECRET='new secret #1'"), "{text}");
    assert!(
        text.starts_with("# web\nPORT=8080\n"),
        "other lines kept: {text}"
    );
    let stale = put(etag, "never written").await;
    assert_eq!(stale.status(), 412);
    let body: Value = stale.json().await.expect("error body");
    assert_eq!(body["error"]["code"], "stale_etag");
    assert!(!std::fs::read_to_string(&f.env_file)
        .expect("env")
        .contains("never written"));

    // Logs: a page, and the live stream brings a line written after it opened.
    let page = wait_for("three log lines", Duration::from_secs(10), || async {
        let page = operator
            .json("/v1/hosts/near/apps/web/logs?limit=3&grep=line-")
            .await;
        (page["entries"].as_array()?.len() == 3).then_some(page)
    })
    .await;
    let entries = page["entries"].as_array().expect("entries");
    let newest: u64 = entries[0]["message"]
        .as_str()
        .and_then(|m| m.strip_prefix("line-"))
        .and_then(|n| n.parse().ok())
        .expect("line number");
    // The fleet-wide search with a pattern: the real agent streams its matches (NDJSON) and the
    // collector sends them as they come (`partial`), then the app's last result at the end of
    // the stream. Fewer lines than the limit: a streamed page always ends apart from its lines,
    // so there are two results at least (a whole JSON page would be one).
    let resp = operator.get("/v1/logs/search?grep=line-&limit=500").await;
    assert_eq!(resp.status(), 200);
    let events: Vec<fleetdeck_proto::LogSearchEvent> = resp
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect();
    let mut results = Vec::new();
    let mut found = Vec::new();
    for event in &events {
        if let fleetdeck_proto::LogSearchEvent::Result {
            entries,
            more,
            partial,
            ..
        } = event
        {
            results.push((entries.len(), *more, *partial));
            found.extend(entries.iter().map(|e| e.message.clone()));
        }
    }
    assert!(results.len() >= 2, "streamed: {results:?}");
    assert!(results[0].2 && results[0].0 > 0, "lines first: {results:?}");
    let last = results[results.len() - 1];
    assert!(!last.2 && !last.1, "then the app's end: {results:?}");
    assert!(found.len() >= 3 && found.iter().all(|m| m.starts_with("line-")));
    let numbers: Vec<u64> = found
        .iter()
        .filter_map(|m| m.strip_prefix("line-")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] > w[1]),
        "newest first, each once: {numbers:?}"
    );
    assert!(matches!(
        events.last(),
        Some(fleetdeck_proto::LogSearchEvent::Done {
            searched: 1,
            failed: 0,
            ..
        })
    ));
    let mut follow = operator
        .sse("/v1/hosts/near/apps/web/logs/stream", None)
        .await;
    let later = follow
        .wait_for("a newer line", Duration::from_secs(10), |ev| {
            let v: Value = serde_json::from_str(&ev.data).ok()?;
            let n: u64 = v["message"].as_str()?.strip_prefix("line-")?.parse().ok()?;
            (n > newest).then_some(n)
        })
        .await;
    assert!(later > newest);

    // Actions: a restart through the collector gives the unit a new process.
    let before = f.unit.main_pid();
    let restarted = operator
        .http
        .post(format!(
            "{}/v1/hosts/near/apps/web/actions/restart",
            operator.base
        ))
        .bearer_auth(&operator.key)
        .send()
        .await
        .expect("restart");
    assert_eq!(restarted.status(), 200);
    let outcome: Value = restarted.json().await.expect("outcome");
    assert_eq!(outcome["result"], "done");
    assert_ne!(f.unit.main_pid(), before);

    // The audit names who did what, never a value; neither do the collector's logs.
    let audit = admin.json("/v1/audit").await;
    let text = audit.to_string();
    assert!(text.contains("env.write (set SECRET)"), "{text}");
    assert!(text.contains("app.restart"), "{text}");
    assert!(
        !text.contains("new secret"),
        "a value reached the audit log: {text}"
    );
    f.collector.stop();
    let logs = f.collector.logs().join("\n");
    assert!(
        !logs.contains("new secret") && !logs.contains("old-secret-value"),
        "{logs}"
    );
    assert!(
        !logs.contains(&operator.key) && !logs.contains(AGENT_TOKEN),
        "a key reached the log"
    );
}

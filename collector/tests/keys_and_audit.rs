//! Keys and the audit against the real collector binary and a simulated agent (`fleetdeck-sim`,
//! real HTTP): a deleted key's open streams end within a second; roles are checked before anything
//! from a request is kept, what is kept is bounded, request bodies have a limit (413 in the one
//! error shape) and audit pages are bounded in bytes; every `.env` read is audited, and entries
//! name the key by id as well as by name.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fleetdeck_sim::{Sim, SimConfig};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// One simulated host (`sim`, with `.env` files) and a collector polling it.
struct Bench {
    work: Workdir,
    config: std::path::PathBuf,
    collector: Daemon,
    app: String,
    admin: Api,
    _env_dir: tempfile::TempDir,
}

async fn bench() -> Bench {
    let env_dir = tempfile::tempdir().expect("env dir");
    let sim = Sim::new(SimConfig {
        hosts: 1,
        apps_per_host: 1,
        sample_interval: Duration::from_millis(500),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        env_dir: Some(env_dir.path().to_owned()),
        ..SimConfig::default()
    })
    .expect("the simulator");
    let app = sim.app_names(0)[0].clone();
    // The demo values are secrets for the secrets check.
    for entry in walk(env_dir.path()) {
        let text = std::fs::read_to_string(&entry).expect("env file");
        secret_env(&text);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let addr = listener.local_addr().expect("simulator address");
    tokio::spawn(async move {
        let _ = sim.serve(listener, std::future::pending()).await;
    });
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "[[agents]]\nname = \"sim\"\nurl = \"http://{addr}/agents/0\"\ntoken_file = \"sim.token\"\n"
        ),
    );
    let collector = start_collector(&config);
    let admin = Api::new(&collector, &create_key(&config, "root", "admin"));
    wait_for("sim up", Duration::from_secs(20), || async {
        (admin.json("/v1/hosts/sim").await["status"] == "up").then_some(())
    })
    .await;
    Bench {
        work,
        config,
        collector,
        app,
        admin,
        _env_dir: env_dir,
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Creates a key through the API (admin); the key, recorded as a secret.
async fn new_key(admin: &Api, name: &str, role: &str) -> String {
    let resp = admin
        .http
        .post(format!("{}/v1/keys", admin.base))
        .bearer_auth(&admin.key)
        .json(&json!({"name": name, "role": role}))
        .send()
        .await
        .expect("create key");
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.expect("key");
    let key = created["key"].as_str().expect("key").to_owned();
    secret(&key);
    key
}

async fn key_id(admin: &Api, name: &str) -> i64 {
    let keys = admin.json("/v1/keys").await;
    keys.as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == name)
        .and_then(|k| k["id"].as_i64())
        .unwrap_or_else(|| panic!("no key {name} in {keys}"))
}

async fn delete_key(admin: &Api, name: &str) {
    let resp = admin
        .http
        .delete(format!("{}/v1/keys/{name}", admin.base))
        .bearer_auth(&admin.key)
        .send()
        .await
        .expect("delete key");
    assert_eq!(resp.status(), 204);
}

/// Opens a stream with `key` and waits for its headers (200).
async fn open(api: &Api, path: &str) -> reqwest::Response {
    let resp = api.get(path).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    resp
}

/// When the stream ends, if it does within `limit`.
async fn ends_within(resp: reqwest::Response, limit: Duration) -> Option<Instant> {
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Some(Instant::now()),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_keys_streams_end_within_a_second() {
    let b = bench().await;
    let doomed = Api::new(&b.collector, &new_key(&b.admin, "doomed", "viewer").await);
    let events = open(&doomed, "/v1/events/stream").await;
    let follow = open(
        &doomed,
        &format!("/v1/hosts/sim/apps/{}/logs/stream", b.app),
    )
    .await;
    // Another key's stream lives on.
    let kept = open(&b.admin, "/v1/events/stream").await;

    // The streams are read from before the deletion is sent.
    let watch = |resp, limit| tokio::spawn(ends_within(resp, limit));
    let (events, follow, kept) = (
        watch(events, Duration::from_secs(5)),
        watch(follow, Duration::from_secs(5)),
        watch(kept, Duration::from_secs(2)),
    );
    let deleted = Instant::now();
    delete_key(&b.admin, "doomed").await;
    let answered = deleted.elapsed();
    let (events_end, follow_end, kept_end) = (
        events.await.expect("task"),
        follow.await.expect("task"),
        kept.await.expect("task"),
    );
    let after = |end: Option<Instant>| end.map(|e| e.saturating_duration_since(deleted));
    eprintln!(
        "deleted key (DELETE answered in {answered:?}): its event stream ended {:?} and its log follow {:?} after the DELETE was sent",
        after(events_end),
        after(follow_end)
    );
    for (what, end) in [("event stream", events_end), ("log follow", follow_end)] {
        let end = after(end)
            .unwrap_or_else(|| panic!("the deleted key's {what} is still open after 5 s"));
        assert!(end <= Duration::from_secs(1), "{what} ended after {end:?}");
    }
    assert_eq!(kept_end, None, "another key's stream ended");
    // The deleted key opens nothing any more.
    assert_eq!(doomed.get("/v1/events/stream").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_come_before_the_audit_and_what_it_keeps_is_bounded() {
    let b = bench().await;
    let viewer = Api::new(&b.collector, &create_key(&b.config, "viewer", "viewer"));
    let operator = Api::new(&b.collector, &create_key(&b.config, "ops", "operator"));
    let env = format!("{}/v1/hosts/sim/apps/{}/env", b.admin.base, b.app);
    // Many long key names: close to the 2 MiB limit.
    let many: serde_json::Map<String, Value> = (0..12_000)
        .map(|i| (format!("K{i:0>120}"), json!("v")))
        .collect();
    let many = json!({ "set": many }).to_string();
    assert!(many.len() < 2 * 1024 * 1024, "{}", many.len());
    let long = "a".repeat(8000);

    // Refused requests: 403, and nothing of the body or the path is kept.
    let put = |api: &Api, body: String| {
        api.http
            .put(env.clone())
            .bearer_auth(&api.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(put(&viewer, many.clone()).await.expect("put").status(), 403);
    let refused = [
        (
            "POST",
            format!("/v1/hosts/sim/apps/{}/actions/{long}", b.app),
        ),
        ("POST", format!("/v1/hosts/{long}/apps/web/actions/restart")),
        ("DELETE", format!("/v1/keys/{long}")),
    ];
    for (method, path) in &refused {
        let status = viewer
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", b.admin.base),
            )
            .bearer_auth(&viewer.key)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 403, "{method} {}…", &path[..40]);
    }
    let create = viewer
        .http
        .post(format!("{}/v1/keys", b.admin.base))
        .bearer_auth(&viewer.key)
        .json(&json!({"name": long, "role": "admin"}))
        .send()
        .await
        .expect("create")
        .status();
    assert_eq!(create, 403);

    // Allowed: the update reaches the agent (428: no If-Match), the audit names 16 keys at most.
    assert_eq!(
        put(&operator, many.clone()).await.expect("put").status(),
        428
    );

    // Bodies over the limits: 413 in the one error shape, naming the limit.
    let too_big = put(
        &operator,
        format!("{{\"raw\": \"{}\"}}", "x".repeat(3 << 20)),
    )
    .await
    .expect("put");
    assert_eq!(too_big.status(), 413);
    let err: Value = too_big.json().await.expect("error body");
    assert_eq!(err["error"]["code"], "payload_too_large", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 MiB")),
        "{err}"
    );
    let big_key = b
        .admin
        .http
        .post(format!("{}/v1/keys", b.admin.base))
        .bearer_auth(&b.admin.key)
        .json(&json!({"name": "x".repeat(100_000), "role": "viewer"}))
        .send()
        .await
        .expect("create");
    assert_eq!(big_key.status(), 413);
    let err: Value = big_key.json().await.expect("error body");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("64 KiB")),
        "{err}"
    );

    let audit = b.admin.json("/v1/audit?limit=1000").await;
    let entries = audit["entries"].as_array().expect("entries");
    for e in entries {
        let size = e.to_string().len();
        assert!(
            size <= 3000,
            "an audit entry of {size} bytes: {}…",
            &e.to_string()[..200]
        );
        assert!(
            !e.to_string().contains(&long),
            "a refused request's path or body was kept"
        );
    }
    let denied: Vec<&Value> = entries.iter().filter(|e| e["result"] == "denied").collect();
    let actions: Vec<(&str, &str)> = denied
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for want in [
        ("env.write", format!("sim/{}", b.app)),
        ("app.(not an action)", format!("sim/{}", b.app)),
        ("app.restart", "(not a valid host or app name)".into()),
        ("key.delete", "key (not a valid name)".into()),
        ("key.create", "key".into()),
    ] {
        assert!(
            actions.contains(&(want.0, want.1.as_str())),
            "no denied {want:?} in {actions:?}"
        );
    }
    let write = entries
        .iter()
        .find(|e| e["key_name"] == "ops" && e["result"] == "refused by the agent (428)")
        .unwrap_or_else(|| panic!("the operator's write in {audit}"));
    let action = write["action"].as_str().expect("action");
    assert!(action.ends_with("11984 more keys)"), "{action}");
    assert_eq!(action.matches("set K").count(), 16, "{action}");

    // Audit pages are bounded in bytes: rows as large as an older collector could store
    // (written here straight into its database) come back cut, a page at a time.
    db(&b.work)
        .run(|c| {
            for i in 0..130i64 {
                // Two of a megabyte, the others of 64 KiB: 10 MB in all.
                let size = if i < 2 { 1024 * 1024 } else { 64 * 1024 };
                c.execute(
                    "INSERT INTO audit (ts_ms, key_name, action, target, result) VALUES (?1, 'old', ?2, 't', 'denied')",
                    fleetdeck_collector::params![i, "k".repeat(size)],
                )?;
            }
            Ok(())
        })
        .expect("insert");
    let total: i64 = db(&b.work)
        .run(|c| {
            c.query_row(
                "SELECT count(*) FROM audit",
                fleetdeck_collector::params![],
                |r| r.get(0),
            )
        })
        .expect("count");
    let (mut before, mut seen, mut pages, mut largest) = (None::<i64>, 0, 0, 0);
    loop {
        let path = match before {
            Some(id) => format!("/v1/audit?limit=1000&before={id}"),
            None => "/v1/audit?limit=1000".to_owned(),
        };
        let text = b.admin.get(&path).await.text().await.expect("page");
        largest = largest.max(text.len());
        assert!(
            text.len() <= 300 * 1024,
            "an audit page of {} bytes",
            text.len()
        );
        let page: Value = serde_json::from_str(&text).expect("page json");
        seen += page["entries"].as_array().expect("entries").len();
        pages += 1;
        match page["next_before"].as_i64() {
            Some(id) => before = Some(id),
            None => break,
        }
    }
    eprintln!(
        "{total} audit entries (10 MB stored) read in {pages} pages, the largest {largest} bytes"
    );
    assert!(pages >= 2, "{pages} page(s)");
    assert_eq!(seen as i64, total, "every entry on exactly one page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_reads_are_audited_by_key_id_and_name() {
    let b = bench().await;
    let viewer = Api::new(&b.collector, &create_key(&b.config, "viewer", "viewer"));
    let path = format!("/v1/hosts/sim/apps/{}/env", b.app);
    let first = Api::new(&b.collector, &new_key(&b.admin, "ops", "operator").await);
    let first_id = key_id(&b.admin, "ops").await;
    let env = first.json(&path).await;
    assert_eq!(viewer.get(&path).await.status(), 403);
    // The name is reused by a new key: the audit tells them apart by id.
    delete_key(&b.admin, "ops").await;
    let second = Api::new(&b.collector, &new_key(&b.admin, "ops", "operator").await);
    let second_id = key_id(&b.admin, "ops").await;
    assert_ne!(first_id, second_id);
    second.json(&path).await;

    let audit = b.admin.json("/v1/audit").await;
    let reads: Vec<(Option<i64>, &str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "env.read")
        .map(|e| {
            assert_eq!(e["target"], format!("sim/{}", b.app), "{e}");
            (
                e["key_id"].as_i64(),
                e["key_name"].as_str().unwrap_or(""),
                e["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let viewer_id = key_id(&b.admin, "viewer").await;
    assert_eq!(
        reads,
        vec![
            (Some(second_id), "ops", "ok (200)"),
            (Some(viewer_id), "viewer", "denied"),
            (Some(first_id), "ops", "ok (200)"),
        ],
        "{audit}"
    );
    // Never a value.
    let text = audit.to_string();
    for entry in env["entries"].as_array().expect("entries") {
        let value = entry["value"].as_str().expect("value");
        if value.len() >= 4 {
            assert!(!text.contains(value), "a value reached the audit");
        }
    }
    // Keys made at the command line are audited without an id.
    let cli = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["key_name"] == "(command line)")
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(cli["key_id"].is_null(), "{cli}");
}

//! The HTTP surface of the real agent: auth on every route but /healthz, the one error shape,
//! info and the OpenAPI document generated from the code.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Every route of the agent, as (method, path as the OpenAPI document writes it, a concrete path,
/// whether it needs the token, the status the token gets). It must list exactly the document's
/// routes (checked below), so a new route cannot skip the auth check.
const ROUTES: &[(&str, &str, &str, bool, u16)] = &[
    ("GET", "/healthz", "/healthz", false, 200),
    ("GET", "/v1/openapi.json", "/v1/openapi.json", true, 200),
    ("GET", "/v1/info", "/v1/info", true, 200),
    ("GET", "/v1/snapshot", "/v1/snapshot", true, 200),
    ("GET", "/v1/apps", "/v1/apps", true, 200),
    ("GET", "/v1/apps/{app}", "/v1/apps/web", true, 200),
    ("GET", "/v1/samples", "/v1/samples", true, 200),
    ("GET", "/v1/events", "/v1/events", true, 200),
    (
        "POST",
        "/v1/apps/{app}/actions/{action}",
        "/v1/apps/web/actions/restart",
        true,
        403, // the app does not allow actions: the token passed, the app's policy refused
    ),
    (
        "GET",
        "/v1/apps/{app}/logs",
        "/v1/apps/web/logs?limit=1",
        true,
        200,
    ),
    (
        "GET",
        "/v1/apps/{app}/logs/stream",
        "/v1/apps/web/logs/stream",
        true,
        200,
    ),
    ("GET", "/v1/apps/{app}/env", "/v1/apps/web/env", true, 200),
    (
        "GET",
        "/v1/apps/{app}/env/backups",
        "/v1/apps/web/env/backups",
        true,
        200,
    ),
    (
        "GET",
        "/v1/apps/{app}/env/backups/{n}",
        "/v1/apps/web/env/backups/1",
        true,
        404,
    ),
    ("PUT", "/v1/apps/{app}/env", "/v1/apps/web/env", true, 428), // no If-Match
];

fn agent() -> (Workdir, RunningAgent) {
    let work = Workdir::new();
    let agent = RunningAgent::start(
        &work.config("[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\n"),
    );
    (work, agent)
}

async fn assert_unauthorized(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status(), 401, "{what}");
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body: Value = resp.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    let text = body.to_string();
    assert!(
        !text.contains(TOKEN),
        "{what}: the answer must reveal nothing"
    );
}

/// An agent whose app has an `.env` file, so every route has something to answer.
fn matrix_agent() -> (Workdir, RunningAgent) {
    let work = Workdir::new();
    let env = work.path("web.env");
    let text = "PORT=8080\nAPI_KEY=matrix-env-secret-0123\n";
    secret_env(text);
    std::fs::write(&env, text).expect("env file");
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
        env.display()
    )));
    (work, agent)
}

/// Whether `path` (its query dropped) is an instance of the document's `template`.
fn instance_of(path: &str, template: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (p, t): (Vec<&str>, Vec<&str>) = (path.split('/').collect(), template.split('/').collect());
    p.len() == t.len()
        && p.iter()
            .zip(&t)
            .all(|(p, t)| p == t || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

#[tokio::test]
async fn the_auth_matrix_covers_every_documented_route() {
    require_testbed();
    let (_work, agent) = matrix_agent();
    let doc = agent.get_json("/v1/openapi.json").await;
    let mut documented = std::collections::BTreeMap::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            documented.insert(
                (method.to_uppercase(), path.clone()),
                op["security"].is_array(),
            );
        }
    }
    let matrix: std::collections::BTreeMap<(String, String), bool> = ROUTES
        .iter()
        .map(|(m, t, _, auth, _)| ((m.to_string(), t.to_string()), *auth))
        .collect();
    let missing: Vec<_> = documented
        .keys()
        .filter(|k| !matrix.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "documented routes missing from ROUTES: {missing:?}"
    );
    let extra: Vec<_> = matrix
        .keys()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "ROUTES has routes the document lacks: {extra:?}"
    );
    assert_eq!(
        documented, matrix,
        "the document's security and the matrix disagree on which routes need the token"
    );
    for (method, template, path, _, _) in ROUTES {
        assert!(
            instance_of(path, template),
            "{method} {path} is not an instance of {template}"
        );
    }
}

#[tokio::test]
async fn every_route_answers_only_the_token() {
    require_testbed();
    let (_work, agent) = matrix_agent();
    let request = |method: &str, path: &str, auth: Option<String>| {
        let mut req = agent
            .client
            .request(method.parse().expect("method"), agent.url(path));
        if method == "PUT" {
            req = req.json(&serde_json::json!({"set": {"PORT": "8081"}}));
        }
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        req
    };
    for (method, _, path, needs_token, with_token) in ROUTES {
        let wrong: [(&str, Option<String>); 4] = [
            ("no token", None),
            (
                "a wrong token",
                Some("Bearer wrong-token-0123456789abcdef".into()),
            ),
            (
                "a prefix of the token",
                Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
            ),
            ("the wrong scheme", Some(format!("Basic {TOKEN}"))),
        ];
        for (what, auth) in wrong {
            // Streams answer their headers at once; their bodies are dropped unread.
            let resp = request(method, path, auth).send().await.expect("request");
            let what = format!("{method} {path} with {what}");
            if *needs_token {
                assert_unauthorized(resp, &what).await;
            } else {
                assert_eq!(resp.status(), 200, "{what}");
            }
        }
        let resp = request(method, path, Some(format!("Bearer {TOKEN}")))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), *with_token, "{method} {path} with the token");
    }
    let health = agent
        .client
        .get(agent.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn unknown_app_and_route_get_the_error_shape() {
    let (_work, agent) = agent();
    let resp = agent.get("/v1/apps/nope").await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "app_not_found");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("nope"));

    let resp = agent.get("/v1/nothing").await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");

    // Paths cannot smuggle anything: an encoded slash is one segment that names no app.
    assert_eq!(agent.get("/v1/apps/..%2F..%2Fetc").await.status(), 404);
}

#[tokio::test]
async fn info_names_this_instance() {
    let (_work, first) = agent();
    let info: fleetdeck_proto::Info =
        serde_json::from_value(first.get_json("/v1/info").await).expect("info");
    assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.wire_version, fleetdeck_proto::WIRE_VERSION);
    assert_eq!(
        info.boot_id,
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .expect("id")
            .trim()
    );
    assert!(info.capabilities.contains(&"systemd".to_owned()));
    assert!(
        !info.capabilities.contains(&"docker".to_owned()),
        "no container app configured"
    );
    let (_work2, second) = agent();
    let other: fleetdeck_proto::Info =
        serde_json::from_value(second.get_json("/v1/info").await).expect("info");
    assert_ne!(
        info.instance_id, other.instance_id,
        "a new instance id at each start"
    );
}

#[tokio::test]
async fn openapi_document_describes_the_routes() {
    let (_work, agent) = agent();
    let doc = agent.get_json("/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for route in [
        "/healthz",
        "/v1/info",
        "/v1/snapshot",
        "/v1/apps",
        "/v1/apps/{app}",
        "/v1/openapi.json",
        "/v1/samples",
        "/v1/events",
        "/v1/apps/{app}/actions/{action}",
        "/v1/apps/{app}/logs",
        "/v1/apps/{app}/logs/stream",
        "/v1/apps/{app}/env",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        doc["paths"]["/healthz"]["get"]["security"].is_null(),
        "healthz needs no auth"
    );
    assert!(doc["paths"]["/v1/snapshot"]["get"]["security"].is_array());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for schema in [
        "Snapshot",
        "AppStatus",
        "AppState",
        "HostMetrics",
        "ErrorBody",
        "Info",
    ] {
        assert!(schemas.contains_key(schema), "{schema} schema missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // A stream's schema describes each event, its `data` holding the JSON of the payload (found
    // by scripts/api-fuzz.sh: the document said each event was the payload itself).
    for (route, payload) in [
        ("/v1/events", "AppEvent"),
        ("/v1/apps/{app}/logs/stream", "LogEntry"),
    ] {
        let event = &doc["paths"][route]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"];
        assert_eq!(
            event["required"],
            serde_json::json!(["event", "id", "data"]),
            "{route}: {event}"
        );
        assert_eq!(
            event["properties"]["data"]["contentMediaType"],
            "application/json"
        );
        assert_eq!(
            event["properties"]["data"]["contentSchema"]["$ref"],
            format!("#/components/schemas/{payload}"),
            "{route}: {event}"
        );
        assert!(schemas.contains_key(payload), "{payload} schema missing");
    }
    assert!(
        doc["paths"]["/v1/apps/{app}/logs/stream"]["get"]["responses"]["502"].is_object(),
        "a failing journald or Docker (502) is documented"
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read_whole() {
    let (work, agent) = matrix_agent();
    let before = std::fs::read(work.path("web.env")).expect("env file");
    let etag = agent.get_json("/v1/apps/web/env").await["etag"]
        .as_str()
        .expect("etag")
        .to_owned();
    // Over the 4 MiB limit: with a Content-Length and chunked, refused once the limit is passed.
    let over = 4 * 1024 * 1024 + 1;
    let head = |framing: &str| {
        format!(
            "PUT /v1/apps/web/env HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
             if-match: {etag}\r\ncontent-type: application/json\r\n{framing}\r\n\r\n"
        )
    };
    // Each sends just past the limit and waits: the agent answers without the rest.
    let mut announced = head("content-length: 8388608").into_bytes();
    announced.extend(std::iter::repeat_n(b'A', over));
    let mut chunked = head("transfer-encoding: chunked").into_bytes();
    chunked.extend_from_slice(format!("{over:x}\r\n").as_bytes());
    chunked.extend(std::iter::repeat_n(b'A', over));
    chunked.extend_from_slice(b"\r\n");
    for (what, request) in [("content-length", announced), ("chunked", chunked)] {
        let (status, body) = raw_exchange(agent.addr, &request).await;
        assert_eq!(status, 413, "{what}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["error"]["code"], "payload_too_large", "{what}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4096 KiB")));
    }
    assert_eq!(
        std::fs::read(work.path("web.env")).expect("env file"),
        before,
        "nothing written"
    );
    assert_eq!(agent.get("/healthz").await.status(), 200);
}

/// Sends `request` as it is and reads the answer: its status and body.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

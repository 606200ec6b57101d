//! The HTTP surface of the real agent: auth on every route but /healthz, the one error shape,
//! info and the OpenAPI document generated from the code.

mod common;

use common::*;
use serde_json::Value;

const AUTHED_ROUTES: &[&str] = &[
    "/v1/info",
    "/v1/snapshot",
    "/v1/apps",
    "/v1/apps/web",
    "/v1/openapi.json",
    "/v1/samples",
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

#[tokio::test]
async fn every_route_but_healthz_needs_the_token() {
    let (_work, agent) = agent();
    let health = agent
        .client
        .get(agent.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok");

    for route in AUTHED_ROUTES {
        let url = agent.url(route);
        assert_unauthorized(
            agent.client.get(&url).send().await.expect("req"),
            &format!("{route} without token"),
        )
        .await;
        assert_unauthorized(
            agent
                .client
                .get(&url)
                .bearer_auth("wrong-token-0123456789abcdef")
                .send()
                .await
                .expect("req"),
            &format!("{route} wrong token"),
        )
        .await;
        assert_unauthorized(
            agent
                .client
                .get(&url)
                .bearer_auth(&TOKEN[..TOKEN.len() - 1])
                .send()
                .await
                .expect("req"),
            &format!("{route} token prefix"),
        )
        .await;
        assert_unauthorized(
            agent
                .client
                .get(&url)
                .header("Authorization", format!("Basic {TOKEN}"))
                .send()
                .await
                .expect("req"),
            &format!("{route} wrong scheme"),
        )
        .await;
        assert_eq!(
            agent.get(route).await.status(),
            200,
            "{route} with the token"
        );
    }
}

#[tokio::test]
async fn streams_and_mutations_need_the_token_too() {
    let (_work, agent) = agent();
    for (method, path) in [
        (reqwest::Method::GET, "/v1/events"),
        (reqwest::Method::GET, "/v1/apps/web/logs"),
        (reqwest::Method::GET, "/v1/apps/web/logs/stream"),
        (reqwest::Method::GET, "/v1/apps/web/env"),
        (reqwest::Method::PUT, "/v1/apps/web/env"),
        (reqwest::Method::POST, "/v1/apps/web/actions/restart"),
    ] {
        let resp = agent
            .client
            .request(method.clone(), agent.url(path))
            .send()
            .await
            .expect("request");
        assert_unauthorized(resp, &format!("{method} {path} without token")).await;
    }
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
}

//! Start, stop and restart through the real agent, on a real systemd unit and podman container.

mod common;

use common::*;
use fleetdeck_proto::{ActionOutcome, AppState};

async fn post(agent: &RunningAgent, path: &str) -> reqwest::Response {
    agent
        .client
        .post(agent.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
}

async fn act(agent: &RunningAgent, app: &str, action: &str) -> ActionOutcome {
    let resp = post(agent, &format!("/v1/apps/{app}/actions/{action}")).await;
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "{action} {app}: {body}");
    serde_json::from_str(&body).expect("ActionOutcome")
}

#[tokio::test]
async fn actions_need_allow_actions() {
    require_testbed();
    let unit = TransientUnit::start("noact", &[], "while true; do sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let pid = unit.main_pid();
    let resp = post(&agent, "/v1/apps/web/actions/stop").await;
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "actions_not_allowed");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("allow_actions = true"));
    assert_eq!(unit.main_pid(), pid, "the unit was not touched");

    let resp = post(&agent, "/v1/apps/web/actions/explode").await;
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_action");
    assert_eq!(
        post(&agent, "/v1/apps/nope/actions/stop").await.status(),
        404
    );
    let unauthenticated = agent
        .client
        .post(agent.url("/v1/apps/web/actions/stop"))
        .send()
        .await
        .expect("req");
    assert_eq!(unauthenticated.status(), 401);
}

/// A unit that does not exist (no unit file, or a transient unit gone once stopped) is a missing
/// target, 404, as a missing container is; not a failing systemd (502). Found by
/// scripts/api-fuzz.sh.
#[tokio::test]
async fn actions_on_a_unit_that_does_not_exist_are_404() {
    require_testbed();
    let unit = format!("{}.service", unique("missing"));
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"{unit}\"\nallow_actions = true\n"
    )));
    for action in ["start", "stop", "restart"] {
        let resp = post(&agent, &format!("/v1/apps/web/actions/{action}")).await;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(status, 404, "{action}: {body}");
        assert_eq!(
            body["error"]["code"], "target_not_found",
            "{action}: {body}"
        );
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(&unit), "{action}: {message}");
    }
}

#[tokio::test]
async fn systemd_unit_stop_start_restart() {
    require_testbed();
    let unit = UnitFile::start("act", "while true; do sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\nallow_actions = true\n",
        unit.name
    )));
    let before = unit.main_pid();

    let out = act(&agent, "web", "restart").await;
    assert_eq!(
        (out.result.as_str(), out.status.state),
        ("done", AppState::Running)
    );
    assert_ne!(unit.main_pid(), before, "a new process");

    let out = act(&agent, "web", "stop").await;
    assert_eq!(
        (out.result.as_str(), out.status.state),
        ("done", AppState::Stopped)
    );
    let state = std::process::Command::new("systemctl")
        .args(["--user", "is-active", &unit.name])
        .output()
        .expect("systemctl");
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "inactive");

    let out = act(&agent, "web", "start").await;
    assert_eq!(
        (out.result.as_str(), out.status.state),
        ("done", AppState::Running)
    );
}

#[tokio::test]
async fn container_stop_start_restart() {
    require_testbed();
    // A process that ends cleanly on SIGTERM, as a well-behaved service does.
    let c = Container::run(
        "act",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.2; done",
        ],
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"cache\"\ndocker_container = \"{}\"\nallow_actions = true\n",
        c.name
    )));
    let started = |o: &ActionOutcome| o.status.docker.as_ref().and_then(|d| d.started_unix_ms);
    let out = act(&agent, "cache", "stop").await;
    assert_eq!(
        (out.result.as_str(), out.status.state),
        ("done", AppState::Stopped)
    );
    let out = act(&agent, "cache", "start").await;
    assert_eq!(out.status.state, AppState::Running);
    let first = started(&out);
    let out = act(&agent, "cache", "restart").await;
    assert_eq!(out.status.state, AppState::Running);
    assert!(
        started(&out) > first,
        "restarted: {:?} then {:?}",
        first,
        started(&out)
    );
}

//! Issue 16 items 2 and 7: the real agent re-reads agent.toml at SIGHUP. Apps added and removed
//! are watched and dropped at once, a second token is accepted during a rotation and the old one
//! refused after it, a broken file keeps the running config; across all of it the instance, the
//! sample ring and an open event stream go on (no event, sample or stream lost).

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_proto::AppState;

const NEXT_TOKEN: &str = "next-token-fedcba9876543210";
const LIMIT: Duration = Duration::from_secs(15);

fn hangup(agent: &RunningAgent) {
    run("kill", &["-HUP", &agent.pid().to_string()]);
}

async fn app_names(agent: &RunningAgent) -> Vec<String> {
    app_names_with(agent, TOKEN).await
}

async fn app_names_with(agent: &RunningAgent, token: &str) -> Vec<String> {
    let apps: Vec<fleetdeck_proto::AppStatus> = agent
        .client
        .get(agent.url("/v1/apps"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v1/apps")
        .json()
        .await
        .expect("apps");
    apps.into_iter().map(|a| a.name).collect()
}

async fn status_with(agent: &RunningAgent, token: &str) -> u16 {
    agent
        .client
        .get(agent.url("/v1/info"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn sighup_takes_up_apps_and_tokens_and_loses_nothing() {
    require_testbed();
    secret(NEXT_TOKEN);
    let first = UnitFile::start("reload-a", "while true; do sleep 1; done");
    // A unit with a file stays loaded when stopped: its stop is a `stopped` event.
    let second = UnitFile::start("reload-b", "while true; do sleep 1; done");
    let work = Workdir::new();
    let head = "sample_interval = \"1s\"\n";
    let config = work.config(&format!("{head}{}", unit_app("first", &first.name)));
    let mut agent = RunningAgent::start(&config);
    agent.wait_state("first", AppState::Running).await;
    let info_before = agent.get_json("/v1/info").await;
    let mut events = agent.sse("/v1/events", None).await;
    let seq_before = wait_for("a sample", LIMIT, || async {
        let page = agent.get_json("/v1/samples?after=0").await;
        page["samples"].as_array()?.last()?["seq"].as_u64()
    })
    .await;

    // An app added, and a second token for a rotation.
    let next = work.path("agent.token.next");
    std::fs::write(&next, NEXT_TOKEN).expect("next token");
    run("chmod", &["600", next.to_str().expect("utf-8")]);
    work.config(&format!(
        "next_token_file = \"agent.token.next\"\n{head}{}{}",
        unit_app("first", &first.name),
        unit_app("second", &second.name)
    ));
    hangup(&agent);
    wait_for("the added app", LIMIT, || async {
        app_names(&agent)
            .await
            .contains(&"second".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(
        agent.wait_state("second", AppState::Running).await.target,
        second.name
    );
    assert_eq!(
        status_with(&agent, TOKEN).await,
        200,
        "the current token still works"
    );
    assert_eq!(
        status_with(&agent, NEXT_TOKEN).await,
        200,
        "the next token works too"
    );
    assert_eq!(status_with(&agent, "some-other-token").await, 401);

    // The added app is watched, not only listed: its stop arrives on the stream opened before
    // the reload, as an event of the same instance.
    run("systemctl", &["--user", "stop", &second.name]);
    let event = events
        .wait_for("the added app's stop", LIMIT, |e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).ok()?;
            (v["app"] == "second" && v["to"] == "stopped").then_some(v)
        })
        .await;
    assert_eq!(event["instance_id"], info_before["instance_id"]);

    // A broken file: the running config stays, and the log says why.
    work.config_raw("listen = [\"127.0.0.1:0\"\ntoken_file = ");
    hangup(&agent);
    let logged = wait_for("the refused reload in the log", LIMIT, || {
        let line = agent
            .logs()
            .iter()
            .find(|l| l.contains("config not reloaded"))
            .cloned();
        async move { line }
    })
    .await;
    assert!(
        logged.contains("agent.toml: line 2") && logged.contains("expected"),
        "the error names the file, the line and what is wrong: {logged}"
    );
    assert_eq!(app_names(&agent).await, ["first", "second"]);
    assert_eq!(status_with(&agent, NEXT_TOKEN).await, 200);

    // The rotation ends: the next token becomes the only one, the app is removed.
    std::fs::copy(&next, work.path("agent.token")).expect("promote the token");
    work.config(&format!("{head}{}", unit_app("first", &first.name)));
    hangup(&agent);
    wait_for("the removed app gone", LIMIT, || async {
        (app_names_with(&agent, NEXT_TOKEN).await == ["first"]).then_some(())
    })
    .await;
    wait_for("the old token refused", LIMIT, || async {
        (status_with(&agent, TOKEN).await == 401).then_some(())
    })
    .await;
    assert_eq!(status_with(&agent, NEXT_TOKEN).await, 200);
    let info_after: serde_json::Value = agent
        .client
        .get(agent.url("/v1/info"))
        .bearer_auth(NEXT_TOKEN)
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(
        info_after["instance_id"], info_before["instance_id"],
        "no restart"
    );
    // The ring went on: samples from before the reloads are still there, and new ones follow
    // them without a gap.
    let seqs: Vec<u64> = wait_for("a sample after the reloads", LIMIT, || async {
        let page: serde_json::Value = agent
            .client
            .get(agent.url("/v1/samples?after=0"))
            .bearer_auth(NEXT_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let seqs: Vec<u64> = page["samples"]
            .as_array()?
            .iter()
            .filter_map(|s| s["seq"].as_u64())
            .collect();
        (seqs.last() > Some(&seq_before)).then_some(seqs)
    })
    .await;
    assert!(seqs.contains(&seq_before), "the sample from before is kept");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap: {seqs:?}"
    );
    assert!(
        agent.wait_exit(Duration::from_millis(10)).is_none(),
        "still running"
    );
}

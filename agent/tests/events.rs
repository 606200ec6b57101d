//! Crash events and the sample ring, on the real test bed: a SIGKILL of a unit's main process or
//! of a container reaches `/v1/events` from systemd's signal or Docker's event (not a poll), a
//! restart of a running unit is an event, `Last-Event-ID` resumes, and samples backfill.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_proto::{AppEvent, AppState, EventSource, Exit, SamplesPage};

/// With samples a minute apart, an event within seconds can only come from a watcher.
const SLOW_SAMPLES: &str = "sample_interval = \"60s\"\n";

fn transition(ev: &SseEvent) -> Option<AppEvent> {
    (ev.event.as_deref() == Some("transition"))
        .then(|| serde_json::from_str(&ev.data).expect("AppEvent JSON"))
}

#[tokio::test]
async fn unit_kill_and_restart_reach_the_event_stream_from_systemd() {
    require_testbed();
    let unit = TransientUnit::start("ev", &[], "while true; do sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(
        &work.config(&format!("{SLOW_SAMPLES}{}", unit_app("web", &unit.name))),
    );
    agent.wait_state("web", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;

    run("kill", &["-KILL", &unit.main_pid().to_string()]);
    let e = stream
        .wait_for("a failed transition", Duration::from_secs(5), |ev| {
            transition(ev).filter(|e| e.to == AppState::Failed)
        })
        .await;
    // From running, or from stopping when the agent read the unit while systemd was still
    // ending the rest of its processes (the loop's `sleep`): both are what systemd went through.
    assert_eq!((e.app.as_str(), e.source), ("web", EventSource::Systemd));
    assert!(
        matches!(e.from, AppState::Running | AppState::Stopping),
        "{e:?}"
    );
    assert_eq!(e.exit, Some(Exit::Signal(9)));
    let first_id = e.sse_id();

    run("systemctl", &["--user", "start", &unit.name]);
    let e = stream
        .wait_for("back to running", Duration::from_secs(5), |ev| {
            transition(ev).filter(|e| e.to == AppState::Running)
        })
        .await;
    assert_eq!(e.from, AppState::Failed);

    // A restart of a running unit is reported: as one event in the same state with `restarted`
    // when the agent reads the unit after the new process is up, or as the states it passed
    // through (stopping, starting) when it reads the unit in between. Either way the last event
    // brings it back to running, from systemd's signals.
    let pid_before = unit.main_pid();
    run("systemctl", &["--user", "restart", &unit.name]);
    let e = stream
        .wait_for(
            "running again after the restart",
            Duration::from_secs(5),
            |ev| transition(ev).filter(|e| e.to == AppState::Running),
        )
        .await;
    assert!(e.restarted || e.from != AppState::Running, "{e:?}");
    assert_eq!(e.source, EventSource::Systemd);
    assert_ne!(unit.main_pid(), pid_before);
    let last_id = e.sse_id();

    // Resuming after the first event replays the later ones, each once, in order.
    let mut resumed = agent.sse("/v1/events", Some(&first_id)).await;
    let mut replayed = Vec::new();
    while let Some(ev) = resumed.next_within(Duration::from_millis(500)).await {
        replayed.push(transition(&ev).expect("transition"));
    }
    let ids: Vec<String> = replayed.iter().map(AppEvent::sse_id).collect();
    assert_eq!(ids.last(), Some(&last_id), "{ids:?}");
    assert!(
        !ids.contains(&first_id),
        "nothing at or before Last-Event-ID: {ids:?}"
    );
    let numbers: Vec<u64> = replayed.iter().map(|e| e.id).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ids: {numbers:?}"
    );

    // Resuming at the latest replays nothing.
    let mut caught_up = agent.sse("/v1/events", Some(&last_id)).await;
    assert!(caught_up
        .next_within(Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn container_kill_reaches_the_event_stream_from_docker() {
    require_testbed();
    let c = Container::run("ev", &[], &["sleep", "100000"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "{SLOW_SAMPLES}{}",
        container_app("cache", &c.name)
    )));
    agent.wait_state("cache", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;
    run("podman", &["kill", "--signal", "KILL", &c.name]);
    let e = stream
        .wait_for("a failed transition", Duration::from_secs(5), |ev| {
            transition(ev).filter(|e| e.to == AppState::Failed)
        })
        .await;
    assert_eq!((e.app.as_str(), e.source), ("cache", EventSource::Docker));
    assert_eq!(e.exit, Some(Exit::Code(137)));
}

#[tokio::test]
async fn samples_accumulate_with_consecutive_seqs() {
    require_testbed();
    let unit = TransientUnit::start("smp", &[], "while true; do sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "sample_interval = \"1s\"\n[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\n",
        unit.name
    )));
    let page: SamplesPage = wait_for("three samples", Duration::from_secs(10), || async {
        let page: SamplesPage =
            serde_json::from_value(agent.get_json("/v1/samples?after=0").await).ok()?;
        (page.samples.len() >= 3).then_some(page)
    })
    .await;
    let seqs: Vec<u64> = page.samples.iter().map(|s| s.seq).collect();
    assert_eq!(seqs[0], 1);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(page
        .samples
        .windows(2)
        .all(|w| w[1].taken_unix_ms > w[0].taken_unix_ms));
    let info: fleetdeck_proto::Info =
        serde_json::from_value(agent.get_json("/v1/info").await).expect("info");
    assert_eq!(page.instance_id, info.instance_id);
    assert_eq!(info.samples_capacity, 24 * 3600);
    let last = page.samples.last().expect("sample");
    assert_eq!(last.apps.len(), 1);
    assert_eq!(last.apps[0].name, "web");
    assert!(last.memory_total_bytes > 0 && last.filesystems.iter().any(|f| f.mount_point == "/"));

    // After the latest: nothing (until the next sample); the snapshot names the latest seq.
    let latest = page.latest_seq.expect("latest");
    let newer: SamplesPage = serde_json::from_value(
        agent
            .get_json(&format!("/v1/samples?after={}", latest + 1000))
            .await,
    )
    .expect("page");
    assert!(newer.samples.is_empty());
    let snap: fleetdeck_proto::Snapshot =
        serde_json::from_value(agent.get_json("/v1/snapshot").await).expect("snap");
    assert!(snap.seq >= latest);

    let bad = agent.get("/v1/samples?after=-1").await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn sigterm_stops_the_agent_even_with_streams_open() {
    let work = Workdir::new();
    let mut agent = RunningAgent::start(&work.config(""));
    let _events = agent.sse("/v1/events", None).await;
    run("kill", &["-TERM", &agent.pid().to_string()]);
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("the agent exits within 10 s of SIGTERM");
    assert!(status.success(), "{status}");
}

//! App status on the real test bed: transient systemd user units and podman containers started,
//! killed and restarted, seen through the real agent binary's `/v1/apps`.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_proto::{AppState, Exit, SourceHealth};

#[tokio::test]
async fn systemd_unit_started_killed_and_restarted() {
    require_testbed();
    let unit = TransientUnit::start("web", &[], "while true; do sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));

    let running = agent.wait_state("web", AppState::Running).await;
    let pid = unit.main_pid();
    let detail = running.systemd.expect("systemd detail");
    assert_eq!(detail.main_pid, Some(pid));
    assert_eq!(
        (detail.active_state.as_str(), detail.sub_state.as_str()),
        ("active", "running")
    );
    assert!(running.since_unix_ms.is_some());
    assert!(
        running.memory_bytes.is_some_and(|m| m > 0),
        "memory of a running unit: {:?}",
        running.memory_bytes
    );
    let first_invocation = detail.invocation_id.expect("invocation id");

    run("kill", &["-KILL", &pid.to_string()]);
    let failed = agent.wait_state("web", AppState::Failed).await;
    assert_eq!(failed.last_exit, Some(Exit::Signal(9)));
    let detail = failed.systemd.expect("systemd detail");
    assert_eq!(detail.result.as_deref(), Some("signal"));
    assert_eq!(detail.main_pid, None);

    run("systemctl", &["--user", "restart", &unit.name]);
    let back = agent.wait_state("web", AppState::Running).await;
    let detail = back.systemd.expect("systemd detail");
    assert_ne!(detail.main_pid, Some(pid), "a new process after restart");
    assert_ne!(
        detail.invocation_id.as_deref(),
        Some(first_invocation.as_str())
    );
}

#[tokio::test]
async fn systemd_unit_that_keeps_failing_is_crash_looping() {
    require_testbed();
    let unit = TransientUnit::start(
        "loop",
        &["Restart=always", "RestartSec=2s", "StartLimitIntervalSec=0"],
        "sleep 0.2; exit 3",
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("loop", &unit.name)));
    let looping = agent.wait_state("loop", AppState::CrashLooping).await;
    assert_eq!(looping.last_exit, Some(Exit::Code(3)));
    assert_eq!(looping.systemd.expect("detail").sub_state, "auto-restart");
    // NRestarts grows with each automatic restart.
    wait_for(
        "a second automatic restart",
        Duration::from_secs(15),
        || async { agent.app("loop").await.restarts.filter(|&n| n >= 2) },
    )
    .await;
}

#[tokio::test]
async fn container_started_killed_and_restarted() {
    require_testbed();
    let c = Container::run("cache", &[], &["sleep", "100000"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("cache", &c.name)));

    let running = agent.wait_state("cache", AppState::Running).await;
    let detail = running.docker.expect("docker detail");
    assert_eq!(detail.state, "running");
    assert_eq!(
        detail.image.as_deref(),
        Some(std::env::var("TESTBED_IMAGE").expect("image").as_str())
    );
    assert!(detail.started_unix_ms.is_some());
    assert!(
        running.memory_bytes.is_some(),
        "container memory from stats"
    );
    assert_eq!(running.last_exit, None);
    // CPU % needs two stats readings: the second request has one.
    let again = agent.app("cache").await;
    assert!(again
        .docker
        .expect("detail")
        .cpu_percent
        .is_some_and(|p| p >= 0.0));

    run("podman", &["kill", "--signal", "KILL", &c.name]);
    let failed = agent.wait_state("cache", AppState::Failed).await;
    assert_eq!(
        failed.last_exit,
        Some(Exit::Code(137)),
        "SIGKILL shows as 128 + 9"
    );
    let detail = failed.docker.expect("docker detail");
    assert_eq!(detail.state, "exited");
    assert!(detail.finished_unix_ms.is_some());
    assert_eq!(failed.since_unix_ms, detail.finished_unix_ms);

    run("podman", &["restart", &c.name]);
    let back = agent.wait_state("cache", AppState::Running).await;
    assert!(back.docker.expect("detail").started_unix_ms > detail.started_unix_ms);
}

#[tokio::test]
async fn container_exiting_cleanly_is_stopped() {
    require_testbed();
    let c = Container::run("oneshot", &[], &["sh", "-c", "exit 0"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&container_app("job", &c.name)));
    let stopped = agent.wait_state("job", AppState::Stopped).await;
    assert_eq!(stopped.last_exit, Some(Exit::Code(0)));
}

#[tokio::test]
async fn missing_unit_and_container_are_reported_not_fatal() {
    require_testbed();
    let c = Container::run("present", &[], &["sleep", "100000"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"ghost-unit\"\nsystemd_unit = \"{}.service\"\n\
         [[apps]]\nname = \"ghost-container\"\ndocker_container = \"{}\"\n\
         [[apps]]\nname = \"present\"\ndocker_container = \"{}\"\n",
        unique("absent"),
        unique("absent"),
        c.name
    )));
    let snap: fleetdeck_proto::Snapshot =
        serde_json::from_value(agent.get_json("/v1/snapshot").await).expect("snapshot");
    let state = |n: &str| snap.apps.iter().find(|a| a.name == n).map(|a| a.state);
    assert_eq!(state("ghost-unit"), Some(AppState::NotFound));
    assert_eq!(state("ghost-container"), Some(AppState::NotFound));
    assert_eq!(state("present"), Some(AppState::Running));
    assert_eq!(snap.sources.systemd, SourceHealth::Up);
    assert_eq!(snap.sources.docker, SourceHealth::Up);
}

#[tokio::test]
async fn unreachable_sources_leave_the_rest_of_the_snapshot() {
    require_testbed();
    let work = Workdir::new();
    let config = work.config(
        "docker_socket = \"unix:///nonexistent/docker.sock\"\n\
         [[apps]]\nname = \"u\"\nsystemd_unit = \"u.service\"\n\
         [[apps]]\nname = \"c\"\ndocker_container = \"c\"\n",
    );
    // A session bus address where nothing listens: D-Bus is down for this agent.
    let agent = RunningAgent::start_with(
        std::process::Command::new(agent_bin())
            .arg("--config")
            .arg(&config)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", work.path("no-bus").display()),
            ),
    );
    let snap: fleetdeck_proto::Snapshot =
        serde_json::from_value(agent.get_json("/v1/snapshot").await).expect("snapshot");
    assert!(
        snap.host.memory.total_bytes > 0,
        "host metrics still answer"
    );
    for app in &snap.apps {
        assert_eq!(app.state, AppState::Unknown, "{}", app.name);
        assert!(app.error.is_some(), "{} says why", app.name);
    }
    let SourceHealth::Down { error } = &snap.sources.systemd else {
        panic!("systemd should be down: {:?}", snap.sources)
    };
    assert!(error.contains("D-Bus"), "{error}");
    let SourceHealth::Down { error } = &snap.sources.docker else {
        panic!("docker should be down: {:?}", snap.sources)
    };
    assert!(error.contains("/nonexistent/docker.sock"), "{error}");
    // The agent keeps serving after the failures.
    assert_eq!(agent.get("/v1/apps").await.status(), 200);
}

#[tokio::test]
async fn container_stopped_on_purpose_is_stopped_even_with_a_signal_exit() {
    require_testbed();
    // sleep as PID 1 ignores SIGTERM: a stop ends it with SIGKILL after the grace, exit 137.
    // The agent's own stop marks it deliberate before the engine reports the exit.
    let c = Container::run("stop", &[], &["sleep", "100000"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"cache\"\ndocker_container = \"{}\"\nallow_actions = true\n",
        c.name
    )));
    agent.wait_state("cache", AppState::Running).await;
    let resp = agent
        .client
        .post(agent.url("/v1/apps/cache/actions/stop"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("stop");
    assert_eq!(resp.status(), 200);
    let stopped = agent.wait_state("cache", AppState::Stopped).await;
    assert_eq!(
        stopped.last_exit,
        Some(Exit::Code(137)),
        "the exit is kept as it was"
    );
    // Started again by someone else, then killed: that is a failure again.
    run("podman", &["start", &c.name]);
    agent.wait_state("cache", AppState::Running).await;
    run("podman", &["kill", "--signal", "KILL", &c.name]);
    agent.wait_state("cache", AppState::Failed).await;
}

//! Crash context, requested changes and `stopped_by_request` on the real test bed: a unit that
//! exits 3 after a distinctive line, a unit whose restart policy heals a crash (the blip), a
//! container killed at its 32 MiB memory limit, and stops through the API and from outside.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_proto::{ActionOutcome, AppEvent, AppState, Exit};

/// With samples a minute apart, every event here comes from a watcher or an action.
const SLOW_SAMPLES: &str = "sample_interval = \"60s\"\n";
/// A transition waits up to 2 s for its lines.
const EVENT_LIMIT: Duration = Duration::from_secs(10);

fn transition(ev: &SseEvent) -> Option<AppEvent> {
    (ev.event.as_deref() == Some("transition"))
        .then(|| serde_json::from_str(&ev.data).expect("AppEvent JSON"))
}

/// A script that waits until `trigger` exists (so the agent has seen it running first).
/// `touch PATH` inside a running container, asked again until podman carries it out: under
/// load `podman exec` now and then fails at once (status 255) and works the next time.
async fn touch_in(container: &str, path: &str) {
    wait_for("podman exec touch", Duration::from_secs(15), || async {
        std::process::Command::new("podman")
            .args(["exec", container, "touch", path])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    })
    .await;
}

fn wait_for_file(trigger: &std::path::Path) -> String {
    format!("while [ ! -e {} ]; do sleep 0.1; done\n", trigger.display())
}

#[tokio::test]
async fn a_failed_unit_carries_its_exit_and_last_line() {
    require_testbed();
    let work = Workdir::new();
    let trigger = work.path("go");
    let line = format!("i14a2 the disk said no {}", unique("line"));
    // The pause after the line keeps the process alive while journald tags it (test bed gotcha 6).
    let unit = TransientUnit::start(
        "i14a2-exit3",
        &[],
        &format!(
            "echo early line\n{}echo '{line}'\nsleep 0.3\nexit 3\n",
            wait_for_file(&trigger)
        ),
    );
    let agent = RunningAgent::start(
        &work.config(&format!("{SLOW_SAMPLES}{}", unit_app("job", &unit.name))),
    );
    agent.wait_state("job", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;
    std::fs::write(&trigger, b"").expect("trigger");
    let e = stream
        .wait_for("a failed transition", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.to == AppState::Failed)
        })
        .await;
    assert!(!e.requested, "{e:?}");
    let crash = e.crash.expect("crash context");
    assert_eq!(crash.exit, Some(Exit::Code(3)), "{crash:?}");
    assert!(!crash.oom_killed);
    assert_eq!(crash.last_line(), Some(line.as_str()), "{crash:?}");
    assert_eq!(
        crash.last_lines.first().map(String::as_str),
        Some("early line")
    );
    assert_eq!(crash.lines_error, None);
}

#[tokio::test]
async fn a_crash_the_restart_policy_healed_still_carries_its_context() {
    blip_carries_its_context("RestartSec=200ms").await;
}

/// Restarted at once: the agent mostly reads the unit when it already runs again, and the exit
/// comes from systemd's change signal sent while it was dead.
#[tokio::test]
async fn a_crash_restarted_at_once_still_carries_its_exit() {
    blip_carries_its_context("RestartSec=0").await;
}

async fn blip_carries_its_context(restart_sec: &str) {
    require_testbed();
    let work = Workdir::new();
    let trigger = work.path("go");
    let mark = work.path("crashed-once");
    let line = format!("i14a2 blip {}", unique("line"));
    let unit = TransientUnit::start(
        "i14a2-blip",
        &["Restart=on-failure", restart_sec],
        &format!(
            "if [ ! -e {mark} ]; then\n{}touch {mark}\necho '{line}'\nsleep 0.3\nexit 7\nfi\nwhile true; do sleep 1; done\n",
            wait_for_file(&trigger),
            mark = mark.display(),
        ),
    );
    let agent = RunningAgent::start(
        &work.config(&format!("{SLOW_SAMPLES}{}", unit_app("web", &unit.name))),
    );
    agent.wait_state("web", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;
    std::fs::write(&trigger, b"").expect("trigger");
    // Seen as running → crash-looping (systemd waiting RestartSec) or, when the agent read the
    // unit only after it was back, as running again (restart count up): both carry the crash.
    let e = stream
        .wait_for("a transition with crash context", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.crash.is_some())
        })
        .await;
    assert!(
        matches!(e.to, AppState::CrashLooping | AppState::Running),
        "{e:?}"
    );
    let crash = e.crash.expect("crash context");
    assert_eq!(crash.last_line(), Some(line.as_str()), "{crash:?}");
    // Whether it was read dead or already back: the dead run's exit.
    assert_eq!(crash.exit, Some(Exit::Code(7)), "to {:?}: {crash:?}", e.to);
    if e.to != AppState::Running {
        stream
            .wait_for("running again", EVENT_LIMIT, |ev| {
                transition(ev).filter(|e| e.to == AppState::Running)
            })
            .await;
    }
}

#[tokio::test]
async fn a_container_at_its_memory_limit_reports_the_limit_and_its_last_line() {
    require_testbed();
    let line = format!("i14a2 allocating {}", unique("line"));
    let script = format!(
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; echo '{line}'; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    );
    let c = Container::run("i14a2-oom", &["--memory", "32m"], &["sh", "-c", &script]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "sample_interval = \"1s\"\n{}",
        container_app("cache", &c.name)
    )));
    agent.wait_state("cache", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;
    touch_in(&c.name, "/tmp/go").await;
    let e = stream
        .wait_for("a failed transition", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.to == AppState::Failed)
        })
        .await;
    let crash = e.crash.expect("crash context");
    // The kernel killed it at the limit (SIGKILL: 128 + 9).
    assert_eq!(crash.exit, Some(Exit::Code(137)), "{crash:?}");
    assert_eq!(
        crash.memory_limit_bytes,
        Some(32 * 1024 * 1024),
        "{crash:?}"
    );
    // Read while it ran (the agent's own reads and 1 s samples): the memory before the end.
    assert!(crash.memory_bytes.is_some_and(|m| m > 0), "{crash:?}");
    assert_eq!(crash.last_line(), Some(line.as_str()), "{crash:?}");
    // The OOM killer ended it. (podman 4.3 with runc on this bed's cgroup v1 reports
    // OOMKilled = false even for this kill: the agent tells it from the SIGKILL and the
    // kernel's OOM-kill count, which moved.)
    assert!(crash.oom_killed, "{crash:?}");
}

#[tokio::test]
async fn a_stop_through_the_api_is_requested_and_one_from_outside_is_not() {
    require_testbed();
    // A unit with a file: a transient one is unloaded (not-found) once stopped cleanly.
    let unit = UnitFile::start("i14a2-req", "while true; do sleep 1; done");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "{SLOW_SAMPLES}{}allow_actions = true\nexpect = \"running\"\n",
        unit_app("web", &unit.name)
    )));
    let status = agent.wait_state("web", AppState::Running).await;
    assert_eq!(status.expect, fleetdeck_proto::Expect::Running);
    let mut stream = agent.sse("/v1/events", None).await;

    let resp = agent
        .client
        .post(agent.url("/v1/apps/web/actions/stop"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let outcome: ActionOutcome = resp.json().await.expect("ActionOutcome");
    assert_eq!(outcome.status.state, AppState::Stopped);
    assert!(outcome.status.stopped_by_request);
    let e = stream
        .wait_for("the requested stop", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.to == AppState::Stopped)
        })
        .await;
    assert!(e.requested && e.crash.is_none(), "{e:?}");
    assert!(agent.app("web").await.stopped_by_request);

    // Started and stopped from outside: not requested, and no longer stopped by request.
    run("systemctl", &["--user", "start", &unit.name]);
    let e = stream
        .wait_for("running again", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.to == AppState::Running)
        })
        .await;
    assert!(!e.requested, "{e:?}");
    assert!(!agent.app("web").await.stopped_by_request);
    run("systemctl", &["--user", "stop", &unit.name]);
    let e = stream
        .wait_for("the stop from outside", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.to == AppState::Stopped)
        })
        .await;
    assert!(!e.requested && e.crash.is_none(), "{e:?}");
    assert!(!agent.app("web").await.stopped_by_request);
}

fn source_event(ev: &SseEvent) -> Option<fleetdeck_proto::SourceEvent> {
    (ev.event.as_deref() == Some("source"))
        .then(|| serde_json::from_str(&ev.data).expect("SourceEvent JSON"))
}

#[tokio::test]
async fn an_engine_that_stops_answering_is_one_source_event_and_its_return_another() {
    require_testbed();
    let work = Workdir::new();
    let socket = work.path("engine.sock");
    let mut engine = OwnEngine::start(&socket).await;
    let agent = RunningAgent::start(&work.config(&format!(
        "{SLOW_SAMPLES}docker_socket = \"unix://{}\"\n{}",
        socket.display(),
        container_app("cache", &unique("i14a2-absent"))
    )));
    // No such container, and the engine says so: the source answers.
    agent.wait_state("cache", AppState::NotFound).await;
    let mut stream = agent.sse("/v1/events", None).await;

    engine.kill();
    let down = stream
        .wait_for("a source-down event", Duration::from_secs(5), |ev| {
            source_event(ev)
        })
        .await;
    assert_eq!(
        (down.source.as_str(), down.up),
        ("docker", false),
        "{down:?}"
    );
    assert!(down.error.is_some(), "{down:?}");
    // Still down when asked again: no second event.
    assert_eq!(agent.app("cache").await.state, AppState::Unknown);

    let _engine = OwnEngine::start(&socket).await;
    let up = stream
        .wait_for("a source-up event", Duration::from_secs(20), |ev| {
            source_event(ev)
        })
        .await;
    assert_eq!(
        (up.source.as_str(), up.up, up.error),
        ("docker", true, None)
    );
    assert_eq!(up.id, down.id + 1, "one down event, then the up event");
}

#[tokio::test]
async fn a_container_the_restart_policy_brought_back_carries_its_crash() {
    require_testbed();
    let line = format!("i14a2 container blip {}", unique("line"));
    // The container's own filesystem survives its restart: /crashed-once marks the second run.
    let script = format!(
        "if [ ! -e /crashed-once ]; then while [ ! -e /tmp/go ]; do sleep 0.1; done; touch /crashed-once; echo '{line}'; exit 5; fi; sleep 100000"
    );
    let c = Container::run(
        "i14a2-blip",
        &["--restart", "on-failure"],
        &["sh", "-c", &script],
    );
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "{SLOW_SAMPLES}{}",
        container_app("cache", &c.name)
    )));
    agent.wait_state("cache", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;
    touch_in(&c.name, "/tmp/go").await;
    // Seen as failed or restarting (then running again), or only as running again when the
    // engine had already restarted it when the agent read it: each carries the crash.
    let e = stream
        .wait_for("a transition with crash context", EVENT_LIMIT, |ev| {
            transition(ev).filter(|e| e.crash.is_some())
        })
        .await;
    assert!(
        matches!(
            e.to,
            AppState::Failed | AppState::CrashLooping | AppState::Running
        ),
        "{e:?}"
    );
    let crash = e.crash.expect("crash context");
    assert_eq!(crash.last_line(), Some(line.as_str()), "{crash:?}");
    // Whether it was read dead or already back (podman then shows exit code 0): the dead
    // run's exit, from the engine's `die` event.
    assert_eq!(crash.exit, Some(Exit::Code(5)), "to {:?}: {crash:?}", e.to);
    agent.wait_state("cache", AppState::Running).await;
}

#[tokio::test]
async fn a_crash_storm_reports_every_crash_promptly() {
    require_testbed();
    const UNITS: usize = 24;
    let work = Workdir::new();
    let trigger = work.path("go");
    let tag = unique("storm");
    let units: Vec<TransientUnit> = (0..UNITS)
        .map(|i| {
            TransientUnit::start(
                "i14a2-storm",
                &[],
                &format!(
                    "{}echo '{tag} {i}'\nsleep 0.3\nexit 3\n",
                    wait_for_file(&trigger)
                ),
            )
        })
        .collect();
    let apps: String = units
        .iter()
        .enumerate()
        .map(|(i, u)| unit_app(&format!("s{i}"), &u.name))
        .collect();
    let agent = RunningAgent::start(&work.config(&format!("{SLOW_SAMPLES}{apps}")));
    for i in 0..UNITS {
        agent.wait_state(&format!("s{i}"), AppState::Running).await;
    }
    let mut stream = agent.sse("/v1/events", None).await;
    std::fs::write(&trigger, b"").expect("trigger");
    // Every crash is reported with its context, each with its own last line or why it has
    // none ("too many crashes at once" past the queue), none held back for long.
    let mut seen = std::collections::HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < UNITS {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ev = stream
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("only {} of {UNITS} crashes reported: {seen:?}", seen.len()));
        if let Some(e) = transition(&ev).filter(|e| e.to == AppState::Failed) {
            let crash = e.crash.clone().expect("crash context");
            let i: usize = e.app[1..].parse().expect("app index");
            let own = format!("{tag} {i}");
            assert!(
                crash.last_line() == Some(own.as_str()) || crash.lines_error.is_some(),
                "{e:?}"
            );
            seen.insert(e.app.clone(), crash);
        }
    }
    let with_lines = seen.values().filter(|c| !c.last_lines.is_empty()).count();
    assert!(
        with_lines >= 4,
        "{with_lines} of {UNITS} crashes have their lines"
    );
}

#[tokio::test]
async fn podmans_stopped_state_is_read_as_an_exit_not_a_source_down() {
    // Podman answers "stopped", a state Docker does not have, for a moment after a container
    // dies: exactly when the agent reads it for the `die` event. Read as Docker's "exited", it is
    // a crash like any other; never the engine "not answering" (bollard cannot read the word).
    require_testbed();
    let c = Container::run("i16-stopped", &[], &["sleep", "100000"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&format!(
        "{SLOW_SAMPLES}{}",
        container_app("cache", &c.name)
    )));
    agent.wait_state("cache", AppState::Running).await;
    let mut stream = agent.sse("/v1/events", None).await;
    let no_source_down = |ev: &SseEvent| {
        if let Some(s) = source_event(ev) {
            assert!(s.up, "the engine was reported down: {s:?}");
        }
    };
    for round in 0..6 {
        run("podman", &["kill", &c.name]);
        // Read at once and again while podman winds the container down.
        for _ in 0..30 {
            let status = agent.app("cache").await;
            assert_ne!(status.state, AppState::Unknown, "round {round}: {status:?}");
        }
        let e = stream
            .wait_for("the crash", EVENT_LIMIT, |ev| {
                no_source_down(ev);
                transition(ev).filter(|e| e.from == AppState::Running)
            })
            .await;
        assert_eq!(e.to, AppState::Failed, "round {round}: {e:?}");
        run("podman", &["start", &c.name]);
        stream
            .wait_for("running again", EVENT_LIMIT, |ev| {
                no_source_down(ev);
                transition(ev).filter(|e| e.to == AppState::Running)
            })
            .await;
    }
}

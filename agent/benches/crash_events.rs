//! Crash → event latency: SIGKILL of a systemd unit's main process (and of a podman container's
//! process), timed until the transition arrives on the agent's `/v1/events` stream. 100 kills each; prints
//! p50/p99 for docs/benchmarks.md. Run with scripts/bench-agent.sh.

mod support;

use std::time::{Duration, Instant};

use fleetdeck_proto::{AppEvent, AppState};
use support::*;

const KILLS: usize = 100;

/// The next status transition on the stream (check and source events are not timed here).
async fn next_event(stream: &mut Sse) -> AppEvent {
    loop {
        let (name, data) = stream
            .next_named(Duration::from_secs(10))
            .await
            .expect("an event within 10 s");
        if name.as_deref() == Some("transition") {
            return serde_json::from_str(&data).expect("AppEvent");
        }
    }
}

/// Kills `KILLS` times with `kill`, each time measuring until an event leaves `running`, then
/// brings the app back with `revive` and waits for the event back to `running`.
async fn measure(stream: &mut Sse, kill: impl Fn(), revive: impl Fn()) -> Vec<f64> {
    let mut ms = Vec::with_capacity(KILLS);
    for _ in 0..KILLS {
        let t0 = Instant::now();
        kill();
        loop {
            let e = next_event(stream).await;
            if e.from == AppState::Running && e.to != AppState::Running {
                ms.push(t0.elapsed().as_secs_f64() * 1e3);
                break;
            }
        }
        revive();
        while next_event(stream).await.to != AppState::Running {}
        // Let the new process finish exec before it is killed again (a kill during start-up is
        // a failed start, not a crash of a running app).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ms.sort_by(f64::total_cmp);
    ms
}

fn main_pid(unit: &str) -> String {
    sh(
        "systemctl",
        &["--user", "show", "-p", "MainPID", "--value", unit],
    )
    .trim()
    .to_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // No start rate limit: the bench starts the unit 100 times in a row.
    let apps = BenchApps::start(
        "crash",
        &["StartLimitIntervalSec=0"],
        "while true; do sleep 1; done",
    );
    let (unit, container) = (apps.unit.clone(), apps.container.clone());
    let agent = Agent::start(&format!("sample_interval = \"60s\"\n{}", apps.apps_toml())).await;
    let mut stream = Sse::open(&agent.url("/v1/events")).await;
    // Let the watchers take their first look before the first kill.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let unit_ms = measure(
        &mut stream,
        || {
            sh("kill", &["-KILL", &main_pid(&unit)]);
        },
        || {
            sh("systemctl", &["--user", "start", &unit]);
        },
    )
    .await;
    // The container's process is SIGKILLed directly (as a crash would end it), not through the
    // podman CLI, whose own start-up would be counted otherwise.
    let container_ms = measure(
        &mut stream,
        || {
            let pid = sh(
                "podman",
                &["inspect", "--format", "{{.State.Pid}}", &container],
            );
            sh("kill", &["-KILL", pid.trim()]);
        },
        || {
            sh("podman", &["start", &container]);
        },
    )
    .await;

    println!("agent binary: {}", agent_bin().display());
    println!("{KILLS} SIGKILLs each; time from the kill command to the transition on /v1/events (sample_interval 60 s, so only the watchers can see it)\n");
    println!("| source | p50 (ms) | p99 (ms) | max (ms) | target | verdict |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, ms, target) in [
        ("systemd unit", &unit_ms, 50.0),
        ("podman container", &container_ms, 400.0),
    ] {
        let p99 = percentile(ms, 0.99);
        println!(
            "| {name} | {:.1} | {p99:.1} | {:.1} | p99 < {target} ms | {} |",
            percentile(ms, 0.5),
            ms[ms.len() - 1],
            if p99 < target { "met" } else { "MISSED" }
        );
    }
}

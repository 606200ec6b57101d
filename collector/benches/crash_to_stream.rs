//! Crash → collector event stream latency on the test bed: a real unit watched by the real agent,
//! the real collector subscribed to the agent's events (polling every 60 s, so only the stream path
//! can see it), a client on the collector's `/v1/events/stream`. Each round SIGKILLs the unit's main
//! process and times the `failed` event's arrival, then starts the unit again.
//! Run by `scripts/bench-collector.sh crash` (it brings up the test bed).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use fleetdeck_testkit::{require_testbed, run, Daemon, SseStream, TransientUnit};
use support::agent_bin;

const ROUNDS: usize = 50;
const TOKEN: &str = "bench-agent-token-0123456789abcdef";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    require_testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |n: &str| dir.path().join(n);
    let unit = TransientUnit::start(
        "crashbench",
        &["StartLimitIntervalSec=0"], // restarted 50 times in a row
        "while true; do sleep 1; done",
    );
    std::fs::write(path("agent.token"), TOKEN).expect("token");
    std::fs::set_permissions(path("agent.token"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    std::fs::write(
        path("agent.toml"),
        format!(
            "listen = [\"127.0.0.1:0\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\nsample_interval = \"60s\"\n[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\nallow_actions = true\n",
            unit.name
        ),
    )
    .expect("agent config");
    let agent = Daemon::spawn(
        Command::new(agent_bin())
            .arg("--config")
            .arg(path("agent.toml")),
        "fleetdeck-agent",
        "info",
    );
    let agent_addr = agent.addr;
    std::fs::write(
        path("collector.toml"),
        format!(
            "listen = [\"127.0.0.1:0\"]\ndatabase = \"c.db\"\npoll_interval = \"60s\"\n[[agents]]\nname = \"bench\"\nurl = \"http://{agent_addr}\"\ntoken_file = \"agent.token\"\n"
        ),
    )
    .expect("collector config");
    let collector_bin = env!("CARGO_BIN_EXE_fleetdeck-collector");
    let out = Command::new(collector_bin)
        .arg("--config")
        .arg(path("collector.toml"))
        .args(["keys", "create", "--name", "bench", "--role", "viewer"])
        .output()
        .expect("keys create");
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("key")
        .trim()
        .to_owned();
    let collector = Daemon::spawn(
        Command::new(collector_bin)
            .arg("--config")
            .arg(path("collector.toml")),
        "fleetdeck-collector",
        "info",
    );
    let collector_addr = collector.addr;
    let http = reqwest::Client::new();
    let url = format!("http://{collector_addr}/v1/events/stream");
    // The first poll records the app; from then on only transitions are events.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fleet: serde_json::Value = http
            .get(format!("http://{collector_addr}/v1/fleet"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("fleet")
            .json()
            .await
            .expect("json");
        if fleet["summary"]["apps_running"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never saw the app running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream = SseStream::open(&http, &url, &key, None).await;
    let state_of = |ev: &fleetdeck_testkit::SseEvent| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&ev.data).ok()?;
        v["to"].as_str().map(str::to_owned)
    };
    let mut ms = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let pid = unit.main_pid();
        assert!(pid > 0, "the unit has no main process");
        let killed = Instant::now();
        run("kill", &["-KILL", &pid.to_string()]);
        stream
            .wait_for("the failed event", Duration::from_secs(10), |ev| {
                (state_of(ev).as_deref() == Some("failed")).then_some(())
            })
            .await;
        ms.push(killed.elapsed().as_secs_f64() * 1000.0);
        run("systemctl", &["--user", "start", &unit.name]);
        stream
            .wait_for("the running event", Duration::from_secs(10), |ev| {
                (state_of(ev).as_deref() == Some("running")).then_some(())
            })
            .await;
    }
    ms.sort_by(f64::total_cmp);
    let p99 = percentile(&ms, 0.99);
    println!("{ROUNDS} SIGKILLs of a unit's main process; time from the kill to the event on the collector's /v1/events/stream (polls every 60 s: the agent's stream carried it)\n");
    println!("| p50 (ms) | p99 (ms) | max (ms) | target | verdict |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {:.1} | {p99:.1} | {:.1} | p99 < 1000 ms (crash → collector; the desktop's part is issue 5) | {} |",
        percentile(&ms, 0.5),
        ms[ms.len() - 1],
        if p99 < 1000.0 { "met" } else { "MISSED" }
    );
}

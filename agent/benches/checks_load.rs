//! The agent with 10 HTTP checks at a 1 s interval against a local server, beside the same agent
//! without checks: resident memory and CPU over CHECKS_SECS (60) each, in one run on one
//! machine. Not a test: it prints figures for docs/benchmarks.md.
//!
//! Run with `scripts/bench-agent.sh checks` (builds the static musl agent, brings up the test
//! bed, and passes FLEETDECK_AGENT_BIN). The agent watches one systemd unit and one container, as
//! in the snapshot benchmark.

mod support;

use std::time::{Duration, Instant};

use support::*;

const CHECKS: usize = 10;

/// CPU time of every thread of `pid`, in nanoseconds (first field of each task's schedstat).
fn cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let path = task.expect("task").path().join("schedstat");
        if let Ok(s) = std::fs::read_to_string(path) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

struct Measured {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_percent: f64,
}

/// Lets the agent run `secs` (after a few seconds of warm-up) and reads its memory and CPU.
async fn measure(agent: &Agent, secs: u64) -> Measured {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, t0) = (cpu_ns(agent.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = cpu_ns(agent.pid()) - cpu0;
    Measured {
        rss_kib: status_kib(agent.pid(), "VmRSS:"),
        hwm_kib: status_kib(agent.pid(), "VmHWM:"),
        cpu_percent: cpu as f64 / t0.elapsed().as_nanos() as f64 * 100.0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs: u64 = std::env::var("CHECKS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, server).await });

    let apps = BenchApps::start("checks", &[], "while true; do sleep 1; done");
    let base = Agent::start(&apps.apps_toml()).await;
    let without = measure(&base, secs).await;
    drop(base);

    let checks: String = (0..CHECKS)
        .map(|i| {
            format!(
                "[[apps.checks]]\nname = \"c{i}\"\nhttp = \"http://{addr}/health/{i}\"\nexpect_body = \"ok\"\ninterval = \"1s\"\n"
            )
        })
        .collect();
    // The checks belong to the first app (`web`, the unit): its table is first in apps_toml.
    let toml = apps.apps_toml();
    let (web, rest) = toml.split_at(toml.find("[[apps]]\nname = \"cache\"").expect("cache app"));
    let agent = Agent::start(&format!("{web}{checks}{rest}")).await;
    let with = measure(&agent, secs).await;
    let snapshot: serde_json::Value = reqwest::Client::new()
        .get(agent.url("/v1/apps/web"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("app")
        .json()
        .await
        .expect("json");
    let passing = snapshot["checks"]
        .as_array()
        .map_or(0, |c| c.iter().filter(|c| c["ok"] == true).count());
    assert_eq!(passing, CHECKS, "every check passes: {snapshot}");
    drop(agent);

    let mib = |k: u64| k as f64 / 1024.0;
    println!("| {secs} s, 1 unit + 1 container | no checks | {CHECKS} HTTP checks at 1 s |");
    println!("|---|---|---|");
    println!(
        "| RSS (MiB) | {:.2} | {:.2} |",
        mib(without.rss_kib),
        mib(with.rss_kib)
    );
    println!(
        "| peak RSS (MiB) | {:.2} | {:.2} |",
        mib(without.hwm_kib),
        mib(with.hwm_kib)
    );
    println!(
        "| CPU (% of one core) | {:.3} | {:.3} |",
        without.cpu_percent, with.cpu_percent
    );
}

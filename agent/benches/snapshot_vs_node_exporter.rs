//! Resident memory after 1,000 `/v1/snapshot` requests and CPU time per snapshot of the real
//! fleetdeck-agent, side by side with Debian's prometheus-node-exporter scraped 1,000 times, in
//! one run on one machine. Not a test: it prints figures for docs/benchmarks.md.
//!
//! Run with `scripts/bench-agent.sh snapshot` (builds the static musl agent, brings up the test
//! bed, and passes FLEETDECK_AGENT_BIN). The agent watches one systemd unit and one container, as
//! a small VM would.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const REQUESTS: u32 = 1_000;
const WARMUP: u32 = 20;

struct Measured {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ms_per_request: f64,
    wall_ms_per_request: f64,
    bytes_per_response: usize,
}

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

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer within 20 s");
}

async fn measure(pid: u32, client: &reqwest::Client, url: &str, bearer: Option<&str>) -> Measured {
    let get = || {
        let req = client.get(url);
        match bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    for _ in 0..WARMUP {
        let r = get().send().await.expect("request");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await.expect("body");
    }
    let cpu0 = cpu_ns(pid);
    let t0 = Instant::now();
    let mut bytes = 0;
    for _ in 0..REQUESTS {
        let r = get().send().await.expect("request");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        bytes = r.bytes().await.expect("body").len();
    }
    let wall = t0.elapsed();
    let cpu = cpu_ns(pid) - cpu0;
    Measured {
        rss_kib: status_kib(pid, "VmRSS:"),
        hwm_kib: status_kib(pid, "VmHWM:"),
        cpu_ms_per_request: cpu as f64 / 1e6 / f64::from(REQUESTS),
        wall_ms_per_request: wall.as_secs_f64() * 1e3 / f64::from(REQUESTS),
        bytes_per_response: bytes,
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let client = reqwest::Client::new();
    // One unit and one container, as on a small VM.
    let apps = BenchApps::start("snapshot", &[], "while true; do sleep 1; done");
    let agent = Agent::start(&apps.apps_toml()).await;
    let rss_idle = status_kib(agent.pid(), "VmRSS:");
    let a = measure(
        agent.pid(),
        &client,
        &agent.url("/v1/snapshot"),
        Some(TOKEN),
    )
    .await;
    drop(agent);

    let ne_port = free_port();
    let ne = Killed(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter (apt install prometheus-node-exporter)"),
    );
    let ne_url = format!("http://127.0.0.1:{ne_port}/metrics");
    wait_ready(&client, &ne_url).await;
    let ne_idle = status_kib(ne.0.id(), "VmRSS:");
    let n = measure(ne.0.id(), &client, &ne_url, None).await;
    drop(ne);

    let mib = |kib: u64| kib as f64 / 1024.0;
    let rss_ratio = a.rss_kib as f64 / n.rss_kib as f64;
    let cpu_ratio = a.cpu_ms_per_request / n.cpu_ms_per_request;
    println!("agent binary: {}", agent_bin().display());
    println!("{REQUESTS} sequential requests each after {WARMUP} warm-up requests, keep-alive, one client\n");
    println!("| what | fleetdeck-agent /v1/snapshot | node_exporter /metrics | ratio | target | verdict |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| RSS at start (MiB) | {:.2} | {:.2} | | | |",
        mib(rss_idle),
        mib(ne_idle)
    );
    println!(
        "| RSS after {REQUESTS} requests (MiB) | {:.2} | {:.2} | {rss_ratio:.2} | ≤ 8 MiB and ≤ 0.4× | {} |",
        mib(a.rss_kib),
        mib(n.rss_kib),
        if mib(a.rss_kib) <= 8.0 && rss_ratio <= 0.4 { "met" } else { "MISSED" }
    );
    println!(
        "| peak RSS (MiB) | {:.2} | {:.2} | | | |",
        mib(a.hwm_kib),
        mib(n.hwm_kib)
    );
    println!(
        "| CPU per request (ms) | {:.3} | {:.3} | {cpu_ratio:.2} | ≤ 2 ms and ≤ 0.3× | {} |",
        a.cpu_ms_per_request,
        n.cpu_ms_per_request,
        if a.cpu_ms_per_request <= 2.0 && cpu_ratio <= 0.3 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| wall time per request (ms) | {:.2} | {:.2} | | | |",
        a.wall_ms_per_request, n.wall_ms_per_request
    );
    println!(
        "| response size (bytes) | {} | {} | | | |",
        a.bytes_per_response, n.bytes_per_response
    );
}

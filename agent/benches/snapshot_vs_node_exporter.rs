//! Resident memory after 1,000 `/v1/snapshot` requests and CPU time per snapshot of the real
//! fleetdeck-agent, side by side with Debian's prometheus-node-exporter scraped 1,000 times, in
//! one run on one machine. Not a test: it prints figures for docs/benchmarks.md.
//!
//! Run with `scripts/bench-agent.sh` (builds the static musl agent, brings up the test bed, and
//! passes FLEETDECK_AGENT_BIN). The agent watches one systemd unit and one container, as a small VM would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REQUESTS: u32 = 1_000;
const WARMUP: u32 = 20;
const TOKEN: &str = "bench-token-0123456789abcdef0123";

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

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("field");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
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

fn sh(cmd: &str, args: &[&str]) {
    let ok = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{cmd} {args:?} failed");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; nothing else is expected.
    let agent_bin = std::env::var_os("FLEETDECK_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fleetdeck-agent")));
    let image = std::env::var("TESTBED_IMAGE")
        .expect("TESTBED_IMAGE unset: run scripts/bench-agent.sh (it brings up the test bed)");
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");

    // One unit and one container, as on a small VM.
    let unit = format!("fdbench-{}.service", std::process::id());
    let container = format!("fdbench-{}", std::process::id());
    sh(
        "systemd-run",
        &[
            "--user",
            &format!("--unit={unit}"),
            "busybox",
            "sh",
            "-c",
            "while true; do sleep 1; done",
        ],
    );
    sh(
        "podman",
        &["run", "-d", "--name", &container, &image, "sleep", "100000"],
    );
    let cleanup = || {
        let _ = Command::new("systemctl")
            .args(["--user", "stop", &unit])
            .output();
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &container])
            .output();
    };

    let token = dir.path().join("agent.token");
    std::fs::write(&token, TOKEN).expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:{port}\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\n\
             [[apps]]\nname = \"web\"\nsystemd_unit = \"{unit}\"\n\
             [[apps]]\nname = \"cache\"\ndocker_container = \"{container}\"\n"
        ),
    )
    .expect("config");
    let agent = Killed(
        Command::new(&agent_bin)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start agent"),
    );
    let agent_url = format!("http://127.0.0.1:{port}/v1/snapshot");
    wait_ready(&client, &format!("http://127.0.0.1:{port}/healthz")).await;
    let rss_idle = status_kib(agent.0.id(), "VmRSS:");
    let a = measure(agent.0.id(), &client, &agent_url, Some(TOKEN)).await;
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
    cleanup();

    let mib = |kib: u64| kib as f64 / 1024.0;
    let rss_ratio = a.rss_kib as f64 / n.rss_kib as f64;
    let cpu_ratio = a.cpu_ms_per_request / n.cpu_ms_per_request;
    println!("agent binary: {}", agent_bin.display());
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

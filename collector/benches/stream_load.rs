//! 500 stream clients hammering one agent through the collector: each opens a log follow of the
//! agent's chatty unit (4 in 5) or the fleet's event stream, reads it for 0.5–2 s, drops it and
//! opens another at once (after `Retry-After` when refused), for 60 s. Measured meanwhile: the
//! agent's `/healthz` asked directly every 50 ms, the longest time any of 20 other (simulated)
//! hosts went without a poll (interval 2 s), and the peaks of the collector's and the agent's
//! memory, threads, descriptors and the agent's journalctl processes.
//! Run by `scripts/bench-collector.sh streams` (it brings up the test bed).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use fleetdeck_sim::{Sim, SimConfig};
use fleetdeck_testkit::{children_running, require_testbed, Daemon, TransientUnit};
use futures_util::StreamExt;
use support::agent_bin;

const CLIENTS: usize = 500;
const KEYS: usize = 4;
const OTHER_HOSTS: usize = 20;
const TOKEN: &str = "bench-agent-token-0123456789abcdef";

fn secs() -> Duration {
    Duration::from_secs(
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

/// (VmRSS KiB, threads, open descriptors) of `pid`.
fn usage(pid: u32) -> (u64, u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:"), field("Threads:"), fds)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    require_testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |n: &str| dir.path().join(n);
    let unit = TransientUnit::start(
        "streamload",
        &[],
        "i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.1; done",
    );
    std::fs::write(path("agent.token"), TOKEN).expect("token");
    std::fs::set_permissions(path("agent.token"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    std::fs::write(
        path("agent.toml"),
        format!(
            "listen = [\"127.0.0.1:0\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\n\
             [[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\n",
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
    let sim = Sim::new(SimConfig {
        hosts: OTHER_HOSTS,
        apps_per_host: 2,
        sample_interval: Duration::from_secs(1),
        token: TOKEN.to_owned(),
        host_prefix: "other".to_owned(),
        ..SimConfig::default()
    })
    .expect("sim");
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim_addr = sim_listener.local_addr().expect("addr");
    let server = sim.clone();
    tokio::spawn(async move {
        let _ = server.serve(sim_listener, std::future::pending()).await;
    });
    let mut config = format!(
        "listen = [\"127.0.0.1:0\"]\ndatabase = \"c.db\"\npoll_interval = \"2s\"\n\
         [[agents]]\nname = \"target\"\nurl = \"http://{}\"\ntoken_file = \"agent.token\"\n",
        agent.addr
    );
    for i in 0..OTHER_HOSTS {
        config += &format!(
            "[[agents]]\nname = \"other-{i:02}\"\nurl = \"http://{sim_addr}/agents/{i}\"\ntoken_file = \"agent.token\"\n"
        );
    }
    std::fs::write(path("collector.toml"), config).expect("collector config");
    let collector_bin = env!("CARGO_BIN_EXE_fleetdeck-collector");
    let keys: Vec<String> = (0..KEYS)
        .map(|i| {
            let out = Command::new(collector_bin)
                .arg("--config")
                .arg(path("collector.toml"))
                .args([
                    "keys",
                    "create",
                    "--name",
                    &format!("k{i}"),
                    "--role",
                    "viewer",
                ])
                .output()
                .expect("keys create");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .expect("key")
                .trim()
                .to_owned()
        })
        .collect();
    let collector = Daemon::spawn(
        Command::new(collector_bin)
            .arg("--config")
            .arg(path("collector.toml")),
        "fleetdeck-collector",
        "info",
    );
    let base = collector.url("");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fleet: serde_json::Value = http
            .get(format!("{base}/v1/fleet"))
            .bearer_auth(&keys[0])
            .send()
            .await
            .expect("fleet")
            .json()
            .await
            .expect("json");
        let up = fleet["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().filter(|h| h["status"] == "up").count() == OTHER_HOSTS + 1);
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "not every host came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let running = Arc::new(AtomicBool::new(true));
    let (opened, refused, bytes) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (running, opened, refused, bytes) = (
            running.clone(),
            opened.clone(),
            refused.clone(),
            bytes.clone(),
        );
        let key = keys[i % KEYS].clone();
        let url = if i % 5 == 4 {
            format!("{base}/v1/events/stream")
        } else {
            format!("{base}/v1/hosts/target/apps/web/logs/stream")
        };
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let hold = Duration::from_millis(500 + (i as u64 * 37) % 1500);
            while running.load(Ordering::Relaxed) {
                let Ok(resp) = http.get(&url).bearer_auth(&key).send().await else {
                    continue;
                };
                if !resp.status().is_success() {
                    refused.fetch_add(1, Ordering::Relaxed);
                    let wait = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                opened.fetch_add(1, Ordering::Relaxed);
                let mut body = resp.bytes_stream();
                let until = tokio::time::Instant::now() + hold;
                while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(until, body.next()).await {
                    bytes.fetch_add(chunk.len(), Ordering::Relaxed);
                }
            }
        }));
    }

    // The agent's health, asked directly.
    let health = {
        let running = running.clone();
        let url = format!("http://{}/healthz", agent.addr);
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ms = Vec::new();
            let mut failed = 0;
            while running.load(Ordering::Relaxed) {
                let t = Instant::now();
                match http.get(&url).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status().is_success() => ms.push(t.elapsed().as_secs_f64() * 1e3),
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ms, failed)
        })
    };
    // The other hosts' polls, seen through the collector.
    let polls = {
        let running = running.clone();
        let (http, base, key) = (http.clone(), base.clone(), keys[0].clone());
        tokio::spawn(async move {
            let mut seen: HashMap<String, (u64, Instant)> = HashMap::new();
            let mut worst = Duration::ZERO;
            while running.load(Ordering::Relaxed) {
                if let Ok(resp) = http
                    .get(format!("{base}/v1/fleet"))
                    .bearer_auth(&key)
                    .send()
                    .await
                {
                    let fleet: serde_json::Value = resp.json().await.unwrap_or_default();
                    for h in fleet["hosts"].as_array().into_iter().flatten() {
                        let name = h["name"].as_str().unwrap_or("").to_owned();
                        if !name.starts_with("other") {
                            continue;
                        }
                        let last = h["last_seen_unix_ms"].as_u64().unwrap_or(0);
                        let entry = seen.entry(name).or_insert((last, Instant::now()));
                        if entry.0 != last {
                            worst = worst.max(entry.1.elapsed());
                            *entry = (last, Instant::now());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            for (_, at) in seen.values() {
                worst = worst.max(at.elapsed());
            }
            worst
        })
    };

    let started = Instant::now();
    let (mut collector_peak, mut agent_peak, mut journalctl_peak) = ((0, 0, 0), (0, 0, 0), 0);
    let (collector_start, agent_start) = (usage(collector.pid()), usage(agent.pid()));
    while started.elapsed() < secs() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (c, a) = (usage(collector.pid()), usage(agent.pid()));
        collector_peak = (
            collector_peak.0.max(c.0),
            collector_peak.1.max(c.1),
            collector_peak.2.max(c.2),
        );
        agent_peak = (
            agent_peak.0.max(a.0),
            agent_peak.1.max(a.1),
            agent_peak.2.max(a.2),
        );
        journalctl_peak = journalctl_peak.max(children_running(agent.pid(), "journalctl", None));
    }
    running.store(false, Ordering::Relaxed);
    for c in clients {
        c.abort();
    }
    let (mut ms, failed) = health.await.expect("health");
    let worst_gap = polls.await.expect("polls");
    ms.sort_by(f64::total_cmp);
    println!(
        "{CLIENTS} stream clients ({KEYS} keys; 4 in 5 follow the target's logs, 1 in 5 the event stream) for {:?}: \
         {} streams opened, {} refused (429/503), {} bytes streamed\n",
        secs(),
        opened.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
    println!("| what | figure | target |");
    println!("| --- | --- | --- |");
    println!(
        "| agent /healthz, asked directly every 50 ms | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {failed} failed of {} | within 100 ms |",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[ms.len() - 1],
        ms.len() + failed
    );
    println!(
        "| longest time one of {OTHER_HOSTS} other hosts went without a poll (interval 2 s) | {worst_gap:.2?} | polls keep their schedule |"
    );
    println!(
        "| collector: VmRSS, threads, descriptors (start → peak) | {} → {} KiB, {} → {}, {} → {} | bounded |",
        collector_start.0, collector_peak.0, collector_start.1, collector_peak.1, collector_start.2, collector_peak.2
    );
    println!(
        "| agent: VmRSS, threads, descriptors (start → peak); journalctl processes (peak) | {} → {} KiB, {} → {}, {} → {}; {journalctl_peak} | bounded (follows ≤ 16 per collector) |",
        agent_start.0, agent_peak.0, agent_start.1, agent_peak.1, agent_start.2, agent_peak.2
    );
}

//! The collector's benchmarks (docs/benchmarks.md), run by `scripts/bench-collector.sh`:
//!
//! - `poll`: agents polled per 30 s interval at one saturated core. A simulator in a child process
//!   (`fleetdeck-sim`, on the other core) serves BENCH_AGENTS virtual agents (default 5,000, four
//!   apps each, a sample every 10 s); the collector polls them all every 30 s through its real
//!   poller, HTTP client and database writer, and its CPU time per cycle (every thread of this
//!   process, from /proc/self/stat) gives the agents one core can poll per interval.
//! - `insert`: samples written per second through the real ingest path (batched transactions).
//! - `bytes`: database bytes per host-day, with raw samples and after rollups and retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck_collector::agent_client::AgentClient;
use fleetdeck_collector::config::Retention;
use fleetdeck_collector::poll::{Agent, Poller};
use fleetdeck_collector::store::db::PgTarget;
use fleetdeck_collector::store::ingest::{self, Polled};
use fleetdeck_collector::store::{rollup, Store, Target};
use fleetdeck_daemon::secret::Token;
use fleetdeck_proto::{
    Cpu, FsSample, HostMetrics, Load, Memory, NetSample, Sample, Snapshot, SourceHealth, Sources,
    Swap,
};

const SIM_ENV: &str = "FLEETDECK_BENCH_SIM_HOSTS";
const TOKEN: &str = "bench-sim-token-0123456789abcdef";
const DAY_MS: u64 = 24 * 3600 * 1000;

fn main() {
    if let Ok(hosts) = std::env::var(SIM_ENV) {
        return sim_main(hosts.parse().expect("host count"));
    }
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = which.is_empty();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if all || which.iter().any(|w| w == "insert") {
        runtime.block_on(insert_bench());
    }
    if all || which.iter().any(|w| w == "bytes") {
        runtime.block_on(bytes_bench());
    }
    if all || which.iter().any(|w| w == "poll") {
        runtime.block_on(poll_bench());
    }
}

/// The simulator child: serves the virtual agents on loopback and prints its port.
fn sim_main(hosts: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let sim = fleetdeck_sim::Sim::new(fleetdeck_sim::SimConfig {
            hosts,
            apps_per_host: 4,
            sample_interval: Duration::from_secs(10),
            token: TOKEN.into(),
            env_dir: None,
            chaos: false,
            seed: 7,
            host_prefix: "sim".into(),
            log_period: None,
        })
        .expect("sim");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("PORT={}", listener.local_addr().expect("addr").port());
        axum::serve(listener, sim.router()).await.expect("serve");
    });
}

/// CPU seconds used by every thread of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); after the name they are 12th and 13th.
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn poll_bench() {
    let agents: usize = std::env::var("BENCH_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let cycles: usize = std::env::var("BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let interval = Duration::from_secs(30);
    let exe = std::env::current_exe().expect("exe");
    /// The simulator child, killed when dropped (also when the bench fails half-way).
    struct Simulator(std::process::Child);
    impl Drop for Simulator {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Simulator(
        std::process::Command::new(exe)
            .env(SIM_ENV, agents.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the simulator"),
    );
    let mut out = std::io::BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("port line");
    let port: u16 = line
        .trim()
        .trim_start_matches("PORT=")
        .parse()
        .expect("port");

    let dir = tempfile::tempdir().expect("tempdir");
    let db = BenchDb::new(dir.path());
    let store = Store::open(&db.target).expect("store");
    let names: Vec<(String, String)> = (0..agents)
        .map(|i| {
            (
                format!("sim-{i:05}"),
                format!("http://127.0.0.1:{port}/agents/{i}"),
            )
        })
        .collect();
    let urls = names.clone();
    let cursors = store
        .write(move |ctx| ingest::register_agents(ctx, &names))
        .await
        .expect("register");
    let http = fleetdeck_collector::run::http_client().expect("client");
    let list: Vec<Arc<Agent>> = cursors
        .into_iter()
        .zip(urls)
        .map(|(cursor, (_, url))| {
            let client = AgentClient::new(
                http.clone(),
                &url,
                Token::new(TOKEN),
                Duration::from_secs(10),
            );
            Arc::new(Agent::new(client, cursor))
        })
        .collect();
    let poller = Poller {
        agents: fleetdeck_collector::poll::Roster::new(list),
        wake: Default::default(),
        store: store.clone(),
        concurrency: 256,
        timeout: Duration::from_secs(10),
        down_after: 2,
        jitter: Duration::ZERO,
    };
    println!("\n== poll: {agents} virtual agents (4 apps each, a sample every 10 s), a cycle every {interval:?}");
    println!("cycle | wall s | collector CPU s | ok | failed | samples | RSS MiB");
    let mut steady = Vec::new();
    for cycle in 1..=cycles {
        let started = Instant::now();
        let cpu0 = cpu_seconds();
        let report = poller.poll_all().await;
        let cpu = cpu_seconds() - cpu0;
        println!(
            "{cycle:5} | {:6.2} | {:15.2} | {:4} | {:6} | {:7} | {:7.1}",
            report.elapsed.as_secs_f64(),
            cpu,
            report.ok,
            report.failed,
            report.samples,
            rss_kib() as f64 / 1024.0
        );
        if cycle > 1 {
            steady.push((cpu, report.elapsed.as_secs_f64(), report.failed));
        }
        if cycle < cycles {
            tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
        }
    }
    drop(child);
    if steady.is_empty() {
        return;
    }
    let cpu = steady.iter().map(|s| s.0).sum::<f64>() / steady.len() as f64;
    let wall = steady.iter().map(|s| s.1).sum::<f64>() / steady.len() as f64;
    let failed: usize = steady.iter().map(|s| s.2).sum();
    println!(
        "steady cycles: {:.2} CPU s and {wall:.2} s wall per cycle of {agents}; {failed} failed polls",
        cpu
    );
    println!(
        "=> agents polled per 30 s at one saturated core: {:.0} (target >= 5,000)",
        agents as f64 * interval.as_secs_f64() / cpu
    );
}

fn snapshot(host: &str, instance: &str, seq: u64, at: u64) -> Snapshot {
    Snapshot {
        seq,
        instance_id: instance.into(),
        taken_unix_ms: at,
        host: HostMetrics {
            hostname: host.into(),
            boot_id: "boot".into(),
            uptime_secs: 1000.0,
            window_secs: Some(10.0),
            cpu: Cpu {
                cores: 2,
                total_percent: Some(12.5),
                per_core_percent: vec![10.0, 15.0],
            },
            memory: Memory {
                total_bytes: 8 << 30,
                available_bytes: 6 << 30,
                used_bytes: 2 << 30,
            },
            swap: Swap::default(),
            load: Load {
                one: 0.5,
                five: 0.4,
                fifteen: 0.3,
            },
            filesystems: Vec::new(),
            network: Vec::new(),
            disks: Vec::new(),
        },
        apps: Vec::new(),
        sources: Sources {
            systemd: SourceHealth::Up,
            docker: SourceHealth::Unused,
        },
    }
}

/// A host sample with `apps` apps' figures (as an agent sends for each app it watches).
fn sample(seq: u64, at: u64, apps: usize) -> Sample {
    Sample {
        seq,
        taken_unix_ms: at,
        cpu_percent: Some((seq % 100) as f32 + 0.5),
        memory_used_bytes: (2 << 30) + seq * 4096,
        memory_total_bytes: 8 << 30,
        swap_used_bytes: 0,
        swap_total_bytes: 0,
        cores: 0,
        load1: 0.5,
        load5: 0.4,
        load15: 0.3,
        filesystems: vec![FsSample {
            mount_point: "/".into(),
            used_bytes: 40 << 30,
            total_bytes: 100 << 30,
            inodes_used: 200_000,
            inodes_total: 6_000_000,
        }],
        network: vec![NetSample {
            name: "eth0".into(),
            rx_bytes_per_sec: Some(120_000 + seq % 1000),
            tx_bytes_per_sec: Some(80_000),
        }],
        apps: (0..apps)
            .map(|i| fleetdeck_proto::AppSample {
                name: format!("app-{i}"),
                state: fleetdeck_proto::AppState::Running,
                restarts: Some(0),
                memory_bytes: Some((200 << 20) + seq * 512),
                cpu_percent: Some((seq % 40) as f32 + 0.25),
                memory_limit_bytes: None,
                net_rx_bytes_per_sec: None,
                net_tx_bytes_per_sec: None,
                checks: Vec::new(),
            })
            .collect(),
        disks: Vec::new(),
    }
}

/// Writes `per_host` samples (every `step_ms` from `t0`, `apps` apps in each) for each host, in
/// polls of `batch`.
#[allow(clippy::too_many_arguments)]
async fn fill(
    store: &Store,
    hosts: usize,
    apps: usize,
    per_host: u64,
    batch: u64,
    t0: u64,
    step_ms: u64,
) -> u64 {
    let names: Vec<(String, String)> = (0..hosts)
        .map(|i| (format!("h{i}"), format!("http://h{i}:7070")))
        .collect();
    let cursors = store
        .write(move |ctx| ingest::register_agents(ctx, &names))
        .await
        .expect("register");
    let mut pending = Vec::new();
    let mut written = 0;
    let mut seq = 0;
    while seq < per_host {
        for c in &cursors {
            let samples: Vec<Sample> = (seq + 1..=(seq + batch).min(per_host))
                .map(|s| sample(s, t0 + s * step_ms, apps))
                .collect();
            written += samples.len() as u64;
            let polled = Polled {
                snapshot: snapshot(&c.name, "inst", seq + batch, t0 + (seq + batch) * step_ms),
                samples_instance: "inst".into(),
                samples,
                info: None,
            };
            let (id, name) = (c.id, c.name.clone());
            pending.push(store.write(move |ctx| {
                ingest::apply_poll(ctx, id, &name, polled, t0 + (seq + batch) * step_ms)
            }));
        }
        seq += batch;
        // Keep a bounded number of polls in flight, as the poller's concurrency does.
        if pending.len() >= 256 {
            for p in pending.drain(..) {
                p.await.expect("write");
            }
        }
    }
    for p in pending {
        p.await.expect("write");
    }
    written
}

async fn insert_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = BenchDb::new(dir.path());
    let store = Store::open(&db.target).expect("store");
    println!("\n== insert: samples written per second through the ingest path (batched)");
    for (hosts, per_poll) in [(1000usize, 3u64), (200, 100), (100, 1000)] {
        let t0 = 1_700_000_000_000 + hosts as u64 * DAY_MS;
        let started = Instant::now();
        let written = fill(&store, hosts, 0, per_poll * 10, per_poll, t0, 10_000).await;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{hosts} hosts x 10 polls of {per_poll} samples: {written} samples in {secs:.2} s = {:.0} samples/s (target >= 200,000)",
            written as f64 / secs
        );
    }
}

/// The database a bench stores in: an SQLite file in `dir`, or with `FLEETDECK_BENCH_STORE=postgres`
/// a new database on the server of `FLEETDECK_TEST_PG_URL` (the test bed's; its password in
/// `PGPASSFILE`), dropped at the end.
struct BenchDb {
    target: Target,
    admin: Option<(PgTarget, String)>,
}

impl BenchDb {
    fn new(dir: &std::path::Path) -> Self {
        if std::env::var("FLEETDECK_BENCH_STORE").is_ok_and(|v| v == "postgres") {
            let url = std::env::var("FLEETDECK_TEST_PG_URL").expect(
                "FLEETDECK_BENCH_STORE=postgres needs FLEETDECK_TEST_PG_URL (testbed.sh pg up)",
            );
            let url = match std::env::var("PGPASSFILE") {
                Ok(file) => format!("{url}?passfile={file}"),
                Err(_) => url,
            };
            let admin = PgTarget::parse(&url, None).expect("the server's URL");
            let name = format!("bench_{:x}", std::process::id());
            // On a thread of its own: the sync client cannot block the bench's runtime thread.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let conn = admin.connect().expect("the PostgreSQL server");
                    conn.execute_batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .expect("the previous bench database");
                    conn.execute_batch(&format!("CREATE DATABASE {name}"))
                        .expect("a bench database");
                })
                .join()
                .expect("create the bench database")
            });
            let own = url.replacen("/fleetdeck?", &format!("/{name}?"), 1);
            let own = if own == url {
                url.replacen("/fleetdeck", &format!("/{name}"), 1)
            } else {
                own
            };
            println!("(storing in PostgreSQL: database {name})");
            return Self {
                target: Target::Postgres(Box::new(PgTarget::parse(&own, None).expect("url"))),
                admin: Some((admin, name)),
            };
        }
        Self {
            target: Target::Sqlite(dir.join("c.db")),
            admin: None,
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.admin.take() {
            std::thread::spawn(move || {
                if let Ok(conn) = admin.connect() {
                    let _ =
                        conn.execute_batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join()
            .ok();
        }
    }
}

fn file_bytes(store: &Store) -> u64 {
    if let Target::Postgres(_) = store.target() {
        // Compacted first, as SQLite's VACUUM below: the size the data takes, not dead rows.
        return store
            .with_conn_blocking(|conn| {
                conn.execute_batch("VACUUM FULL")?;
                conn.query_row(
                    "SELECT pg_database_size(current_database())",
                    fleetdeck_collector::params![],
                    |r| r.get::<i64>(0),
                )
            })
            .expect("size") as u64;
    }
    store
        .with_conn_blocking(|conn| {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
            let pages: i64 =
                conn.query_row("PRAGMA page_count", fleetdeck_collector::params![], |r| {
                    r.get(0)
                })?;
            let size: i64 =
                conn.query_row("PRAGMA page_size", fleetdeck_collector::params![], |r| {
                    r.get(0)
                })?;
            Ok((pages * size) as u64)
        })
        .expect("size")
}

async fn bytes_bench() {
    let hosts = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = BenchDb::new(dir.path());
    let store = Store::open(&db.target).expect("store");
    let empty = file_bytes(&store);
    let t0 = 1_790_000_000_000 / DAY_MS * DAY_MS;
    // Four apps a host, as the poll bench's and the soak's simulated agents.
    let apps = 4;
    println!(
        "\n== bytes: {hosts} hosts with {apps} apps each, one day of samples every 10 s (8,640 per host)"
    );
    fill(&store, hosts, apps, 8640, 360, t0, 10_000).await;
    let retention = Retention::default();
    store
        .with_conn_blocking(|conn| rollup::run(conn, t0 + DAY_MS + 3_600_000, &retention))
        .expect("rollup");
    let with_raw = file_bytes(&store) - empty;
    store
        .with_conn_blocking(|conn| rollup::run(conn, t0 + DAY_MS + 49 * 3_600_000, &retention))
        .expect("retention");
    let after = file_bytes(&store) - empty;
    println!(
        "per host-day: {:.0} KiB with raw samples and rollups (the first 48 h), {:.1} KiB after rollups (raw deleted)",
        with_raw as f64 / hosts as f64 / 1024.0,
        after as f64 / hosts as f64 / 1024.0
    );
}

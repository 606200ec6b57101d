//! Fault injection on the real collector binary.
//!
//! 1. SIGKILL during batched writes: a simulated agent (`fleetdeck-sim`, one sample a millisecond)
//!    has tens of thousands of samples waiting, so the collector backfills page after page; it is
//!    killed with SIGKILL while its stored cursor moves, several times, and restarted each time.
//!    After every kill the database (SQLite or PostgreSQL, as the test pass chose) holds exactly
//!    seqs 1..=N of the one agent instance (no gap, no duplicate) with the cursor at N, and an
//!    SQLite file passes `PRAGMA integrity_check`; at the end the collector catches up.
//! 2. Partitions during streams: a real agent on a second "host" (network namespace tb-agent) is
//!    cut off from the collector, silently (packets dropped) and then with fast failure (link
//!    down), each time for longer than the collector's stream-silence and host-down detection;
//!    the app's unit is killed during each partition. A client of the collector's event stream and
//!    a client following the app's logs through the collector, both reconnecting with
//!    `Last-Event-ID` as the desktop does, get each crash exactly once and every log line exactly
//!    once, in order, as the journal holds them.

mod common;
#[path = "common/resume.rs"]
mod resume;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use fleetdeck_collector::params;
use fleetdeck_collector::store::Conn;
use fleetdeck_sim::SimConfig;
use resume::Follower;
use serde_json::Value;

/// The two tests run one after the other: the backfill saturates the CPU, which would make the
/// partition test's 700 ms polls miss for reasons other than the partition.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- 1. SIGKILL during batched writes ---

/// How many times the collector is killed during the backfill.
const KILLS: usize = 10;
/// The backlog the simulated agent holds before the collector first starts.
const BACKLOG: i64 = 35_000;

/// What the database holds for the host after a crash or a stop.
#[derive(Debug, Clone, Copy)]
struct Stored {
    samples: i64,
    cursor: i64,
}

/// Checks the database as the crash left it, on a connection of the test's own: intact (SQLite's
/// `integrity_check` and foreign keys; PostgreSQL enforces its keys itself), samples 1..=N of one
/// agent instance, each once, and the cursor at N.
fn check_db(work: &Workdir, host: &str, what: &str) -> Stored {
    let sqlite = !on_postgres();
    let (integrity, broken_keys, row) = db(work)
        .run(|c| {
            let (integrity, broken_keys) = if sqlite {
                (
                    c.query_map("PRAGMA integrity_check", params![], |r| r.get::<String>(0))?,
                    c.query_row(
                        "SELECT count(*) FROM pragma_foreign_key_check",
                        params![],
                        |r| r.get::<i64>(0),
                    )?,
                )
            } else {
                (vec!["ok".to_owned()], 0)
            };
            // One statement: the cursor and the samples are read from the same snapshot.
            let row = c.query_row(
                "SELECT count(s.seq), count(DISTINCT s.seq), coalesce(min(s.seq), 0),
                        coalesce(max(s.seq), 0), count(DISTINCT s.instance), h.last_seq
                 FROM hosts h LEFT JOIN samples_raw s ON s.host_id = h.id WHERE h.name = ?1
                 GROUP BY h.last_seq",
                params![host],
                |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<i64>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<i64>(3)?,
                        r.get::<i64>(4)?,
                        r.get::<i64>(5)?,
                    ))
                },
            )?;
            Ok((integrity, broken_keys, row))
        })
        .expect("read the collector's database");
    assert_eq!(integrity, ["ok"], "{what}: PRAGMA integrity_check");
    assert_eq!(broken_keys, 0, "{what}: foreign keys");
    let (count, distinct, min, max, instances, cursor) = row;
    if count > 0 {
        assert_eq!(instances, 1, "{what}: one agent instance");
        assert_eq!(count, distinct, "{what}: a sample stored twice");
        assert_eq!(min, 1, "{what}: the first sample is missing");
        assert_eq!(max - min + 1, count, "{what}: a gap in seqs {min}..={max}");
    }
    assert_eq!(
        cursor, max,
        "{what}: the cursor is not the newest stored seq"
    );
    Stored {
        samples: count,
        cursor,
    }
}

/// The host's stored cursor, read on `conn` (0 before the first poll or the schema).
fn cursor_on(conn: &Conn, host: &str) -> i64 {
    conn.query_opt(
        "SELECT last_seq FROM hosts WHERE name = ?1",
        params![host],
        |r| r.get::<i64>(0),
    )
    .ok()
    .flatten()
    .unwrap_or(0)
}

/// The host's stored cursor (0 before the first poll).
fn cursor(work: &Workdir, host: &str) -> i64 {
    if !on_postgres() && !work.path("collector.db").exists() {
        return 0;
    }
    db(work).run(|c| Ok(cursor_on(c, host))).unwrap_or(0)
}

/// Watches the host's cursor (every 2 ms, on one connection of the test's own, on a thread of its
/// own, closed before returning) until it reaches `target`; returns it.
fn backfill_moved(work: &Workdir, host: &str, target: i64, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    let watched = db(work).run(|conn| loop {
        let c = cursor_on(conn, host);
        if c >= target {
            return Ok(Ok(c));
        }
        if Instant::now() >= deadline {
            return Ok(Err(c));
        }
        std::thread::sleep(Duration::from_millis(2));
    });
    match watched.expect("open the collector's database") {
        Ok(c) => c,
        Err(c) => panic!("the cursor stayed at {c} below {target} for {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_backfill_leaves_a_clean_database_without_gaps() {
    let _serial = SERIAL.lock().await;
    let began = Instant::now();
    let (_sim, addr) = serve_sim(SimConfig {
        hosts: 1,
        apps_per_host: 2,
        sample_interval: Duration::from_millis(1),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .await;
    let base = format!("http://{addr}/agents/0");
    let http = reqwest::Client::new();
    wait_for(
        "the simulated agent's backlog",
        Duration::from_secs(60),
        || async {
            agent_latest_seq(&http, &base)
                .await
                .filter(|l| *l >= BACKLOG)
        },
    )
    .await;

    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!("[[agents]]\nname = \"sim\"\nurl = \"{base}\"\ntoken_file = \"sim.token\"\n"),
    );
    let mut report = Vec::new();
    for kill in 1..=KILLS {
        let mut collector = start_collector(&config);
        let health = http
            .get(collector.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(
            health.status(),
            200,
            "run {kill}: the collector starts clean"
        );
        let from = cursor(&work, "sim");
        // Killed as soon as the backfill has written at least one more page (of 1000) in this
        // run: the next page is then being fetched or written.
        // Then, fault timing rather than synchronisation: each kill lands a different time
        // (0-180 ms) after that commit, so the kills fall across the next page's fetch, decode
        // and write.
        let at = tokio::task::block_in_place(|| {
            let at = backfill_moved(&work, "sim", from + 1_000, Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(20 * (kill as u64 - 1)));
            at
        });
        collector.child.kill().expect("SIGKILL the collector");
        let status = collector.child.wait().expect("the killed collector");
        assert_eq!(status.signal(), Some(9), "run {kill}: {status}");
        let latest = agent_latest_seq(&http, &base)
            .await
            .expect("agent's latest");
        // SQLite's write-ahead log as the kill left it (none on PostgreSQL).
        let wal = std::fs::metadata(work.path("collector.db-wal")).map_or(0, |m| m.len());
        let stored = check_db(&work, "sim", &format!("after SIGKILL {kill}"));
        assert!(
            stored.cursor >= at,
            "run {kill}: the cursor went back from {at} to {}",
            stored.cursor
        );
        assert!(
            latest - stored.cursor > 1_000,
            "run {kill}: killed with only {} samples left to backfill: not during a multi-page backfill",
            latest - stored.cursor
        );
        report.push(format!(
            "kill {kill}: cursor {from} → {} (seen {at}, killed {} ms later), {} samples behind the agent, WAL {wal} B",
            stored.cursor,
            20 * (kill - 1),
            latest - stored.cursor
        ));
    }
    // The last run catches up with the agent's newest seq as it was when the run started.
    let mut collector = start_collector(&config);
    let target = agent_latest_seq(&http, &base)
        .await
        .expect("agent's latest");
    let caught_up = Instant::now();
    wait_for("the catch-up", Duration::from_secs(120), || async {
        (cursor(&work, "sim") >= target).then_some(())
    })
    .await;
    let catch_up = caught_up.elapsed();
    collector.stop();
    let stored = check_db(&work, "sim", "after the catch-up");
    assert!(stored.cursor >= target);
    let logs = collector.logs().join("\n");
    assert!(
        !logs.contains("ERROR"),
        "the collector logged an error after the kills:\n{logs}"
    );
    eprintln!(
        "{}\n{KILLS} SIGKILLs, {} samples stored as seqs 1..={} with no gap or duplicate; \
         caught up to seq {target} in {catch_up:?}; test took {:?}",
        report.join("\n"),
        stored.samples,
        stored.cursor,
        began.elapsed()
    );
}

// --- 2. Partitions during event and log streams ---

/// How long the test's clients wait for a byte (the agent's keep-alives come every 15 s) before
/// they treat a stream as broken (the desktop waits 45 s).
const CLIENT_SILENCE: Duration = Duration::from_secs(20);

/// `GET path` on the agent from inside its namespace.
fn agent_get(agent: &Daemon, path: &str) -> Option<Value> {
    let out = std::process::Command::new("nsenter")
        .arg("--net=/run/netns/tb-agent")
        .args(["curl", "-sf", "-m", "2", "-H"])
        .arg(format!("Authorization: Bearer {AGENT_TOKEN}"))
        .arg(format!("http://{}{path}", agent.addr))
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// The collector's log lines from index `from` on that contain any of `needles`.
fn logged_since(collector: &mut Daemon, from: usize, needles: &[&str]) -> bool {
    collector.logs()[from..]
        .iter()
        .any(|l| needles.iter().any(|n| l.contains(n)))
}

/// The `failed` transitions of app `web` among the event stream's items.
fn failed_events(items: &[resume::Item]) -> Vec<Value> {
    items
        .iter()
        .filter(|i| i.event == "fleet")
        .filter_map(|i| serde_json::from_str::<Value>(&i.data).ok())
        .filter(|v| v["host"] == "far" && v["app"] == "web" && v["to"] == "failed")
        .collect()
}

/// `(cursor, message)` of every entry the journal holds for `unit`, oldest first.
fn journal(unit: &str) -> Vec<(String, String)> {
    let out = run(
        "journalctl",
        &[
            &format!("--user-unit={unit}"),
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
            "--output-fields=MESSAGE",
        ],
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["__CURSOR"].as_str().unwrap_or_default().to_owned(),
                v["MESSAGE"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `(pid, n)` of a numbered line `n-PID-N`.
fn numbered(message: &str) -> Option<(u64, u64)> {
    let mut parts = message.strip_prefix("n-")?.split('-');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_during_streams_lose_and_double_nothing() {
    require_testbed();
    let _serial = SERIAL.lock().await;
    let began = Instant::now();
    testbed_net("up");
    let _heal = HealOnDrop;
    // Numbered lines every 100 ms, tagged with the shell's PID (a restart numbers from 1 again).
    // The script is in a file: the user manager re-reads a transient unit's command line at any
    // `daemon-reload` (other tests do them), and mangles `$((...))` in it, so a restart would run
    // a broken script.
    let work = Workdir::new();
    let script = work.write(
        "count.sh",
        "read p rest < /proc/self/stat\ni=0\nwhile true; do i=$((i+1)); echo n-$p-$i; sleep 0.1; done\n",
    );
    let unit = TransientUnit::start("faultlog", &[], &format!(". {}", script.display()));
    let agent_config = agent_config(&work, "far", "10.99.0.2:0", &unit_app("web", &unit.name));
    let agent = start_agent_in_netns(&agent_config);
    let config = collector_config(
        &work,
        &format!("down_after = 2\n{}", agent_entry("far", agent.addr)),
    );
    let key = create_key(&config, "viewer", "viewer");
    let mut collector = start_collector(&config);
    let api = Api::new(&collector, &key);
    let app_state = |api: &Api| {
        let api = api.clone();
        async move {
            let host = api.json("/v1/hosts/far").await;
            (
                host["status"].as_str().unwrap_or_default().to_owned(),
                host["apps"][0]["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    wait_for("web running", Duration::from_secs(20), || async {
        (app_state(&api).await == ("up".into(), "running".into())).then_some(())
    })
    .await;
    wait_for(
        "the collector's subscription to the agent",
        Duration::from_secs(20),
        || {
            let open = logged_since(&mut collector, 0, &["event stream open"]);
            async move { open.then_some(()) }
        },
    )
    .await;

    // The clients: all events from the first one on, and the app's logs from now on.
    let events = Follower::start(
        collector.url("/v1/events/stream"),
        key.clone(),
        Some("0".into()),
        CLIENT_SILENCE,
    );
    let logs = Follower::start(
        collector.url("/v1/hosts/far/apps/web/logs/stream"),
        key.clone(),
        None,
        CLIENT_SILENCE,
    );
    wait_for(
        "the first followed lines",
        Duration::from_secs(20),
        || async { (logs.items().len() >= 5).then_some(()) },
    )
    .await;

    let mut phases = Vec::new();
    for (round, mode) in ["drop", "cut"].into_iter().enumerate() {
        let phase = Instant::now();
        if round > 0 {
            run("systemctl", &["--user", "restart", &unit.name]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while app_state(&api).await != ("up".into(), "running".into()) {
                if Instant::now() > deadline {
                    let host = api.json("/v1/hosts/far").await;
                    let events = api.json("/v1/events?host=far").await;
                    let agent_app = agent_get(&agent, "/v1/apps/web");
                    panic!(
                        "web not running again within 30 s after a restart: host {host}\n\
                         events {events}\nagent {agent_app:?}\ncollector:\n{}",
                        collector.logs().join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Lines flow before the partition.
        let seen = logs.items().len();
        wait_for(
            "lines before the partition",
            Duration::from_secs(20),
            || async { (logs.items().len() >= seen + 5).then_some(()) },
        )
        .await;
        let mark = collector.logs().len();
        let cut_at = now_ms();
        testbed_net(mode);
        wait_for("the host down", Duration::from_secs(30), || async {
            (app_state(&api).await.0 == "down").then_some(())
        })
        .await;
        let down_after = phase.elapsed();
        // The crash happens while the collector cannot see the agent.
        run("systemctl", &["--user", "kill", "-s", "KILL", &unit.name]);
        wait_for(
            "the agent to see web failed",
            Duration::from_secs(20),
            || async {
                let app = agent_get(&agent, "/v1/apps/web")?;
                (app["state"] == "failed").then_some(())
            },
        )
        .await;
        // The partition lasts until the collector has given up on its event stream too.
        wait_for(
            "the collector to notice its event stream is dead",
            Duration::from_secs(90),
            || {
                let noticed = logged_since(
                    &mut collector,
                    mark,
                    &["event stream silent", "event stream broke"],
                );
                async move { noticed.then_some(()) }
            },
        )
        .await;
        let partition = phase.elapsed();
        let heal_mark = collector.logs().len();
        testbed_net("heal");
        wait_for(
            "the host up with web failed",
            Duration::from_secs(60),
            || async { (app_state(&api).await == ("up".into(), "failed".into())).then_some(()) },
        )
        .await;
        wait_for(
            "the crash on the client's event stream",
            Duration::from_secs(30),
            || async {
                let failed = failed_events(&events.items());
                failed
                    .iter()
                    .any(|e| e["at_unix_ms"].as_u64() > Some(cut_at))
                    .then_some(())
            },
        )
        .await;
        // The collector's own subscription resumes (the agent replays what it missed) and a poll
        // follows: whatever would double the crash has had its chance.
        wait_for(
            "the collector's event stream reopened",
            Duration::from_secs(60),
            || {
                let open = logged_since(&mut collector, heal_mark, &["event stream open"]);
                async move { open.then_some(()) }
            },
        )
        .await;
        let seen_ms = api.json("/v1/hosts/far").await["last_seen_unix_ms"]
            .as_u64()
            .unwrap_or(0);
        wait_for("two more polls", Duration::from_secs(20), || async {
            let now = api.json("/v1/hosts/far").await["last_seen_unix_ms"]
                .as_u64()
                .unwrap_or(0);
            (now >= seen_ms + 2000).then_some(())
        })
        .await;
        let failed = failed_events(&events.items());
        let this_round: Vec<&Value> = failed
            .iter()
            .filter(|e| e["at_unix_ms"].as_u64() > Some(cut_at))
            .collect();
        assert_eq!(
            this_round.len(),
            1,
            "{mode}: the crash during the partition reached the client once: {this_round:?}"
        );
        assert_eq!(this_round[0]["exit"], serde_json::json!({"signal": 9}));
        phases.push(format!(
            "{mode}: host down after {down_after:?}, partition {partition:?}, crash event from {}, \
             recovered in {:?}",
            this_round[0]["source"],
            phase.elapsed() - partition
        ));
    }

    // After both partitions the app runs again and the follow is live: lines of a new process
    // arrive.
    run("systemctl", &["--user", "restart", &unit.name]);
    let pid = unit.main_pid();
    let lines_of = |pid: u32| {
        logs.items()
            .iter()
            .filter_map(|i| serde_json::from_str::<Value>(&i.data).ok())
            .filter_map(|v| numbered(v["message"].as_str()?))
            .filter(|(p, _)| *p == u64::from(pid))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines_of(pid) < 10 {
        if Instant::now() > deadline {
            let tail: Vec<resume::Item> = logs.items().into_iter().rev().take(3).collect();
            let logged = collector.logs().join("\n");
            panic!(
                "no ten lines of the restarted process {pid} within 60 s: {} reconnects, {} refused \
                 opens, breaks {:?}, last items {tail:?}\ncollector:\n{logged}",
                logs.reconnects(),
                logs.failed_opens(),
                logs.breaks()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Events: each id once, in order; two crashes in all, each once; the log agrees.
    let items = events.items();
    let ids: Vec<i64> = items
        .iter()
        .filter(|i| i.event == "fleet")
        .map(|i| i.id.parse().expect("numeric event id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "event ids doubled or out of order: {ids:?}"
    );
    assert_eq!(failed_events(&items).len(), 2, "one crash per partition");
    let page = api.json("/v1/events?host=far&app=web").await;
    let stored_failed = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["to"] == "failed")
        .count();
    assert_eq!(stored_failed, 2, "{page}");

    // Logs: exactly the journal's entries from the first one followed on, each once, in order.
    let followed: Vec<(String, String)> = logs
        .items()
        .iter()
        .filter(|i| i.event == "log")
        .map(|i| {
            let v: Value = serde_json::from_str(&i.data).expect("a log entry");
            (
                v["cursor"].as_str().expect("cursor").to_owned(),
                v["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect();
    let journal = journal(&unit.name);
    let start = journal
        .iter()
        .position(|(c, _)| *c == followed[0].0)
        .expect("the first followed entry is in the journal");
    let expected = &journal[start..(start + followed.len()).min(journal.len())];
    if followed != expected {
        let first_diff = followed
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(followed.len()));
        panic!(
            "the follow differs from the journal at entry {first_diff}: got {:?}, journal {:?}",
            followed.get(first_diff),
            expected.get(first_diff)
        );
    }
    // Read as numbered lines: per process, 1, 2, 3... with no gap (the first process from where
    // the follow began).
    let mut per_pid: Vec<(u64, Vec<u64>)> = Vec::new();
    for (_, message) in &followed {
        if let Some((pid, n)) = numbered(message) {
            match per_pid.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, ns)) => ns.push(n),
                None => per_pid.push((pid, vec![n])),
            }
        }
    }
    assert_eq!(
        per_pid.len(),
        3,
        "three processes: the first, one restarted after the first crash, one after the second"
    );
    for (i, (pid, ns)) in per_pid.iter().enumerate() {
        if i > 0 {
            assert_eq!(ns[0], 1, "process {pid} followed from its first line");
        }
        assert!(
            ns.windows(2).all(|w| w[1] == w[0] + 1),
            "process {pid}: lines missing or doubled: {ns:?}"
        );
    }
    let lines: usize = per_pid.iter().map(|(_, ns)| ns.len()).sum();
    for l in collector.logs() {
        if l.contains("WARN") || l.contains("ERROR") {
            eprintln!("collector: {l}");
        }
    }
    eprintln!(
        "{}\nevents client: {} events, {} reconnects, breaks {:?}\n\
         logs client: {lines} numbered lines ({} entries) from {} processes, {} reconnects, \
         {} refused opens, breaks {:?}\ntest took {:?}",
        phases.join("\n"),
        ids.len(),
        events.reconnects(),
        events.breaks(),
        followed.len(),
        per_pid.len(),
        logs.reconnects(),
        logs.failed_opens(),
        logs.breaks(),
        began.elapsed()
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

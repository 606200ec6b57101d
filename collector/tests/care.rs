//! Issue 16 item 4 (and 7's keys): keeping a collector for years, through the real binary on a
//! real SQLite database polled from a simulated host (`fleetdeck-sim`, real HTTP): check-config,
//! a backup taken while it runs, a restore refused under a running collector and done after it
//! stops, one collector per SQLite database (a second on PostgreSQL stands by), a damaged database refused naming the way back, and keys
//! listed and deleted at the command line.

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sim_bench::{bench, LIMIT};

/// Runs `fleetdeck-collector --config CONFIG ARGS...` to its end (20 s at most): whether it
/// succeeded, and its stdout and stderr.
fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(collector_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fleetdeck-collector");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fleetdeck-collector {args:?} did not end within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_running_restore_when_stopped_and_one_collector_per_database() {
    if common::on_postgres() {
        eprintln!("skipped on PostgreSQL: backup and restore copy an SQLite file (pg_dump is PostgreSQL's)");
        return;
    }
    let mut bench = bench().await;
    let dir = bench.config.parent().expect("dir").to_owned();
    let db = dir.join("collector.db");

    let (ok, out) = cli(&bench.config, &["check-config"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("is valid") && out.contains("1 agents") && out.contains("127.0.0.1"),
        "{out}"
    );

    // A second collector on the same database is refused while the first runs.
    let (ok, out) = cli(&bench.config, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("another fleetdeck-collector runs on the database"),
        "{out}"
    );

    // A backup while it polls: consistent, checked, private; never over an existing file.
    wait_for("samples stored", LIMIT, || async {
        (count(&db, "SELECT count(*) FROM samples_raw") > 0).then_some(())
    })
    .await;
    let backup = dir.join("backup.db");
    let (ok, out) = cli(&bench.config, &["backup", backup.to_str().expect("path")]);
    assert!(ok, "{out}");
    assert!(out.contains("checked") && out.contains("1 hosts"), "{out}");
    assert_eq!(
        std::fs::metadata(&backup)
            .expect("backup")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let backed_samples = count(&backup, "SELECT count(*) FROM samples_raw");
    assert!(backed_samples > 0);
    let check: String = rusqlite::Connection::open(&backup)
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let (ok, out) = cli(&bench.config, &["backup", backup.to_str().expect("path")]);
    assert!(!ok && out.contains("never overwrites"), "{out}");

    // A key made after the backup: gone once the backup is restored.
    create_key(&bench.config, "later", "viewer");
    let (ok, out) = cli(&bench.config, &["restore", backup.to_str().expect("path")]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("stop the collector") && out.contains("another fleetdeck-collector"),
        "{out}"
    );
    bench.collector.stop();
    // The state directory belongs to the collector's user and restore runs as root (sudo): the
    // restored database must be that user's, or the collector could not open it.
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown the state dir");
    let (ok, out) = cli(&bench.config, &["restore", backup.to_str().expect("path")]);
    assert!(ok, "{out}");
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&db).expect("restored db");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "the restored db's owner"
        );
    }
    assert!(out.contains("before-restore"), "{out}");
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".before-restore-"))
        .collect();
    assert!(!kept.is_empty(), "the replaced database is kept");
    assert_eq!(
        count(&db, "SELECT count(*) FROM api_keys WHERE name = 'later'"),
        0
    );
    assert!(count(&db, "SELECT count(*) FROM samples_raw") >= backed_samples);

    // The restored database serves: the key made before the backup still works.
    let collector = start_collector(&bench.config);
    let api = Api::new(&collector, &bench.api.key);
    let host = api.json("/v1/hosts/sim").await;
    assert_eq!(host["name"], "sim", "{host}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_naming_the_restore() {
    if common::on_postgres() {
        eprintln!("skipped on PostgreSQL: damages an SQLite file");
        return;
    }
    let work = Workdir::new();
    let config = collector_config(&work, "");
    let db = work.path("collector.db");
    create_key(&config, "root", "admin");
    // Everything into the main file (a write-ahead log the last close left would hold the
    // schema's pages instead, and be read over the damage).
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .expect("checkpoint");
    drop(conn);
    // Pages after the first overwritten: SQLite's quick_check finds it.
    let mut bytes = std::fs::read(&db).expect("db");
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());
    for b in &mut bytes[4096..8192] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).expect("damage");
    let (ok, out) = cli(&config, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("is damaged")
            && out.contains("restore BACKUP.db")
            && out.contains("backup PATH"),
        "{out}"
    );
    // Not a database at all.
    std::fs::write(&db, vec![b'x'; 16384]).expect("garbage");
    let (ok, out) = cli(&config, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("damaged or not a database"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_what_is_wrong() {
    let work = Workdir::new();
    let config = collector_config(
        &work,
        "[[agents]]\nname = \"vm-1\"\nurl = \"http://127.0.0.1:7070\"\ntoken_file = \"vm-1.token\"\n",
    );
    let (ok, out) = cli(&config, &["check-config"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("vm-1.token")
            && out.contains("copy the token of agent \"vm-1\"")
            && !out.contains("random token"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_and_deleted_at_the_command_line_ending_their_streams() {
    let bench = bench().await;
    let key = create_key(&bench.config, "laptop", "viewer");
    let (ok, out) = cli(&bench.config, &["keys", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("laptop\tviewer\t")) && out.contains("root\tadmin"),
        "{out}"
    );
    assert!(
        !out.contains(&key) && !out.contains(&bench.api.key),
        "a key was printed"
    );

    let laptop = Api::new(&bench.collector, &key);
    let mut stream = laptop.sse("/v1/events/stream", None).await;
    let (ok, out) = cli(&bench.config, &["keys", "delete", "laptop"]);
    assert!(ok, "{out}");
    assert_eq!(laptop.get("/v1/fleet").await.status(), 401);
    // Its open stream ends within the collector's key recheck (15 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // `None` is the stream's end, or the deadline passing with the stream still open.
        if stream.next_within(left).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "the deleted key's stream stayed open"
            );
            break;
        }
    }
    let (ok, out) = cli(&bench.config, &["keys", "delete", "laptop"]);
    assert!(!ok && out.contains("no API key named \"laptop\""), "{out}");
    let audit = bench.api.json("/v1/audit").await;
    assert!(
        audit.to_string().contains("key.delete"),
        "the deletion is audited: {audit}"
    );
}

/// On PostgreSQL collectors on other machines share the database: a second one, with its own
/// config, starts as a standby naming the one that leads, serves the API from the shared
/// database (keys included), and leads once the first stops cleanly — without waiting out the
/// lease, because a clean stop lets go of the lock. (`standby.rs` kills and partitions leaders.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_collector_on_a_postgres_database_stands_by_then_leads() {
    if !common::on_postgres() {
        eprintln!("skipped: runs with FLEETDECK_TEST_STORE=postgres");
        return;
    }
    let mut bench = bench().await;
    let text = std::fs::read_to_string(&bench.config).expect("the first config");
    let other = Workdir::new();
    let config = other.write("collector.toml", &text);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    other.secret("sim.token", AGENT_TOKEN);
    let (ok, out) = cli(&config, &["check-config"]);
    assert!(ok, "a second collector's config is fine: {out}");
    let mut second = start_collector(&config);
    let key = create_key(&config, "second", "admin");
    let first = Api::new(&bench.collector, &key);
    let api = Api::new(&second, &key);
    let role = |api: &Api, want: &'static str| {
        let api = api.clone();
        async move {
            let response = api.get("/v1/cluster").await;
            let body: serde_json::Value = response.json().await.ok()?;
            (body["role"] == want).then_some(body)
        }
    };
    let leading = wait_for("the first collector leading", LIMIT, || {
        role(&first, "leader")
    })
    .await;
    let standing = wait_for("the second standing by", LIMIT, || role(&api, "standby")).await;
    assert_eq!(
        standing["leader"], leading["this"],
        "the standby names the leader: {standing}"
    );
    assert!(
        leading["this"]
            .as_str()
            .is_some_and(|who| who.contains(&format!("pid {}", bench.collector.pid()))),
        "{leading}"
    );
    let fleet = api.json("/v1/fleet").await;
    assert!(
        fleet.to_string().contains("\"sim\""),
        "the standby serves the fleet from the database: {fleet}"
    );
    bench.collector.stop();
    let led = wait_for("the second leading", LIMIT, || role(&api, "leader")).await;
    assert!(
        led["epoch"].as_i64() > leading["epoch"].as_i64(),
        "{leading} then {led}"
    );
    second.stop();
}

//! Fault injection on the real test bed, through the real agent binary: the disk holding an app's
//! `.env` fills up during a write (a clear 507, the file whole, no temp file left, the same edit
//! succeeds once space is freed); journald restarts while a client follows a unit's logs (every
//! line journald stored reaches the client once, lines written after the restart included); the
//! podman API service goes down and comes back while the agent is subscribed to its events (the
//! snapshot names the Docker source's error meanwhile, and the agent reconnects by itself).
//!
//! The journald and podman tests stop services every test shares (`testbed/testbed.sh stop|restart`):
//! they take [`BED`] so they never overlap here, and live in this binary of their own so other
//! test binaries (run one after another by cargo) never see a service missing.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use fleetdeck_proto::{
    AppEvent, AppState, EnvFile, EnvWritten, EventSource, Exit, LogEntry, Snapshot, SourceHealth,
};
use serde_json::json;

/// Held by each test that stops a shared service.
static BED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// With samples a minute apart, an event within seconds can only come from a watcher.
const SLOW_SAMPLES: &str = "sample_interval = \"60s\"\n";

fn testbed_sh() -> String {
    format!("{}/../testbed/testbed.sh", env!("CARGO_MANIFEST_DIR"))
}

/// `testbed.sh stop NAME`, undone by `testbed.sh restart NAME` when dropped, so a failing test
/// cannot leave the shared bed without the service.
struct HeldDown {
    name: Option<&'static str>,
}

impl HeldDown {
    fn stop(name: &'static str) -> Self {
        run(&testbed_sh(), &["stop", name]);
        Self { name: Some(name) }
    }

    /// Starts the service again (as `up` does) and waits until it answers; the time it took.
    fn restart(mut self) -> Duration {
        let name = self.name.take().expect("not restarted yet");
        restart(name)
    }
}

impl Drop for HeldDown {
    fn drop(&mut self) {
        if let Some(name) = self.name {
            let _ = Command::new(testbed_sh()).args(["restart", name]).status();
        }
    }
}

/// `testbed.sh restart NAME`: the instance the bed started is stopped, started again and waited
/// for. Returns how long the service was away.
fn restart(name: &str) -> Duration {
    let t0 = Instant::now();
    run(&testbed_sh(), &["restart", name]);
    t0.elapsed()
}

// ------------------------------------------------------------------------------- disk full

/// A tmpfs of `size` mounted on a fresh temp dir, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mountpoint = dir.path().to_str().expect("utf-8 temp path");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "fdtest-full",
                mountpoint,
            ],
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("read tmpfs dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let dir = self.dir.path().to_owned();
        let unmounted = Command::new("umount")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file open: detach it now, the kernel frees it after.
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
    }
}

/// Writes `path` until the filesystem refuses; the error it refused with.
fn fill(path: &Path) -> std::io::Error {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = [0x5a_u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => return std::io::Error::other("write accepted nothing"),
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

async fn put_env(agent: &RunningAgent, etag: &str, body: &serde_json::Value) -> reqwest::Response {
    agent
        .client
        .put(agent.url("/v1/apps/web/env"))
        .bearer_auth(TOKEN)
        .header("If-Match", format!("\"{etag}\""))
        .json(body)
        .send()
        .await
        .expect("PUT env")
}

#[tokio::test]
async fn a_full_disk_refuses_the_write_clearly_and_leaves_the_file_whole() {
    const SECRET: &str = "s3cret-disk-full-value";
    secret(SECRET);
    let fs = Tmpfs::mount("64k");
    let env = fs.path().join(".env");
    let original = format!("# app\nPORT=8080\nDB_PASSWORD={SECRET}\n");
    std::fs::write(&env, &original).expect("write .env");
    let work = Workdir::new();
    let mut agent = RunningAgent::start(&work.config(&format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\nenv_file = \"{}\"\n",
        env.display()
    )));
    let read: EnvFile =
        serde_json::from_value(agent.get_json("/v1/apps/web/env").await).expect("EnvFile");

    let full = fill(&fs.path().join("filler"));
    assert_eq!(
        full.kind(),
        std::io::ErrorKind::StorageFull,
        "the filler stops at ENOSPC: {full}"
    );
    let edit = json!({"set": {"PORT": "9090"}});
    let resp = put_env(&agent, &read.etag, &edit).await;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("error body");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "disk_full", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    for needle in [
        env.to_str().expect("utf-8"),
        "is full",
        "the file is unchanged",
        "Free space",
        "send the same edit again",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    assert!(!message.contains(SECRET));
    assert_eq!(
        std::fs::read_to_string(&env).expect("read .env"),
        original,
        "byte for byte"
    );
    assert_eq!(
        fs.names(),
        [".env", "filler"],
        "no temp file and no backup are left"
    );

    std::fs::remove_file(fs.path().join("filler")).expect("free the space");
    let resp = put_env(&agent, &read.etag, &edit).await;
    assert_eq!(resp.status(), 200, "the same edit once there is room");
    let written: EnvWritten = resp.json().await.expect("EnvWritten");
    assert_eq!(
        std::fs::read_to_string(&env).expect("read .env"),
        original.replace("PORT=8080", "PORT=9090")
    );
    let after: EnvFile =
        serde_json::from_value(agent.get_json("/v1/apps/web/env").await).expect("EnvFile");
    assert_eq!(after.etag, written.etag);
    assert_eq!(fs.names(), ["..env.fleetdeck-backup.1", ".env"]);

    let logs = agent.logs().join("\n");
    assert!(
        logs.contains("disk_full") || logs.contains("is full"),
        "{logs}"
    );
    assert!(!logs.contains(SECRET), "a value reached the log");
    drop(agent);
}

// ------------------------------------------------------------------------ journald restart

/// A unit's writer of numbered lines, `fdline N` every 20 ms, each one a datagram of journald's
/// native protocol sent by path (as `sd_journal_send` does): a restarted journald (a new socket)
/// gets the next line, and a line refused while it is down is sent again, so each number leaves
/// the writer once. (A unit's stdout stream would not do here: without a systemd PID 1 to keep
/// the streams in its fd store, journald's restart cuts them and nothing after it is stored.)
/// Perl from perl-base (Debian's essential set): select() as the pause, no Time::HiRes.
const WRITER: &str = r#"use strict; use warnings; use Socket;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
my $to = pack_sockaddr_un("/run/systemd/journal/socket");
for (my $i = 1; ; $i++) {
    select(undef, undef, undef, 0.01) until defined send($s, "MESSAGE=fdline $i\n", 0, $to);
    select(undef, undef, undef, 0.02);
}
"#;

fn number(message: &str) -> Option<u64> {
    message.strip_prefix("fdline ")?.parse().ok()
}

/// What journald holds for `unit`, oldest first, as (cursor, message): asked the way the agent
/// asks (`--user-unit`).
fn journal(unit: &str) -> Vec<(String, String)> {
    let out = Command::new("journalctl")
        .args([
            &format!("--user-unit={unit}"),
            "--output=json",
            "--output-fields=MESSAGE",
            "--all",
            "--no-pager",
            "--quiet",
        ])
        .output()
        .expect("run journalctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((
                v["__CURSOR"].as_str()?.to_owned(),
                v["MESSAGE"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn newest_number(entries: impl DoubleEndedIterator<Item = impl AsRef<str>>) -> u64 {
    entries.rev().find_map(|m| number(m.as_ref())).unwrap_or(0)
}

/// Reads log entries from `stream` into `got` until `done(got)`, failing after `limit`. A stream
/// that ends (the agent's follow died) fails at once.
async fn read_until(
    stream: &mut SseStream,
    got: &mut Vec<LogEntry>,
    what: &str,
    limit: Duration,
    done: impl Fn(&[LogEntry]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out after {limit:?} waiting for {what}; {} entries received, the last {:?}",
            got.len(),
            got.last().map(|e| &e.message)
        );
        let wait = left.min(Duration::from_millis(500));
        let t0 = Instant::now();
        match stream.next_within(wait).await {
            Some(ev) if ev.event.as_deref() == Some("log") => {
                got.push(serde_json::from_str(&ev.data).expect("LogEntry JSON"));
            }
            Some(_) => {}
            None => assert!(
                t0.elapsed() >= wait / 2,
                "the log stream ended while waiting for {what} (after {} entries)",
                got.len()
            ),
        }
    }
}

#[tokio::test]
async fn a_journald_restart_loses_nothing_journald_stored_for_a_follower() {
    require_testbed();
    let _bed = BED.lock().await;
    let work = Workdir::new();
    let writer = work.path("writer.pl");
    std::fs::write(&writer, WRITER).expect("write writer.pl");
    let unit = TransientUnit::start("jrestart", &[], &format!("exec perl {}", writer.display()));
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let mut stream = agent.sse("/v1/apps/web/logs/stream", None).await;
    let mut got: Vec<LogEntry> = Vec::new();
    read_until(
        &mut stream,
        &mut got,
        "20 lines before the restart",
        Duration::from_secs(15),
        |g| g.iter().filter(|e| number(&e.message).is_some()).count() >= 20,
    )
    .await;
    let before = newest_number(got.iter().map(|e| &e.message));

    let away = tokio::task::spawn_blocking(|| restart("journald"))
        .await
        .expect("restart journald");
    // Written, and stored, after journald was back: the restart is behind every line after it.
    let stored_after = newest_number(journal(&unit.name).iter().map(|(_, m)| m));
    read_until(
        &mut stream,
        &mut got,
        "50 lines written after the restart",
        Duration::from_secs(15),
        |g| newest_number(g.iter().map(|e| &e.message)) >= stored_after + 50,
    )
    .await;

    run("systemctl", &["--user", "stop", &unit.name]);
    // The writer has stopped: the client must end up with exactly what journald holds from its
    // first entry on (systemd's own "Stopping…/Stopped…" lines for the unit included).
    let deadline = Instant::now() + Duration::from_secs(15);
    let (stored, want) = loop {
        let stored = journal(&unit.name);
        let first = stored
            .iter()
            .position(|(c, _)| *c == got[0].cursor)
            .expect("the client's first entry is in the journal");
        let want: Vec<(String, String)> = stored[first..].to_vec();
        let have: Vec<(String, String)> = got
            .iter()
            .map(|e| (e.cursor.clone(), e.message.clone()))
            .collect();
        if have == want || Instant::now() >= deadline {
            assert_eq!(
                have, want,
                "the client got what journald stored, in order, each once"
            );
            break (stored, want);
        }
        while let Some(ev) = stream.next_within(Duration::from_millis(300)).await {
            if ev.event.as_deref() == Some("log") {
                got.push(serde_json::from_str(&ev.data).expect("LogEntry JSON"));
            }
        }
    };
    let cursors: HashSet<&str> = got.iter().map(|e| e.cursor.as_str()).collect();
    assert_eq!(cursors.len(), got.len(), "no entry twice");

    // What journald lost: numbers the writer sent but the journal does not hold. They can only be
    // lines sent while it was going down (queued in its socket as it exited), never later ones.
    let numbers: Vec<u64> = want.iter().filter_map(|(_, m)| number(m)).collect();
    let (first, last) = (numbers[0], numbers[numbers.len() - 1]);
    let held: HashSet<u64> = numbers.iter().copied().collect();
    let lost: Vec<u64> = (first..=last).filter(|n| !held.contains(n)).collect();
    assert!(
        lost.iter().all(|n| *n > before && *n <= stored_after),
        "journald lost lines {lost:?} outside its restart (lines {before}..={stored_after})"
    );
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    eprintln!(
        "journald restart: away {away:?}; the client got all {} entries journald stored from its first on \
         ({} numbered, lines {first}..={last}, {} of them written after the restart); journald lost \
         {lost:?} of the lines sent while it went down (after line {before}); {} entries of the unit in all",
        want.len(),
        numbers.len(),
        numbers.iter().filter(|n| **n > stored_after).count(),
        stored.len(),
    );
}

// -------------------------------------------------------------------- podman API restart

fn transition(ev: &SseEvent) -> Option<AppEvent> {
    (ev.event.as_deref() == Some("transition"))
        .then(|| serde_json::from_str(&ev.data).expect("AppEvent JSON"))
}

async fn snapshot(agent: &RunningAgent) -> Snapshot {
    serde_json::from_value(agent.get_json("/v1/snapshot").await).expect("Snapshot")
}

fn app<'a>(snap: &'a Snapshot, name: &str) -> &'a fleetdeck_proto::AppStatus {
    snap.apps
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("app {name} in the snapshot"))
}

#[tokio::test]
async fn the_agent_resubscribes_by_itself_after_the_podman_api_restarts() {
    require_testbed();
    let _bed = BED.lock().await;
    let c = Container::run("prestart", &[], &["sleep", "100000"]);
    let unit = TransientUnit::start("prestart", &[], "while true; do sleep 1; done");
    let work = Workdir::new();
    let mut agent = RunningAgent::start(&work.config(&format!(
        "{SLOW_SAMPLES}{}{}",
        container_app("cache", &c.name),
        unit_app("svc", &unit.name)
    )));
    agent.wait_state("cache", AppState::Running).await;
    agent.wait_state("svc", AppState::Running).await;
    let instance = agent.get_json("/v1/info").await["instance_id"].clone();
    let pid = agent.pid();
    let mut events = agent.sse("/v1/events", None).await;

    // podman's API is down: the snapshot still answers, with the Docker source's error on the
    // container's app and in `sources`, and everything else as usual.
    let down = HeldDown::stop("podman");
    let snap = snapshot(&agent).await;
    let SourceHealth::Down { error } = &snap.sources.docker else {
        panic!("the docker source is down: {:?}", snap.sources)
    };
    let socket = std::env::var("DOCKER_HOST").expect("DOCKER_HOST");
    assert!(
        error.contains(socket.trim_start_matches("unix://")),
        "the error names the socket: {error}"
    );
    let cache = app(&snap, "cache");
    assert_eq!(
        (cache.state, cache.error.as_ref()),
        (AppState::Unknown, Some(error))
    );
    assert_eq!(app(&snap, "svc").state, AppState::Running);
    assert_eq!(snap.sources.systemd, SourceHealth::Up);
    assert!(snap.host.memory.total_bytes > 0, "host metrics are there");

    // Back, and twice more in a row (an engine upgraded, then restarted again): each time the
    // agent's watch is back within a few seconds of podman answering. Its retry delay starts from
    // 0.5 s again once connected; when it did not, the delay grew with every outage (2 s, 4 s,
    // ... up to 30 s) and the third reconnection already took seconds longer.
    let mut away = vec![tokio::task::spawn_blocking(move || down.restart())
        .await
        .expect("restart podman")];
    let mut resubscribed = Vec::new();
    for cycle in 1..=3 {
        if cycle > 1 {
            away.push(
                tokio::task::spawn_blocking(|| restart("podman"))
                    .await
                    .expect("restart podman"),
            );
        }
        let answered = Instant::now();
        wait_for(
            &format!("the agent to log that its Docker event watch is back ({cycle} times)"),
            // The watch retries with backoff (up to 30 s), reset only after a stream that lasted.
            Duration::from_secs(35),
            || {
                let n = agent
                    .logs()
                    .iter()
                    .filter(|l| l.contains("Docker event watch is back"))
                    .count();
                async move { (n >= cycle).then_some(()) }
            },
        )
        .await;
        resubscribed.push(answered.elapsed());
    }

    let killed = Instant::now();
    run("podman", &["kill", "--signal", "KILL", &c.name]);
    let e = events
        .wait_for("the crash transition", Duration::from_secs(5), |ev| {
            transition(ev).filter(|e| e.app == "cache" && e.to == AppState::Failed)
        })
        .await;
    let latency = killed.elapsed();
    assert_eq!(
        (e.from, e.source, e.exit),
        (
            AppState::Running,
            EventSource::Docker,
            Some(Exit::Code(137))
        ),
        "from the Docker event, not a poll: {e:?}"
    );
    let snap = snapshot(&agent).await;
    assert_eq!(snap.sources.docker, SourceHealth::Up);
    let cache = app(&snap, "cache");
    assert_eq!(
        (cache.state, cache.last_exit, cache.error.as_ref()),
        (AppState::Failed, Some(Exit::Code(137)), None)
    );
    assert_eq!(
        (
            agent.pid(),
            agent.get_json("/v1/info").await["instance_id"].clone()
        ),
        (pid, instance),
        "the same agent, never restarted"
    );
    eprintln!(
        "podman restarts: away {away:?}; the agent's event watch back {resubscribed:?} after podman answered; \
         kill -> crash event {latency:?}"
    );
}

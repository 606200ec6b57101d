//! Soak: the agent with every kind of stream open at once, for SOAK_SECS (default 600): a snapshot
//! poll every second, a journald log follow (a unit writing 10 numbered lines a second), a Docker
//! log follow (a container doing the same) and an events subscription (a unit that fails every
//! ~30 s and is restarted by systemd, so transitions keep coming). Prints the agent's RSS every
//! 30 s, its growth after a 60 s warm-up (target < 1 MiB), and each stream's health: none may end,
//! and the numbered lines must arrive without a gap or a repeat. Exits 1 if any of that is missed.
//! Writes the report to $SOAK_OUT/agent-soak.txt too (default ~/.cache/fleetdeck-soak).
//! Run with scripts/bench-agent.sh soak.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetdeck_testkit::{Container, TransientUnit};
use support::*;

/// A chatty app's lines: `<word> <n> ...`, n counting up from 1 by one.
const CHATTY: &str =
    "i=0; while true; do i=$((i+1)); echo \"request $i served in 12ms\"; sleep 0.1; done";

/// What one stream's reader saw.
#[derive(Debug, Default)]
struct Health {
    received: u64,
    first: Option<u64>,
    last: Option<u64>,
    /// Numbers skipped between two lines received (lost lines).
    lost: u64,
    /// Lines whose number was not above the previous one (repeats, disorder).
    repeated: u64,
    /// When the stream ended (it should not), seconds into the run.
    ended_at: Option<u64>,
    /// Seconds into the run of the newest item.
    last_at: u64,
}

impl Health {
    fn line(&mut self, number: Option<u64>, at: u64) {
        self.received += 1;
        self.last_at = at;
        let Some(n) = number else { return };
        match self.last {
            Some(last) if n <= last => self.repeated += 1,
            Some(last) => self.lost += n - last - 1,
            None => self.first = Some(n),
        }
        if self.last.is_none_or(|l| n > l) {
            self.last = Some(n);
        }
    }
}

/// The number in a chatty line (`request 42 served in 12ms` -> 42).
fn line_number(data: &str) -> Option<u64> {
    let entry: serde_json::Value = serde_json::from_str(data).ok()?;
    entry["message"]
        .as_str()?
        .split_whitespace()
        .find_map(|w| w.parse().ok())
}

/// Reads `stream` until it ends, counting into `health` (numbered lines when `numbered`).
fn follow(mut stream: Sse, health: Arc<Mutex<Health>>, numbered: bool, start: Instant) {
    tokio::spawn(async move {
        // A quiet stream still gets the agent's keep-alives: only an end (or a day of silence)
        // makes next_data return None.
        while let Some(data) = stream.next_data(Duration::from_secs(86_400)).await {
            let number = if numbered { line_number(&data) } else { None };
            health
                .lock()
                .expect("no reader panics holding the lock")
                .line(number, start.elapsed().as_secs());
        }
        health
            .lock()
            .expect("no reader panics holding the lock")
            .ended_at = Some(start.elapsed().as_secs());
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let web = TransientUnit::start("fdsoak-web", &[], CHATTY);
    let cache = Container::run("fdsoak-cache", &[], &["sh", "-c", CHATTY]);
    // Fails every 25 s and is restarted 5 s later: a failed and a running transition each time.
    let blip = TransientUnit::start(
        "fdsoak-blip",
        &["Restart=always", "RestartSec=5"],
        "sleep 25; exit 3",
    );
    let apps = format!(
        "[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\n\
         [[apps]]\nname = \"cache\"\ndocker_container = \"{}\"\n\
         [[apps]]\nname = \"blip\"\nsystemd_unit = \"{}\"\n",
        web.name, cache.name, blip.name
    );
    let agent = Agent::start(&format!("sample_interval = \"1s\"\n{apps}")).await;
    let pid = agent.pid();

    let start = Instant::now();
    let streams = [
        (
            "journald log follow (web)",
            "/v1/apps/web/logs/stream",
            true,
        ),
        (
            "container log follow (cache)",
            "/v1/apps/cache/logs/stream",
            true,
        ),
        ("events", "/v1/events", false),
    ];
    let mut health = Vec::new();
    for (name, path, numbered) in streams {
        let h = Arc::new(Mutex::new(Health::default()));
        follow(
            Sse::open(&agent.url(path)).await,
            h.clone(),
            numbered,
            start,
        );
        health.push((name, h));
    }

    let client = reqwest::Client::new();
    let mut curve = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut snapshots = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let r = client
            .get(agent.url("/v1/snapshot"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("snapshot");
        assert!(r.status().is_success());
        r.bytes().await.expect("body");
        snapshots += 1;
        let t = start.elapsed().as_secs();
        if t.is_multiple_of(30) && curve.last().is_none_or(|(last, _)| *last != t) {
            curve.push((t, status_kib(pid, "VmRSS:")));
        }
    }
    let end = start.elapsed().as_secs();
    curve.push((end, status_kib(pid, "VmRSS:")));

    let mut report = String::new();
    let mut say = |line: String| {
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    };
    say(format!("agent binary: {}", agent_bin().display()));
    say(format!(
        "{secs} s, {snapshots} snapshots (1 a second), sample_interval 1 s; open at once: a journald log follow, a container log follow, an events subscription\n"
    ));
    say("| t (s) | RSS (KiB) |".into());
    say("| --- | --- |".into());
    for (t, kib) in &curve {
        say(format!("| {t} | {kib} |"));
    }
    let warm = curve
        .iter()
        .find(|(t, _)| *t >= 60)
        .map_or(curve[0].1, |(_, k)| *k);
    let last = curve.last().map_or(warm, |(_, k)| *k);
    let growth = last as i64 - warm as i64;
    let rss_ok = growth < 1024;
    say(format!(
        "\nRSS after warm-up (60 s): {warm} KiB; at the end: {last} KiB; growth {growth} KiB (target < 1024 KiB: {})",
        if rss_ok { "met" } else { "MISSED" }
    ));

    say(
        "\n| stream | items | numbered first..last | lost | repeated | newest at (s) | ended |"
            .into(),
    );
    say("| --- | --- | --- | --- | --- | --- | --- |".into());
    let mut streams_ok = true;
    for (name, h) in &health {
        let h = h.lock().expect("no reader panics holding the lock");
        let numbered = match (h.first, h.last) {
            (Some(f), Some(l)) => format!("{f}..{l}"),
            _ => "-".into(),
        };
        // A live chatty stream has a line from the last few seconds; the events stream one from
        // the blip unit's last cycle (every ~30 s).
        let quiet_limit = if name.starts_with("events") { 65 } else { 5 };
        let ok = h.ended_at.is_none()
            && h.lost == 0
            && h.repeated == 0
            && h.received > 0
            && end.saturating_sub(h.last_at) <= quiet_limit;
        streams_ok &= ok;
        say(format!(
            "| {name} | {} | {numbered} | {} | {} | {} | {} |",
            h.received,
            h.lost,
            h.repeated,
            h.last_at,
            h.ended_at.map_or("no".into(), |t| format!("at {t} s")),
        ));
    }
    say(format!(
        "streams: {}",
        if streams_ok {
            "all open to the end, no line lost or repeated"
        } else {
            "MISSED (a stream ended, went quiet, or lost or repeated lines)"
        }
    ));

    let dir = std::env::var_os("SOAK_OUT").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/fleetdeck-soak")
        },
        std::path::PathBuf::from,
    );
    let file = dir.join("agent-soak.txt");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &report)) {
        Ok(()) => println!("report written to {}", file.display()),
        Err(e) => eprintln!("cannot write the report to {}: {e}", file.display()),
    }
    drop(agent);
    drop((web, cache, blip));
    if !(rss_ok && streams_ok) {
        std::process::exit(1);
    }
}

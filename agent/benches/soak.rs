//! Soak: the agent under 1 snapshot a second, one live log follower and one events subscriber,
//! for SOAK_SECS (default 600). Prints its RSS every 30 s and the growth after a 60 s warm-up
//! (target < 1 MiB). Run with scripts/bench-agent.sh soak.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    // A chatty unit (10 lines a second) and a container.
    let apps = BenchApps::start(
        "soak",
        &[],
        "i=0; while true; do i=$((i+1)); echo \"request $i served in 12ms\"; sleep 0.1; done",
    );
    let agent = Agent::start(&format!("sample_interval = \"1s\"\n{}", apps.apps_toml())).await;
    let pid = agent.pid();
    let mut logs = Sse::open(&agent.url("/v1/apps/web/logs/stream")).await;
    let mut events = Sse::open(&agent.url("/v1/events")).await;
    let log_lines = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = log_lines.clone();
    tokio::spawn(async move {
        while logs.next_data(Duration::from_secs(30)).await.is_some() {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    tokio::spawn(
        async move { while events.next_data(Duration::from_secs(3600)).await.is_some() {} },
    );

    let client = reqwest::Client::new();
    let start = Instant::now();
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
    curve.push((start.elapsed().as_secs(), status_kib(pid, "VmRSS:")));

    println!("agent binary: {}", agent_bin().display());
    println!("{secs} s, {snapshots} snapshots, {} log lines followed, 1 events subscriber, sample_interval 1 s\n", log_lines.load(std::sync::atomic::Ordering::Relaxed));
    println!("| t (s) | RSS (KiB) |");
    println!("| --- | --- |");
    for (t, kib) in &curve {
        println!("| {t} | {kib} |");
    }
    let warm = curve
        .iter()
        .find(|(t, _)| *t >= 60)
        .map_or(curve[0].1, |(_, k)| *k);
    let end = curve.last().map_or(warm, |(_, k)| *k);
    let growth = end as i64 - warm as i64;
    println!(
        "\nRSS after warm-up (60 s): {warm} KiB; at the end: {end} KiB; growth {growth} KiB (target < 1024 KiB: {})",
        if growth < 1024 { "met" } else { "MISSED" }
    );
}

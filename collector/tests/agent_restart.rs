//! An agent restarted in place (an upgrade: SIGTERM, the same state directory, a new process)
//! while the collector was away leaves no hole in the collector's history: the agent saves its
//! sample ring when it stops and serves it again under its new instance, and the collector stores
//! the samples it missed and ignores those it has.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn start_agent_with_state(config: &std::path::Path, state: &std::path::Path) -> Daemon {
    Daemon::spawn(
        Command::new(agent_bin())
            .arg("--config")
            .arg(config)
            .env("STATE_DIRECTORY", state),
        "fleetdeck-agent with a state directory",
        RUST_LOG,
    )
}

/// Every stored seq of `host` (whatever the instance), in order, with repeats.
fn all_seqs(work: &Workdir, host: &str) -> Vec<i64> {
    let mut seqs: Vec<i64> = stored_seqs(work, host)
        .into_iter()
        .flat_map(|(_, s)| s)
        .collect();
    seqs.sort_unstable();
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_while_the_collector_was_away_leaves_no_hole() {
    let work = Workdir::new();
    let state = work.path("agent-state");
    std::fs::create_dir(&state).expect("state dir");
    let config = agent_config(&work, "web1", "127.0.0.1:0", "");
    let mut agent = start_agent_with_state(&config, &state);
    // The restarted agent listens where the collector looks for it.
    let config = agent_config(&work, "web1", &agent.addr.to_string(), "");
    let collector_config = collector_config(&work, &agent_entry("web1", agent.addr));
    let mut collector = start_collector(&collector_config);
    let first = wait_for("three samples stored", Duration::from_secs(20), || async {
        let seqs = all_seqs(&work, "web1");
        (seqs.len() >= 3).then_some(seqs)
    })
    .await;
    collector.stop();

    // While the collector is away, the agent takes samples it never fetches; then it restarts.
    let http = reqwest::Client::new();
    let base = format!("http://{}", agent.addr);
    let stored_max = *first.last().expect("stored");
    let before_stop = wait_for(
        "three samples the collector has not fetched",
        Duration::from_secs(20),
        || async {
            agent_latest_seq(&http, &base)
                .await
                .filter(|&l| l >= stored_max + 3)
        },
    )
    .await;
    agent.stop();
    assert!(
        agent.logs().iter().any(|l| l.contains("samples saved")),
        "the agent said it saved its samples: {:?}",
        agent.logs()
    );
    let mut agent = start_agent_with_state(&config, &state);
    // (It binds, and says so, before it reads the saved ring and serves.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent.logs().iter().any(|l| l.contains("took back")) {
        assert!(
            Instant::now() < deadline,
            "the restarted agent did not say it took its samples back: {:?}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let page: serde_json::Value = http
        .get(format!("{base}/v1/samples?after=0&limit=1"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .expect("samples")
        .json()
        .await
        .expect("json");
    assert_eq!(
        page["oldest_seq"], 1,
        "the saved ring is served again: {page}"
    );

    let _collector = start_collector(&collector_config);
    let seqs = wait_for(
        "the new instance's samples stored after the old one's",
        Duration::from_secs(30),
        || async {
            let per_instance = stored_seqs(&work, "web1");
            let seqs = all_seqs(&work, "web1");
            (per_instance.len() == 2 && seqs.last().is_some_and(|&s| s > before_stop + 1))
                .then_some(seqs)
        },
    )
    .await;
    // Every seq from the first to the newest, each once: what the collector missed while it was
    // away is backfilled from the restarted agent, and what it had is not stored twice.
    assert_eq!(seqs.first(), Some(&1));
    assert_contiguous(&seqs, "across the agent's restart");
    // The state file was taken: a crash now (which saves nothing) cannot serve it again.
    assert!(!state.join("samples.jsonl").exists());
    agent.stop();
}

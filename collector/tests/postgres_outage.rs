//! A collector storing in PostgreSQL rides out a restart of the server: while it is gone the API
//! says the database is unavailable (503, not a 500 or a wrong answer), the collector keeps
//! running, and once the server is back the same collector serves again and the agent's samples
//! of the outage are backfilled with no gap. Runs with `FLEETDECK_TEST_STORE=postgres` (the
//! second pass of scripts/test.sh); in a test binary of its own, as it stops the test bed's server
//! that the other tests' collectors use.

mod common;

use std::time::Duration;

use common::*;

fn testbed_pg(verb: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed/testbed.sh");
    run(script, &["pg", verb]);
}

/// Starts the test bed's server again even when the test fails half-way.
struct PgUpOnDrop;

impl Drop for PgUpOnDrop {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed/testbed.sh");
        let _ = std::process::Command::new(script)
            .args(["pg", "up"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_ridden_out_with_no_sample_gap() {
    if !on_postgres() {
        eprintln!("skipped: runs with FLEETDECK_TEST_STORE=postgres");
        return;
    }
    require_testbed();
    let unit = TransientUnit::start("pgout", &[], "while true; do echo tick; sleep 1; done");
    let work = Workdir::new();
    let agent_config = agent_config(&work, "vm", "127.0.0.1:0", &unit_app("web", &unit.name));
    let agent = start_agent(&agent_config);
    let config = collector_config(&work, &agent_entry("vm", agent.addr));
    let admin = create_key(&config, "admin", "admin");
    let mut collector = start_collector(&config);
    let api = Api::new(&collector, &admin);
    wait_for("samples stored", Duration::from_secs(20), || async {
        let seqs = stored_seqs(&work, "vm");
        seqs.first()
            .is_some_and(|(_, s)| s.len() >= 3)
            .then_some(())
    })
    .await;
    let before = stored_seqs(&work, "vm")[0].1.last().copied().unwrap_or(0);

    let _up = PgUpOnDrop;
    testbed_pg("down");
    let during = wait_for(
        "the API to say the database is unavailable",
        Duration::from_secs(20),
        || async {
            let r = api.get("/v1/fleet").await;
            (r.status() == 503).then_some(r)
        },
    )
    .await;
    let body: serde_json::Value = during.json().await.expect("an error body");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    // The agent samples on meanwhile; the collector keeps polling it and failing to store.
    let agent_http = reqwest::Client::new();
    let base = format!("http://{}", agent.addr);
    wait_for(
        "the agent to sample on",
        Duration::from_secs(20),
        || async {
            agent_latest_seq(&agent_http, &base)
                .await
                .filter(|s| *s >= before + 3)
        },
    )
    .await;
    assert!(
        collector.wait_exit(Duration::ZERO).is_none(),
        "the collector must not end when its database goes away"
    );

    testbed_pg("up");
    let latest = agent_latest_seq(&agent_http, &base)
        .await
        .expect("the agent's latest seq");
    wait_for(
        "the fleet served again and the outage's samples backfilled",
        Duration::from_secs(60),
        || async {
            if api.get("/v1/fleet").await.status() != 200 {
                return None;
            }
            let seqs = stored_seqs(&work, "vm");
            seqs.first()
                .is_some_and(|(_, s)| s.last().is_some_and(|l| *l >= latest))
                .then_some(())
        },
    )
    .await;
    let seqs = stored_seqs(&work, "vm");
    assert_eq!(seqs.len(), 1, "one agent instance: {seqs:?}");
    assert_contiguous(&seqs[0].1, "samples across the PostgreSQL restart");
    let host = api.json("/v1/hosts/vm").await;
    assert_eq!(host["status"], "up", "{host}");
    collector.stop();
}

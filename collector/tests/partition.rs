//! A real agent on a second "host" (the test bed's network namespace) is partitioned from the
//! collector and healed, with a collector restart in between: exactly one down alert and one
//! recovery reach a real webhook receiver, and the stored samples have no gap (the agent's ring
//! buffer is backfilled).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_heal_alert_once_each_and_leave_no_gap() {
    require_testbed();
    testbed_net("up");
    let unit = TransientUnit::start("part", &[], "while true; do echo tick; sleep 1; done");
    let work = Workdir::new();
    let agent_config = agent_config(&work, "far", "10.99.0.2:0", &unit_app("web", &unit.name));
    let agent = start_agent_in_netns(&agent_config);

    let receiver = Receiver::start().await;
    let config = collector_config(
        &work,
        &format!(
            "down_after = 2\n[alerts]\ngrace = \"0s\"\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n{}",
            receiver.url(),
            agent_entry("far", agent.addr)
        ),
    );
    let admin = create_key(&config, "admin", "admin");
    let mut collector = start_collector(&config);
    let mut api = Api::new(&collector, &admin);

    wait_for(
        "the host up with samples stored",
        Duration::from_secs(20),
        || async {
            let host = api.json("/v1/hosts/far").await;
            let seqs = stored_seqs(&work, "far");
            (host["status"] == "up" && seqs.first().is_some_and(|(_, s)| s.len() >= 3))
                .then_some(())
        },
    )
    .await;

    let _heal = HealOnDrop;
    testbed_net("drop"); // silent: packets vanish, connects time out
    wait_for("the down alert", Duration::from_secs(20), || async {
        (receiver.alerts("problem", "far", None) >= 1).then_some(())
    })
    .await;
    let host = api.json("/v1/hosts/far").await;
    assert_eq!(host["status"], "down", "{host}");
    // The collector restarts during the partition: it remembers the host is down and that this
    // was alerted, so it neither alerts again nor forgets to send the recovery.
    collector.stop();
    collector = start_collector(&config);
    api = Api::new(&collector, &admin);
    let host = api.json("/v1/hosts/far").await;
    assert_eq!(host["status"], "down", "{host}");
    // The agent samples on while the collector cannot see it: ask it from inside its namespace.
    let stored_max = stored_seqs(&work, "far")[0].1.last().copied().unwrap_or(0);
    let agent_url = format!("http://{}/v1/samples?after=0&limit=1", agent.addr);
    let latest_inside = || {
        let out = std::process::Command::new("nsenter")
            .arg("--net=/run/netns/tb-agent")
            .args(["curl", "-sf", "-m", "2", "-H"])
            .arg(format!("Authorization: Bearer {AGENT_TOKEN}"))
            .arg(&agent_url)
            .output()
            .ok()?;
        let page: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        page["latest_seq"].as_i64()
    };
    let agent_latest = wait_for(
        "5 samples taken during the partition",
        Duration::from_secs(20),
        || async { latest_inside().filter(|l| *l >= stored_max + 5) },
    )
    .await;
    testbed_net("heal");

    wait_for("the recovery alert", Duration::from_secs(20), || async {
        (receiver.alerts("recovery", "far", None) >= 1).then_some(())
    })
    .await;
    let seqs = wait_for("the backfill", Duration::from_secs(20), || async {
        let seqs = stored_seqs(&work, "far");
        let last = seqs.first()?.1.last().copied().unwrap_or(0);
        (last >= agent_latest).then_some(seqs)
    })
    .await;
    assert_eq!(seqs.len(), 1, "one agent instance");
    assert_contiguous(&seqs[0].1, "after partition and heal");

    // A few more polls: nothing else is sent.
    let seen = api.json("/v1/hosts/far").await["last_seen_unix_ms"]
        .as_u64()
        .unwrap_or(0);
    wait_for("three more polls", Duration::from_secs(20), || async {
        let now = api.json("/v1/hosts/far").await["last_seen_unix_ms"]
            .as_u64()
            .unwrap_or(0);
        (now >= seen + 3000).then_some(())
    })
    .await;
    assert_eq!(
        receiver.alerts("problem", "far", None),
        1,
        "{:?}",
        receiver.received()
    );
    assert_eq!(
        receiver.alerts("recovery", "far", None),
        1,
        "{:?}",
        receiver.received()
    );
    assert_eq!(
        receiver.received().len(),
        2,
        "only the host's down and recovery alerts: {:?}",
        receiver.received()
    );
    let events = api.json("/v1/events?host=far").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["host-up", "host-down"], "newest first: {events}");
    // The alert history holds both, each delivered once.
    let delivered: i64 = db(&work)
        .run(|c| {
            c.query_row(
                "SELECT count(*) FROM alert_deliveries WHERE status = 200",
                fleetdeck_collector::params![],
                |r| r.get(0),
            )
        })
        .expect("count");
    assert_eq!(delivered, 2);
}

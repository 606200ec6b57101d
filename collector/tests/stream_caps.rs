//! The collector's caps on what clients hold open, against the real collector and a real agent:
//! proxied log follows per key and per host, event streams per key, each refused with 429 or 503
//! and `Retry-After` before the agent is asked, freed when a client leaves; the agent keeps
//! answering and another host keeps its polls meanwhile.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_testkit::{assert_refused, require_testbed, Daemon, TransientUnit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_and_event_streams_are_capped_per_key_and_per_host() {
    require_testbed();
    let unit = TransientUnit::start("streamcaps", &[], "echo hello; sleep 100000");
    let work = Workdir::new();
    let agent = start_agent(&agent_config(
        &work,
        "web1",
        "127.0.0.1:0",
        &unit_app("web", &unit.name),
    ));
    let config = collector_config(&work, &agent_entry("web1", agent.addr));
    // Started as a shell without a unit would start it: 1,024 descriptors (soft).
    let collector = Daemon::spawn(
        std::process::Command::new("prlimit")
            .arg("--nofile=1024:")
            .arg(collector_bin())
            .arg("--config")
            .arg(&config),
        "fleetdeck-collector",
        "info",
    );
    let alice = Api::new(&collector, &create_key(&config, "alice", "viewer"));
    let bob = Api::new(&collector, &create_key(&config, "bob", "viewer"));
    wait_for("web1 up", Duration::from_secs(20), || async {
        (alice.json("/v1/hosts/web1").await["status"] == "up").then_some(())
    })
    .await;
    let follow = "/v1/hosts/web1/apps/web/logs/stream";

    let mut held = Vec::new();
    for _ in 0..16 {
        let resp = alice.get(follow).await;
        assert_eq!(resp.status(), 200);
        held.push(resp);
    }
    let message = assert_refused(alice.get(follow).await, 429, "5", "too_many_streams").await;
    assert!(message.contains("16 log follows"), "{message}");
    // The host's share is taken too: another key is told to retry, and the agent was never
    // asked (its own cap for the collector is not reached).
    let message = assert_refused(bob.get(follow).await, 503, "5", "too_many_streams").await;
    assert!(message.contains("log follows of this host"), "{message}");
    let healthz = reqwest::get(format!("http://{}/healthz", agent.addr))
        .await
        .expect("the agent answers");
    assert_eq!(healthz.status(), 200);

    drop(held.pop());
    let again = wait_for("a freed slot", Duration::from_secs(5), || async {
        let resp = bob.get(follow).await;
        (resp.status() == 200).then_some(resp)
    })
    .await;
    held.push(again);

    let mut streams = Vec::new();
    for _ in 0..32 {
        let resp = alice.get("/v1/events/stream").await;
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    let message = assert_refused(
        alice.get("/v1/events/stream").await,
        429,
        "5",
        "too_many_streams",
    )
    .await;
    assert!(message.contains("32 event streams"), "{message}");
    assert_eq!(bob.get("/v1/events/stream").await.status(), 200);
    // Pages and the fleet are not streams: they are served as ever.
    assert_eq!(alice.get("/v1/fleet").await.status(), 200);

    // Its 4,096 connections fit in its descriptors: the soft limit was raised from 1,024.
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", collector.pid())).expect("limits");
    let (soft, hard) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            let mut n = l.split_whitespace().skip(3);
            Some((
                n.next()?.parse::<u64>().ok()?,
                n.next()?.parse::<u64>().ok()?,
            ))
        })
        .expect("Max open files");
    assert!(soft >= hard.min(8_448), "soft {soft}, hard {hard}");
}

//! Issue 15 item 7: a SIGHUP takes up agents added to and removed from collector.toml, through
//! the real collector binary polling and streaming simulated hosts (`fleetdeck-sim`, real HTTP)
//! with a real webhook receiver.

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use std::time::Duration;

use common::*;
use fleetdeck_proto::{AppState, Exit};
use fleetdeck_sim::SimConfig;
use sim_bench::LIMIT;

fn sim_agent(name: &str, addr: std::net::SocketAddr, index: usize) -> String {
    format!(
        "[[agents]]\nname = \"{name}\"\nurl = \"http://{addr}/agents/{index}\"\ntoken_file = \"sim.token\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_agents_and_resolves_the_removed_hosts_alerts() {
    let (sim, addr) = serve_sim(SimConfig {
        hosts: 2,
        apps_per_host: 1,
        sample_interval: Duration::from_millis(500),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .await;
    let hook = Receiver::start().await;
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    // Polls every minute: the added host can only be up in time if the reload polls it at
    // once, and its crash can only arrive in time through its event stream.
    let head = format!(
        "poll_interval = \"60s\"\n[alerts]\ngrace = \"0s\"\n\
         [[channels]]\nname = \"hook\"\nurl = \"{}\"\n\
         [[routes]]\nchannels = [\"hook\"]\nrepeat_every = \"1s\"\n",
        hook.url()
    );
    let config = collector_config(&work, &format!("{head}{}", sim_agent("first", addr, 0)));
    let mut collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "root", "admin"));
    wait_for("first up", LIMIT, || async {
        let host = api.json("/v1/hosts/first").await;
        (host["status"] == "up").then_some(())
    })
    .await;
    let (app0, app1) = (sim.app_names(0)[0].clone(), sim.app_names(1)[0].clone());
    sim.set_state(0, &app0, AppState::Failed, Some(Exit::Code(3)));
    wait_for(
        "the first host's crash alerted and reminded",
        LIMIT,
        || async {
            let reminders = hook
                .received()
                .iter()
                .filter(|b| {
                    b["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("Reminder:") && m.contains("on first"))
                })
                .count();
            (reminders > 0).then_some(())
        },
    )
    .await;

    // `first` leaves, `second` joins.
    let text = std::fs::read_to_string(&config).expect("config");
    let fleet = api.json("/v1/fleet").await;
    assert_eq!(
        fleet["alert_policy"],
        serde_json::json!({"grace_ms": 0, "flap_window_ms": 600_000, "flap_threshold": 3}),
        "the desktop is told the policy: {fleet}"
    );
    let replaced = text
        .replace(&sim_agent("first", addr, 0), &sim_agent("second", addr, 1))
        .replace("grace = \"0s\"\n", "grace = \"0s\"\nflap_threshold = 7\n");
    assert_ne!(replaced, text);
    std::fs::write(&config, replaced).expect("write");
    run("kill", &["-HUP", &collector.pid().to_string()]);
    let fleet = wait_for("second up, first gone", LIMIT, || async {
        let fleet = api.json("/v1/fleet").await;
        let up = fleet["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["name"] == "second" && h["status"] == "up");
        (up && host_names(&fleet) == ["second"]).then_some(fleet)
    })
    .await;
    assert!(
        fleet["problems"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["host"] != "first")),
        "a removed host's problem is listed: {fleet}"
    );
    assert_eq!(api.get("/v1/hosts/first").await.status(), 404);
    assert_eq!(fleet["alert_policy"]["flap_threshold"], 7, "{fleet}");
    let open = api.json("/v1/alerts?host=first&state=open").await;
    assert_eq!(open["alerts"].as_array().map(Vec::len), Some(0), "{open}");
    let resolved = api.json("/v1/alerts?host=first&state=resolved").await;
    assert_eq!(
        resolved["alerts"].as_array().map(Vec::len),
        Some(1),
        "{resolved}"
    );

    // The removed host is not heard any more; the added one is, through its stream.
    let reminders_of_first = |hook: &Receiver| {
        hook.received()
            .iter()
            .filter(|b| {
                b["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("on first"))
            })
            .count()
    };
    // The alerting task took the reload in (reminders of a removed host stop there).
    wait_for("the alerting reload", LIMIT, || {
        let done = collector
            .logs()
            .iter()
            .any(|l| l.contains("alerting reloaded"));
        async move { done.then_some(()) }
    })
    .await;
    let before = reminders_of_first(&hook);
    sim.set_state(0, &app0, AppState::Running, None);
    sim.set_state(1, &app1, AppState::Failed, Some(Exit::Code(4)));
    let event = wait_for("the second host's crash from its stream", LIMIT, || async {
        let page = api.json("/v1/events?host=second").await;
        page["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["to"] == "failed")
            .cloned()
    })
    .await;
    assert_eq!(event["source"], "agent-stream", "{event}");
    wait_for("the second host's crash on the channel", LIMIT, || async {
        hook.received()
            .iter()
            .any(|b| {
                b["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("{app1} on second failed")))
            })
            .then_some(())
    })
    .await;
    // Its reminders (every second) came; none of the removed host's did, nor its recovery.
    wait_for("a reminder about second", LIMIT, || async {
        hook.received()
            .iter()
            .any(|b| {
                b["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Reminder:") && m.contains("on second"))
            })
            .then_some(())
    })
    .await;
    assert_eq!(
        reminders_of_first(&hook),
        before,
        "the removed host was still alerted: {:?}",
        hook.received()
    );
    let events = api.json("/v1/events?host=first").await;
    assert!(
        events["events"].as_array().is_some_and(|e| e
            .iter()
            .all(|e| e["to"] != "running" || e["from"] != "failed")),
        "the removed host's recovery was taken in: {events}"
    );
}

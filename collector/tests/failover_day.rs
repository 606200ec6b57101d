//! The operator's day with a failover in the middle: two real collectors on one PostgreSQL
//! database (the test bed's), two hosts in network namespaces of their own with real agents
//! watching real systemd units and podman containers, one real webhook receiver. The operator's
//! API client talks to the collector that starts as the standby, the whole day.
//!
//! Before the failover, through the standby: a unit crashes and is started again; an app's `.env`
//! is edited (If-Match) and the app restarted (the standby sends both straight to the agent).
//! Then the leader is killed (SIGKILL) and, in the gap before anyone leads, a container is
//! killed. The standby takes over with a higher epoch, alerts the container's crash, and the
//! operator starts it again. The old leader, started again, stands by and serves the same fleet.
//!
//! A threshold fires on vm-2 at the start and holds all day: the standbys show it, and the new
//! leader does not alert it again. The day's alerts reach the webhook exactly once each and
//! nothing else does (no host is thought down over the takeover); the samples of each host have no gap across it; the audit
//! log holds the operator's writes made through the standby.
//!
//! Runs with `FLEETDECK_TEST_STORE=postgres` and the test bed up; skipped on SQLite.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/day.rs"]
mod day;

use std::collections::BTreeMap;
use std::time::Instant;

use cluster::*;
use common::*;
use day::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_day_with_a_failover_alerts_once_and_loses_no_sample() {
    if skip() {
        return;
    }
    require_testbed();
    let day = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", day.elapsed().as_secs_f64());

    // --- The fleet. Namespaces first, so they are removed last.
    let nets = [Netns::up(4), Netns::up(5)];
    let work = Workdir::new();
    let scripts = Scripts::write(&work);
    let loop_script = &scripts.idle;
    // vm-1: `web` crashes before the failover; `api` has its .env edited through the standby.
    let web = TransientUnit::start("fday-web", &[], loop_script);
    let api_env = &scripts.env;
    let api_unit = TransientUnit::start("fday-api", &[], &scripts.api);
    // vm-2: `cache` is killed while nobody leads.
    let cache = Container::run("fday-cache", &[], &["sleep", "100000"]);
    let worker = TransientUnit::start("fday-worker", &[], loop_script);

    let unit = |u: &TransientUnit| format!("systemd_unit = \"{}\"", u.name);
    let configs = [
        host_config(
            &work,
            "vm-1",
            &nets[0],
            &[
                ("web", &unit(&web)),
                (
                    "api",
                    &format!("{}\nenv_file = \"{}\"", unit(&api_unit), api_env.display()),
                ),
            ],
        ),
        host_config(
            &work,
            "vm-2",
            &nets[1],
            &[
                ("cache", &format!("docker_container = \"{}\"", cache.name)),
                ("worker", &unit(&worker)),
            ],
        ),
    ];
    let agents: Vec<Daemon> = nets
        .iter()
        .zip(&configs)
        .map(|(net, config)| net.start_agent(config))
        .collect();

    // --- Two collectors with the same config: the first leads, the second stands by.
    let receiver = Receiver::start().await;
    let entries: String = ["vm-1", "vm-2"]
        .iter()
        .zip(&agents)
        .map(|(name, agent)| agent_entry(name, agent.addr))
        .collect();
    work.secret("metrics.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "poll_interval = \"1s\"\npoll_timeout = \"700ms\"\ndown_after = 2\n\
             [alerts]\ngrace = \"2s\"\n[cluster]\nlease = \"2s\"\n\
             [metrics]\ntoken_file = \"metrics.token\"\n\
             [[rules]]\nname = \"memory-watch\"\nmetric = \"memory.used_percent\"\nabove = 1\n\
             for = \"1s\"\nhosts = [\"vm-2\"]\n[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n{entries}",
            receiver.url(),
        ),
    );
    let key = create_key(&config, "operator", "operator");
    let admin_key = create_key(&config, "root", "admin");
    let mut first = start_collector(&config);
    let leading = wait_role(
        &Api::new(&first, &key),
        "leader",
        "the first collector leading",
    )
    .await;
    let other = Workdir::new();
    let standby_config = second_config(
        &work,
        &other,
        &["vm-1.token", "vm-2.token", "metrics.token"],
    );
    let second = start_collector(&standby_config);
    let ops = Api::new(&second, &key);
    let standing = wait_role(&ops, "standby", "the second collector standing by").await;
    assert_eq!(standing["leader"], leading["this"], "{standing}");
    for (host, apps) in [("vm-1", &["web", "api"]), ("vm-2", &["cache", "worker"])] {
        for app in apps {
            wait_app(&ops, host, app, "running", None).await;
        }
    }
    step("two hosts up, four apps running, seen through the standby");
    // A threshold that fires on vm-2 at once and stays firing all day: alerted by the leader,
    // shown by the standby, never alerted again by the next leader.
    wait_alert(&ops, &receiver, "problem", "vm-2", None).await;
    wait_threshold(&ops, "the standby").await;

    // --- Before the failover: web crashes; the operator starts it through the standby.
    run("systemctl", &["--user", "kill", "-s", "KILL", &web.name]);
    wait_app(&ops, "vm-1", "web", "failed", None).await;
    wait_alert(&ops, &receiver, "problem", "vm-1", Some("web")).await;
    act(&ops, "vm-1", "web", "start").await;
    wait_app(&ops, "vm-1", "web", "running", Some(web.main_pid())).await;
    wait_alert(&ops, &receiver, "recovery", "vm-1", Some("web")).await;
    step("web crashed, alerted by the leader, started through the standby, recovered");

    // The operator edits api's PORT through the standby and restarts api.
    let env = ops.json("/v1/hosts/vm-1/apps/api/env").await;
    let written = ops
        .http
        .put(format!("{}/v1/hosts/vm-1/apps/api/env", ops.base))
        .bearer_auth(&ops.key)
        .header("If-Match", env["etag"].as_str().expect("etag"))
        .json(&json!({"set": {"PORT": "8081"}}))
        .send()
        .await
        .expect("put .env");
    assert_eq!(written.status(), 200);
    assert_eq!(
        std::fs::read_to_string(api_env).expect("read api.env"),
        "# api\nPORT=8081\nLOG_LEVEL=info\n"
    );
    let pid = api_unit.main_pid();
    act(&ops, "vm-1", "api", "restart").await;
    assert_ne!(
        api_unit.main_pid(),
        pid,
        "the restart gave api a new process"
    );
    wait_app(&ops, "vm-1", "api", "running", Some(api_unit.main_pid())).await;
    step("api's .env edited and api restarted through the standby");

    // --- The failover: the leader is killed, and cache dies before anyone leads.
    let before: BTreeMap<String, i64> = ["vm-1", "vm-2"]
        .iter()
        .map(|h| (h.to_string(), last_stored(&work, h)))
        .collect();
    first.child.kill().expect("SIGKILL the leader");
    let _ = first.child.wait();
    let killed = Instant::now();
    run("podman", &["kill", "-s", "KILL", &cache.name]);
    let took_over = wait_role(&ops, "leader", "the standby taking over").await;
    let takeover = killed.elapsed();
    assert!(
        took_over["epoch"].as_i64() > leading["epoch"].as_i64(),
        "a new epoch: {leading} then {took_over}"
    );
    step(&format!(
        "leader killed; the standby leads {takeover:?} later"
    ));
    wait_app(&ops, "vm-2", "cache", "failed", None).await;
    let problem = wait_alert(&ops, &receiver, "problem", "vm-2", Some("cache")).await;
    assert_eq!(problem["state"], "failed", "{problem}");
    act(&ops, "vm-2", "cache", "start").await;
    wait_app(&ops, "vm-2", "cache", "running", None).await;
    wait_alert(&ops, &receiver, "recovery", "vm-2", Some("cache")).await;
    step("cache killed in the gap, alerted by the new leader, started, recovered");

    // --- The old leader comes back and stands by, serving what the new leader writes.
    let back = start_collector(&config);
    let back_api = Api::new(&back, &key);
    let standing = wait_role(&back_api, "standby", "the old leader standing by").await;
    assert_eq!(standing["leader"], took_over["this"], "{standing}");
    wait_app(&back_api, "vm-2", "cache", "running", None).await;
    wait_threshold(&back_api, "the old leader, standing by").await;
    step("the old leader is back as a standby");
    // Prometheus sees who leads: 1 on the new leader, 0 on the standby, and the same epoch.
    assert_eq!(
        leader_gauge(&second).await,
        (1.0, took_over["epoch"].as_f64())
    );
    assert_eq!(
        leader_gauge(&back).await,
        (0.0, took_over["epoch"].as_f64())
    );

    // --- The samples: each host's seqs, from before the kill to well after, have no gap.
    for (host, from) in &before {
        let target = from + 5;
        wait_for(
            &format!("{host}'s samples moving on under the new leader"),
            PATIENCE,
            || async { (last_stored(&work, host) >= target).then_some(()) },
        )
        .await;
        let seqs = stored_seqs(&work, host);
        assert_eq!(seqs.len(), 1, "one agent instance of {host}");
        assert_contiguous(&seqs[0].1, &format!("{host} across the takeover"));
    }

    // --- The alerts: each exactly once, in order per subject, and nothing else.
    let mut by_subject: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for alert in receiver.received() {
        by_subject
            .entry((
                alert["host"].as_str().unwrap_or("").to_owned(),
                alert["app"].as_str().unwrap_or("(host)").to_owned(),
            ))
            .or_default()
            .push(alert["kind"].as_str().unwrap_or("").to_owned());
    }
    let expected: BTreeMap<(String, String), Vec<String>> = [
        (("vm-1", "web"), vec!["problem", "recovery"]),
        (("vm-2", "cache"), vec!["problem", "recovery"]),
        (("vm-2", "(host)"), vec!["problem"]),
    ]
    .into_iter()
    .map(|((h, a), kinds)| {
        (
            (h.to_owned(), a.to_owned()),
            kinds.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(
        by_subject,
        expected,
        "the day's alerts, once each: {:#?}",
        receiver.received()
    );

    // --- The audit log: the operator's writes through the standby, by the operator's key.
    let audit = Api::new(&second, &admin_key)
        .json("/v1/audit?limit=1000")
        .await;
    let done: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["key_name"] == "operator")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["target"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for want in [
        ("app.start", "vm-1/web"),
        ("env.write (set PORT)", "vm-1/api"),
        ("app.restart", "vm-1/api"),
        ("app.start", "vm-2/cache"),
    ] {
        assert!(
            done.iter().any(|(a, t)| (a.as_str(), t.as_str()) == want),
            "{want:?} in the audit log: {done:?}"
        );
    }
    step("alerts once each, no sample gap, the operator's writes audited");
}

/// `fleetdeck_collector_leader` and `fleetdeck_collector_leader_epoch` in `collector`'s `/metrics`.
async fn leader_gauge(collector: &Daemon) -> (f64, Option<f64>) {
    let text = reqwest::Client::new()
        .get(collector.url("/metrics"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the exposition");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    (
        value("fleetdeck_collector_leader").expect("fleetdeck_collector_leader"),
        value("fleetdeck_collector_leader_epoch"),
    )
}

/// Waits until `api`'s fleet shows the memory-watch threshold firing on vm-2.
async fn wait_threshold(api: &Api, who: &str) {
    wait_for(
        &format!("{who} showing the memory-watch threshold on vm-2"),
        PATIENCE,
        || async {
            let fleet = api.json("/v1/fleet").await;
            fleet["problems"]
                .as_array()?
                .iter()
                .any(|p| {
                    p["kind"] == "threshold" && p["rule"] == "memory-watch" && p["host"] == "vm-2"
                })
                .then_some(())
        },
    )
    .await;
}

/// The last seq stored for `host` (0 before any).
fn last_stored(work: &Workdir, host: &str) -> i64 {
    stored_seqs(work, host)
        .iter()
        .filter_map(|(_, seqs)| seqs.last().copied())
        .max()
        .unwrap_or(0)
}

//! The operator's day, end to end: a fleet of three hosts, each a network namespace of its own
//! with a real `fleetdeck-agent` watching real systemd units and podman containers, one real
//! collector in the root namespace with short intervals, one real webhook receiver.
//!
//! The day: a unit crashes (started again through the collector), another flaps, a host is
//! silently partitioned and healed, a container is killed (started again through the collector),
//! and the operator edits an app's `.env` and restarts it. Every expected alert reaches the
//! webhook exactly once, in order per subject, and nothing else does; the crashed unit's uptime
//! (time running and time known) matches the downtime systemd itself recorded, within a second.
//!
//! Run it alone, with the test bed up (it takes about 25 s):
//! `cargo test -p fleetdeck-collector --test operators_day`

mod common;
#[path = "common/day.rs"]
mod day;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::*;
use day::*;
use serde_json::{json, Value};

/// The collector's settings for the day: 1 s polls, a host down after 2 missed ones, a 2 s grace
/// period and a 10 s flap window (3 problems in it make a subject flapping).
const POLL: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_secs(2);
const FLAP_WINDOW: Duration = Duration::from_secs(10);
/// How far the collector's uptime may be from what systemd recorded.
const TOLERANCE_MS: i64 = 1000;

/// A unit's timestamp property as systemd recorded it, in Unix milliseconds.
fn unit_time_ms(unit: &str, property: &str) -> u64 {
    let out = run(
        "systemctl",
        &[
            "--user",
            "show",
            "-p",
            property,
            "--value",
            "--timestamp=us+utc",
            unit,
        ],
    );
    // "Tue 2026-11-24 18:31:08.074734 UTC"
    let parts: Vec<&str> = out.split_whitespace().collect();
    let [_, date, time, "UTC"] = parts[..] else {
        panic!("{property} of {unit}: expected \"DAY DATE TIME UTC\", got {out:?}");
    };
    let at = humantime::parse_rfc3339(&format!("{date}T{time}Z"))
        .unwrap_or_else(|e| panic!("{property} of {unit} = {out:?}: {e}"));
    let ms = at
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    u64::try_from(ms).expect("a sane clock")
}

fn now_ms() -> u64 {
    let ms = UNIX_EPOCH.elapsed().expect("after 1970").as_millis();
    u64::try_from(ms).expect("a sane clock")
}

/// Problem entries of `app` on `host` in the collector's event log: transitions into `failed` or
/// `crash-looping` from a state that was not one of them.
async fn problem_entries(api: &Api, host: &str, app: &str) -> usize {
    let page = api
        .json(&format!("/v1/events?host={host}&app={app}&limit=1000"))
        .await;
    let problem = |s: &Value| s == "failed" || s == "crash-looping";
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "transition" && problem(&e["to"]) && !problem(&e["from"]))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_day_alerts_exactly_what_happened() {
    require_testbed();
    let day = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", day.elapsed().as_secs_f64());

    // --- The fleet. Namespaces first, so they are removed last (after the agents are killed).
    let nets = [Netns::up(1), Netns::up(2), Netns::up(3)];
    let work = Workdir::new();
    let scripts = Scripts::write(&work);
    let loop_script = &scripts.idle;
    // vm-1: `web` crashes and is started again; `api` is the app whose .env the operator edits.
    let web = TransientUnit::start("day-web", &[], loop_script);
    let api_env = &scripts.env;
    let api_unit = TransientUnit::start("day-api", &[], &scripts.api);
    let proxy = Container::run("day-proxy", &[], &["sleep", "100000"]);
    // vm-2: `worker` restarts itself after a crash (and flaps); `cache` is killed.
    let worker = TransientUnit::start(
        "day-worker",
        &["Restart=on-failure", "RestartSec=1s"],
        loop_script,
    );
    let cache = Container::run("day-cache", &[], &["sleep", "100000"]);
    // vm-3: partitioned with everything on it running.
    let db_unit = TransientUnit::start("day-db", &[], loop_script);
    let queue = Container::run("day-queue", &[], &["sleep", "100000"]);

    let unit = |u: &TransientUnit| format!("systemd_unit = \"{}\"", u.name);
    let container = |c: &Container| format!("docker_container = \"{}\"", c.name);
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
                ("proxy", &container(&proxy)),
            ],
        ),
        host_config(
            &work,
            "vm-2",
            &nets[1],
            &[("worker", &unit(&worker)), ("cache", &container(&cache))],
        ),
        host_config(
            &work,
            "vm-3",
            &nets[2],
            &[("db", &unit(&db_unit)), ("queue", &container(&queue))],
        ),
    ];
    let agents: Vec<Daemon> = nets
        .iter()
        .zip(&configs)
        .map(|(net, config)| net.start_agent(config))
        .collect();

    let receiver = Receiver::start().await;
    let entries: String = ["vm-1", "vm-2", "vm-3"]
        .iter()
        .zip(&agents)
        .map(|(name, agent)| agent_entry(name, agent.addr))
        .collect();
    let config = collector_config(
        &work,
        &format!(
            "poll_interval = \"{}s\"\npoll_timeout = \"700ms\"\ndown_after = 2\n\
             [alerts]\ngrace = \"{}s\"\nflap_window = \"{}s\"\nflap_threshold = 3\n\
             [[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n{entries}",
            POLL.as_secs(),
            GRACE.as_secs(),
            FLAP_WINDOW.as_secs(),
            receiver.url(),
        ),
    );
    let key = create_key(&config, "operator", "operator");
    let collector = start_collector(&config);
    let api = Api::new(&collector, &key);
    for (host, apps) in [
        ("vm-1", &["web", "api", "proxy"][..]),
        ("vm-2", &["worker", "cache"][..]),
        ("vm-3", &["db", "queue"][..]),
    ] {
        for app in apps {
            wait_app(&api, host, app, "running", None).await;
        }
    }
    step("three hosts up, seven apps running in the collector");
    // The uptime's reference: when systemd says web became active, before anything happened.
    let web_first_active_ms = unit_time_ms(&web.name, "ActiveEnterTimestamp");

    // --- Flap: worker on vm-2 is killed three times; systemd brings it back each time.
    for n in 1..=3 {
        let pid = worker.main_pid();
        run("systemctl", &["--user", "kill", "-s", "KILL", &worker.name]);
        wait_for(
            &format!("crash {n} of worker in the collector's event log"),
            PATIENCE,
            || async { (problem_entries(&api, "vm-2", "worker").await >= n).then_some(()) },
        )
        .await;
        let what = format!("back after crash {n} (a process other than {pid})");
        wait_app_where(&api, "vm-2", "worker", &what, |view| {
            view["status"]["state"] == "running"
                && view["status"]["systemd"]["main_pid"]
                    .as_u64()
                    .is_some_and(|p| p != u64::from(pid))
        })
        .await;
    }
    let flapping = wait_alert(&api, &receiver, "flapping", "vm-2", Some("worker")).await;
    assert_eq!(problem_entries(&api, "vm-2", "worker").await, 3);
    // The first two crashes recovered within the grace period: no problem alert for them.
    assert_eq!(
        alerts_about(&receiver, "vm-2", Some("worker")).len(),
        1,
        "only the flapping alert: {:?}",
        receiver.received()
    );
    step(&format!("worker flapping: {}", flapping["message"]));

    // --- Crash: web on vm-1 (no automatic restart) is killed and stays failed.
    run("systemctl", &["--user", "kill", "-s", "KILL", &web.name]);
    wait_app(&api, "vm-1", "web", "failed", None).await;
    let problem = wait_alert(&api, &receiver, "problem", "vm-1", Some("web")).await;
    assert_eq!(problem["state"], "failed", "{problem}");
    assert_eq!(problem["exit"], json!({"signal": 9}), "{problem}");
    let crashed_ms = unit_time_ms(&web.name, "ExecMainExitTimestamp");
    step("web crashed; problem alerted");
    // The operator starts it again through the collector.
    act(&api, "vm-1", "web", "start").await;
    let restarted_pid = web.main_pid();
    wait_app(&api, "vm-1", "web", "running", Some(restarted_pid)).await;
    let back_ms = unit_time_ms(&web.name, "ActiveEnterTimestamp");
    let recovery = wait_alert(&api, &receiver, "recovery", "vm-1", Some("web")).await;
    let downtime_ms = back_ms - crashed_ms;
    let alerted_ms = recovery["at_unix_ms"].as_u64().expect("at_unix_ms")
        - problem["at_unix_ms"].as_u64().expect("at_unix_ms");
    assert!(
        (alerted_ms as i64 - downtime_ms as i64).abs() <= TOLERANCE_MS,
        "the alerts span {alerted_ms} ms, systemd says web was down {downtime_ms} ms"
    );
    assert!(
        recovery["message"] == format!("web on vm-1 recovered after {}s", alerted_ms / 1000),
        "the recovery says how long web was down ({alerted_ms} ms): {recovery}"
    );
    step(&format!(
        "web started through the collector: down {downtime_ms} ms (systemd), {}",
        recovery["message"]
    ));

    // --- Container crash: cache on vm-2 is killed, then started through the collector.
    run("podman", &["kill", "-s", "KILL", &cache.name]);
    wait_app(&api, "vm-2", "cache", "failed", None).await;
    let problem = wait_alert(&api, &receiver, "problem", "vm-2", Some("cache")).await;
    assert_eq!(problem["state"], "failed", "{problem}");
    act(&api, "vm-2", "cache", "start").await;
    wait_app(&api, "vm-2", "cache", "running", None).await;
    wait_alert(&api, &receiver, "recovery", "vm-2", Some("cache")).await;
    step("cache killed, alerted, started through the collector, recovered");

    // --- Partition: vm-3 silently drops every packet for longer than down_after polls.
    nets[2].net("drop");
    let down = wait_alert(&api, &receiver, "problem", "vm-3", None).await;
    assert_eq!(api.json("/v1/hosts/vm-3").await["status"], "down");
    step(&format!("vm-3 partitioned: {}", down["message"]));
    nets[2].net("heal");
    wait_alert(&api, &receiver, "recovery", "vm-3", None).await;
    assert_eq!(api.json("/v1/hosts/vm-3").await["status"], "up");
    for app in ["db", "queue"] {
        wait_app(&api, "vm-3", app, "running", None).await;
    }
    step("vm-3 healed and recovered");

    // --- Edit: the operator changes api's PORT (If-Match) and restarts it; no alert for that.
    let env = api.json("/v1/hosts/vm-1/apps/api/env").await;
    let etag = env["etag"].as_str().expect("etag").to_owned();
    let put = |if_match: String| {
        api.http
            .put(format!("{}/v1/hosts/vm-1/apps/api/env", api.base))
            .bearer_auth(&api.key)
            .header("If-Match", if_match)
            .json(&json!({"set": {"PORT": "8081"}}))
            .send()
    };
    let written = put(etag.clone()).await.expect("put .env");
    assert_eq!(written.status(), 200);
    let on_disk = std::fs::read_to_string(api_env).expect("read api.env");
    assert_eq!(on_disk, "# api\nPORT=8081\nLOG_LEVEL=info\n");
    let stale = put(etag).await.expect("put .env");
    assert_eq!(stale.status(), 412, "a stale etag is refused");
    let pid = api_unit.main_pid();
    let restart_ms = now_ms();
    act(&api, "vm-1", "api", "restart").await;
    let new_pid = api_unit.main_pid();
    assert_ne!(new_pid, pid, "the restart gave api a new process");
    wait_app(&api, "vm-1", "api", "running", Some(new_pid)).await;
    // The new process read the new value: its log, read through the collector, says so.
    wait_for("api's log line with the new port", PATIENCE, || async {
        let page = api
            .json("/v1/hosts/vm-1/apps/api/logs?limit=5&grep=serving")
            .await;
        page["entries"]
            .as_array()?
            .iter()
            .any(|e| e["message"] == "api serving on port 8081")
            .then_some(())
    })
    .await;
    step("api's .env edited and api restarted through the collector");

    // --- The flap ends: worker has been stable for a whole flap window.
    let summary = wait_for("the flap-ended summary", FLAP_WINDOW + PATIENCE, || async {
        alerts_about(&receiver, "vm-2", Some("worker"))
            .into_iter()
            .find(|a| a["kind"] == "flap-ended")
    })
    .await;
    // It is dated at the end of a quiet window after worker's last transition (its return to
    // running after the third crash), as the collector's event log has it.
    let worker_events = api.json("/v1/events?host=vm-2&app=worker").await;
    let last_change_ms = worker_events["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "transition")
        .and_then(|e| e["at_unix_ms"].as_u64())
        .expect("worker's transitions");
    let window_ms = u64::try_from(FLAP_WINDOW.as_millis()).expect("small");
    assert_eq!(
        summary["at_unix_ms"].as_u64(),
        Some(last_change_ms + window_ms),
        "the summary is due a flap window after the last transition: {summary} {worker_events}"
    );
    assert_eq!(summary["state"], "running", "{summary}");
    step(&format!("worker's flap ended: {}", summary["message"]));

    // --- Quiet: long enough for any late alert (the grace period and two polls on every host).
    let quiet_until = now_ms() + u64::try_from((GRACE + 2 * POLL).as_millis()).expect("small");
    wait_for(
        "the grace period and two more polls of every host",
        PATIENCE,
        || async {
            for host in ["vm-1", "vm-2", "vm-3"] {
                let seen = api.json(&format!("/v1/hosts/{host}")).await["last_seen_unix_ms"]
                    .as_u64()
                    .unwrap_or(0);
                if seen < quiet_until {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // Exactly the expected alerts, once each, in order per subject, and nothing else.
    let mut by_subject: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for alert in receiver.received() {
        let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        by_subject
            .entry((text(&alert["host"]), text(&alert["app"])))
            .or_default()
            .push(text(&alert["kind"]));
    }
    let expected: BTreeMap<(String, String), Vec<String>> = [
        ("vm-1", "web", &["problem", "recovery"][..]),
        ("vm-2", "worker", &["flapping", "flap-ended"][..]),
        ("vm-2", "cache", &["problem", "recovery"][..]),
        ("vm-3", "-", &["problem", "recovery"][..]),
    ]
    .into_iter()
    .map(|(host, app, kinds)| {
        (
            (host.to_owned(), app.to_owned()),
            kinds.iter().map(|k| (*k).to_owned()).collect(),
        )
    })
    .collect();
    assert_eq!(
        by_subject,
        expected,
        "every alert: {:#?}",
        receiver.received()
    );
    // The operator's restart of api was seen (events after it: a `restarted`, or running →
    // stopped → running, as systemd's signals fall), none of them a problem state.
    let api_events = api.json("/v1/events?host=vm-1&app=api").await;
    let since_restart: Vec<&Value> = api_events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["at_unix_ms"].as_u64().is_some_and(|at| at >= restart_ms))
        .collect();
    assert!(
        !since_restart.is_empty()
            && since_restart
                .iter()
                .all(|e| e["to"] != "failed" && e["to"] != "crash-looping"),
        "the collector saw api's restart, and no problem in it: {api_events}"
    );
    // Each alert was delivered once, at the first attempt.
    let deliveries: Vec<(i64, i64)> = db(&work)
        .run(|c| {
            c.query_map(
                "SELECT status, attempts FROM alert_deliveries ORDER BY rowid",
                fleetdeck_collector::params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .expect("deliveries");
    assert_eq!(deliveries, vec![(200, 1); 8], "alert deliveries");

    // --- Uptime of web: down exactly as long as systemd says, known since it first started.
    let uptime = api.json("/v1/hosts/vm-1/apps/web/uptime?days=2").await;
    let figure = |name: &str| {
        uptime[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {uptime}"))
    };
    let (up_ms, known_ms, to_ms) = (figure("up_ms"), figure("known_ms"), figure("to_ms"));
    let collector_down_ms = known_ms - up_ms;
    let systemd_known_ms = to_ms - web_first_active_ms;
    eprintln!(
        "uptime of web: up {up_ms} ms of {known_ms} ms known; down {collector_down_ms} ms \
         (systemd: {downtime_ms} ms, Δ {} ms); known since systemd's start: {systemd_known_ms} ms \
         (Δ {} ms)",
        collector_down_ms as i64 - downtime_ms as i64,
        known_ms as i64 - systemd_known_ms as i64,
    );
    assert!(
        (collector_down_ms as i64 - downtime_ms as i64).abs() <= TOLERANCE_MS,
        "the collector counts web down {collector_down_ms} ms, systemd says {downtime_ms} ms: {uptime}"
    );
    assert!(
        (known_ms as i64 - systemd_known_ms as i64).abs() <= TOLERANCE_MS,
        "the collector knows web for {known_ms} ms, systemd started it {systemd_known_ms} ms \
         before the window's end: {uptime}"
    );
    step("every alert exactly once, nothing else; web's uptime matches systemd's record");
}

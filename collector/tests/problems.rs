//! Issue 14, the collector's side: every way an app or host goes wrong becomes an event, an alert
//! (to a real webhook receiver), an open problem in `GET /v1/fleet`, and a recovery. Through the
//! real collector binary polling and streaming a simulated agent (`fleetdeck-sim`, real HTTP)
//! that reports check results, crash context, sources and a shifted clock.

mod common;
#[path = "common/sim_bench.rs"]
mod sim_bench;

use common::*;
use fleetdeck_proto::{AppState, Exit};
use sim_bench::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_is_an_event_an_alert_a_problem_and_recovers() {
    let b = bench().await;
    let app = &b.apps[0];
    b.sim.check_ran(0, app, "health", true, None);
    b.sim
        .check_ran(0, app, "health", false, Some("HTTP 500, expected 200"));
    let event = b.event("check-failed").await;
    assert_eq!(event["app"], app.as_str());
    assert_eq!(event["check"]["name"], "health");
    assert_eq!(event["severity"], "warning");
    let alert = b
        .alert("problem", &format!("check health of {app} on sim"))
        .await;
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP 500, expected 200")),
        "{alert}"
    );
    let fleet = b.problem("check", true).await;
    assert!(
        fleet["summary"]["problems_warning"].as_u64() >= Some(1),
        "{fleet}"
    );
    // Failing twice in a row: degraded, and never counted running.
    b.sim
        .check_ran(0, app, "health", false, Some("HTTP 500, expected 200"));
    wait_for("the app degraded, not running", LIMIT, || async {
        let fleet = b.api.json("/v1/fleet").await;
        let app_view = fleet["hosts"][0]["apps"].as_array().and_then(|apps| {
            apps.iter()
                .find(|a| a["status"]["name"] == app.as_str())
                .cloned()
        })?;
        (app_view["status"]["degraded"] == true && fleet["summary"]["apps_running"] == 1)
            .then_some(())
    })
    .await;
    b.sim.check_ran(0, app, "health", true, None);
    b.event("check-passed").await;
    b.alert(
        "recovery",
        &format!("check health of {app} on sim recovered"),
    )
    .await;
    b.problem("check", false).await;
    assert_eq!(
        b.alerts_with(&format!("check health of {app} on sim is failing")),
        1,
        "one problem alert: {:?}",
        b.hook.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_down_is_a_host_warning_until_it_is_up() {
    let b = bench().await;
    b.sim
        .set_source(0, "docker", false, "cannot reach /run/podman/podman.sock");
    let alert = b.alert("problem", "the docker source of sim is down").await;
    assert!(alert["app"].is_null(), "{alert}");
    let fleet = b.problem("source", true).await;
    let problem = fleet["problems"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["kind"] == "source").cloned())
        .expect("the source problem");
    assert_eq!(problem["severity"], "warning");
    assert_eq!(problem["subject"], "docker");
    b.sim.set_source(0, "docker", true, "");
    b.alert("recovery", "the docker source of sim recovered")
        .await;
    b.problem("source", false).await;
    assert_eq!(b.alerts_with("the docker source of sim is down"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_and_externally_stopped_apps_alert_and_requested_stops_do_not() {
    let b = bench().await;
    let (gone, stopped) = (&b.apps[0], &b.apps[1]);
    b.sim.set_state(0, gone, AppState::NotFound, None);
    let alert = b.alert("problem", &format!("{gone} on sim")).await;
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{alert}"
    );
    let fleet = b.problem("not-found", true).await;
    assert!(
        fleet["summary"]["problems_critical"].as_u64() >= Some(1),
        "{fleet}"
    );
    b.sim.set_state(0, stopped, AppState::Stopped, None);
    b.alert("problem", "stopped without a request through Fleetdeck")
        .await;
    b.problem("stopped", true).await;
    // Back to running: both recover.
    b.sim.set_state(0, gone, AppState::Running, None);
    b.sim.set_state(0, stopped, AppState::Running, None);
    b.problem("not-found", false).await;
    b.problem("stopped", false).await;
    wait_for("two recoveries", LIMIT, || async {
        (b.hook.alerts("recovery", "sim", Some(gone)) == 1
            && b.hook.alerts("recovery", "sim", Some(stopped)) == 1)
            .then_some(())
    })
    .await;
    // A stop asked for through Fleetdeck: an event, no alert, no problem.
    let before = b.hook.received().len();
    b.sim.set_state_requested(0, stopped, AppState::Stopped);
    wait_for("the requested stop recorded", LIMIT, || async {
        let host = b.api.json("/v1/hosts/sim").await;
        host["apps"]
            .as_array()?
            .iter()
            .any(|a| a["status"]["name"] == stopped.as_str() && a["status"]["state"] == "stopped")
            .then_some(())
    })
    .await;
    // Two more polls for anything late to arrive.
    b.two_more_polls().await;
    assert_eq!(b.hook.received().len(), before, "{:?}", b.hook.received());
    b.problem("stopped", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_crash_is_one_alert_carrying_the_last_line() {
    let b = bench().await;
    let app = &b.apps[0];
    b.sim.crash_and_restart(
        0,
        app,
        Exit::Code(3),
        &["loading config", "panic: missing DATABASE_URL"],
    );
    let alert = b
        .alert("problem", "crashed (exit code 3) and was restarted")
        .await;
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("last line: panic: missing DATABASE_URL")),
        "{alert}"
    );
    let event = b.event("restarted").await;
    assert_eq!(
        event["context"]["last_lines"][1], "panic: missing DATABASE_URL",
        "{event}"
    );
    assert_eq!(event["severity"], "warning");
    // Never a problem that stays open, never a recovery; exactly one alert.
    let fleet = b.api.json("/v1/fleet").await;
    assert!(
        !fleet["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["app"] == app.as_str()),
        "{fleet}"
    );
    b.two_more_polls().await;
    assert_eq!(b.hook.alerts("problem", "sim", Some(app)), 1);
    assert_eq!(b.hook.alerts("recovery", "sim", Some(app)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_is_a_warning_and_recovers_with_hysteresis() {
    let b = bench().await;
    b.sim.set_clock_offset(0, 42_000);
    let alert = b.alert("problem", "the clock of sim").await;
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("agent clock 42 s ahead")),
        "{alert}"
    );
    b.event("clock-skew").await;
    let fleet = b.problem("clock-skew", true).await;
    assert!(
        fleet["summary"]["problems_warning"].as_u64() >= Some(1),
        "{fleet}"
    );
    // 25 s: within the limit but not under the clear level: still a problem.
    b.sim.set_clock_offset(0, 25_000);
    b.two_more_polls().await;
    b.problem("clock-skew", true).await;
    b.sim.set_clock_offset(0, 0);
    b.alert("recovery", "the clock of sim recovered").await;
    b.event("clock-ok").await;
    b.problem("clock-skew", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_check_problem_survives_a_collector_restart_and_recovers_once() {
    let mut b = bench().await;
    let app = b.apps[0].clone();
    b.sim
        .check_ran(0, &app, "health", false, Some("timed out after 5 s"));
    b.alert("problem", &format!("check health of {app} on sim"))
        .await;
    b.collector.stop();
    b.collector = start_collector(&b.config);
    b.api = Api::new(&b.collector, &b.api.key);
    // The problem is listed again at once (rebuilt from the database), and not alerted again.
    b.problem("check", true).await;
    b.sim.check_ran(0, &app, "health", true, None);
    b.alert(
        "recovery",
        &format!("check health of {app} on sim recovered"),
    )
    .await;
    b.problem("check", false).await;
    assert_eq!(
        b.alerts_with(&format!("check health of {app} on sim is failing")),
        1,
        "{:?}",
        b.hook.received()
    );
}

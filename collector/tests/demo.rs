//! `fleetdeck-collector --demo`: a newcomer's fleet with no config, through the same API.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_a_simulated_fleet() {
    let mut child = Command::new(collector_bin())
        .args(["--demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file("fleetdeck-collector-demo").1))
        .spawn()
        .expect("spawn the demo");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SIGTERM: the demo removes its temporary directory on a clean stop.
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let _guard = Kill(child);
    let mut url = None;
    let mut key = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(u) = line.trim().strip_prefix("URL:") {
            url = Some(u.trim().to_owned());
        }
        if let Some(k) = line.trim().strip_prefix("operator key:") {
            key = Some(k.trim().to_owned());
            break;
        }
    }
    // Keep reading what it prints after, as a terminal would.
    std::thread::spawn(move || lines.for_each(drop));
    let (base, key) = (
        url.expect("the demo prints its URL"),
        key.expect("and a key"),
    );
    // Printed on stdout on purpose; its log (stderr) must not hold it.
    secret(&key);
    let api = Api {
        base,
        key,
        http: reqwest::Client::new(),
    };
    let fleet = wait_for("six hosts up", Duration::from_secs(30), || async {
        let fleet = api.json("/v1/fleet").await;
        (fleet["summary"]["hosts_up"] == 6).then_some(fleet)
    })
    .await;
    assert!(
        fleet["summary"]["apps"].as_u64().unwrap_or(0) >= 12,
        "{fleet}"
    );
    let host = fleet["hosts"][0]["name"].as_str().expect("host").to_owned();
    let app = fleet["hosts"][0]["apps"][0]["status"]["name"]
        .as_str()
        .expect("app")
        .to_owned();
    // Logs and .env are served for the simulated apps too.
    let logs = api
        .json(&format!("/v1/hosts/{host}/apps/{app}/logs?limit=5"))
        .await;
    assert!(!logs["entries"].as_array().expect("entries").is_empty());
    let env = api.json(&format!("/v1/hosts/{host}/apps/{app}/env")).await;
    assert!(env["etag"].is_string());
    // It starts with 30 days of history: charts, uptime, past events and their alerts.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    const DAY: u64 = 86_400_000;
    let from = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(now - 30 * DAY),
    );
    let metrics = api
        .json(&format!("/v1/hosts/{host}/metrics?from={from}&step=1h"))
        .await;
    let points = metrics["points"].as_array().expect("points");
    assert!(points.len() >= 29 * 24, "{} hourly points", points.len());
    assert!(points[0]["cpu_percent"].is_number(), "{}", points[0]);
    let uptime = api
        .json(&format!("/v1/hosts/{host}/apps/{app}/uptime?days=30"))
        .await;
    let known = uptime["first_known_ms"].as_u64().expect("known");
    assert!(known <= now - 29 * DAY, "known only since {known}");
    let until =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(now - DAY));
    let past = api
        .json(&format!("/v1/events?until={until}&limit=200"))
        .await;
    let past_events = past["events"].as_array().expect("events").len();
    assert!(
        past_events >= 10,
        "{past_events} events older than a day: {past}"
    );
    let alerts = api.json("/v1/alerts?limit=200&state=resolved").await;
    let old: Vec<&Value> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["started_unix_ms"].as_u64().is_some_and(|t| t < now - DAY))
        .collect();
    assert!(
        old.len() >= 5
            && old
                .iter()
                .all(|a| a["kind"] == "problem" && a["resolved_unix_ms"].is_u64()),
        "past incidents and their alerts: {alerts}"
    );

    // Apps crash and recover by themselves: the event log fills.
    wait_for(
        "a crash in the event log",
        Duration::from_secs(60),
        || async {
            let page: Value = api.json("/v1/events?severity=critical").await;
            (!page["events"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
}

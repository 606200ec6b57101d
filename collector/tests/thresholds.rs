//! Threshold rules end to end: a real agent watching a real ext4 filesystem on a loop device, a
//! real collector evaluating `[[rules]]` over the samples it stores, a real webhook receiver;
//! and the app metrics API over what the collector stored from the simulator.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use fleetdeck_sim::{Sim, SimConfig};
use serde_json::Value;

/// A 20 MiB ext4 (with mkfs's usual 5 % reserved for root, as on real hosts) mounted on a loop
/// device; unmounted on drop.
struct LoopFs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl LoopFs {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("i14-collector-fs")
            .tempdir()
            .expect("temp dir");
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).expect("mount dir");
        run("truncate", &["-s", "20M", image.to_str().expect("utf-8")]);
        run("mkfs.ext4", &["-q", image.to_str().expect("utf-8")]);
        run(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().expect("utf-8"),
                mount.to_str().expect("utf-8"),
            ],
        );
        Self { _dir: dir, mount }
    }

    fn mount_point(&self) -> &str {
        self.mount.to_str().expect("utf-8")
    }

    /// (used, used + available, block size) in blocks, as `df` counts them: the reserved blocks
    /// are not room an app has.
    fn blocks(&self) -> (f64, f64, f64) {
        let out = run("stat", &["-f", "-c", "%b %f %a %S", self.mount_point()]);
        let v: Vec<f64> = out
            .split_whitespace()
            .map(|n| n.parse().expect("number"))
            .collect();
        let (blocks, free, avail, size) = (v[0], v[1], v[2], v[3]);
        assert!(
            free > avail,
            "mkfs reserved no blocks: the test would not see the reserve"
        );
        let used = blocks - free;
        (used, used + avail, size)
    }

    /// Used percent as `df` shows it (and the agent reports it).
    fn used_percent(&self) -> f64 {
        let (used, capacity, _) = self.blocks();
        used * 100.0 / capacity
    }

    /// Allocates `file` so the filesystem is at about `percent` used.
    fn fill_to(&self, file: &str, percent: f64) {
        let path = self.mount.join(file);
        let _ = std::fs::remove_file(&path);
        run("sync", &[self.mount_point()]);
        let (used, capacity, size) = self.blocks();
        let want = (capacity * percent / 100.0 - used).max(1.0) * size;
        run(
            "fallocate",
            &[
                "-l",
                &format!("{}", want as u64),
                path.to_str().expect("utf-8"),
            ],
        );
        run("sync", &[self.mount_point()]);
    }

    fn append(&self, file: &str, bytes: u64) {
        let path = self.mount.join(file);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        run(
            "fallocate",
            &[
                "-o",
                &len.to_string(),
                "-l",
                &bytes.to_string(),
                path.to_str().expect("utf-8"),
            ],
        );
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// An agent on loopback (no apps) and a collector with `rules` and a JSON webhook.
fn fleet(work: &Workdir, rules: &str, receiver: &Receiver) -> (Daemon, Daemon, PathBuf) {
    require_testbed();
    let agent_config = agent_config(work, "disk", "127.0.0.1:0", "");
    let agent = start_agent(&agent_config);
    let config = collector_config(
        work,
        &format!(
            "[alerts]\ndefault_rules = false\ngrace = \"0s\"\n[[webhooks]]\nurl = \"{}\"\n{rules}{}",
            receiver.url(),
            agent_entry("disk", agent.addr)
        ),
    );
    let collector = start_collector(&config);
    (agent, collector, config)
}

/// The webhook bodies about `mount` of kind `kind`.
fn about(receiver: &Receiver, mount: &str, kind: &str) -> Vec<Value> {
    receiver
        .received()
        .into_iter()
        .filter(|b| {
            b["kind"] == kind
                && b["aspect"]["aspect"] == "threshold"
                && b["aspect"]["name"]["subject"] == mount
        })
        .collect()
}

/// Raw samples the collector stored for `host` so far.
fn stored_samples(work: &Workdir) -> i64 {
    db(work)
        .run(|c| {
            c.query_row(
                "SELECT count(*) FROM samples_raw",
                fleetdeck_collector::params![],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_past_90_percent_alerts_once_after_for_and_recovers_once() {
    let fs = LoopFs::new();
    let mount = fs.mount_point().to_owned();
    let work = Workdir::new();
    let receiver = Receiver::start().await;
    let (_agent, _collector, config) = fleet(
        &work,
        "[[rules]]\nname = \"disk-full\"\nmetric = \"disk.used_percent\"\nabove = 90\nfor = \"4s\"\nclear_below = 80\n",
        &receiver,
    );
    let api = Api::new(&_collector, &create_key(&config, "viewer", "viewer"));
    wait_for("the host up", Duration::from_secs(30), || async {
        (api.json("/v1/hosts/disk").await["status"] == "up").then_some(())
    })
    .await;

    // Host samples keep disk I/O (from /proc/diskstats) and come back from the metrics API.
    wait_for(
        "disk I/O in the host metrics",
        Duration::from_secs(30),
        || async {
            let m = api.json("/v1/hosts/disk/metrics?step=1s").await;
            m["points"]
                .as_array()?
                .iter()
                .any(|p| {
                    p["disk_read_bytes_per_sec"].is_number()
                        && p["disk_write_bytes_per_sec"].is_number()
                })
                .then_some(())
        },
    )
    .await;

    fs.fill_to("big", 95.0);
    assert!(fs.used_percent() > 92.0, "{}", fs.used_percent());
    let filled = Instant::now();
    let fired = wait_for("the disk-full alert", Duration::from_secs(40), || async {
        about(&receiver, &mount, "problem").into_iter().next()
    })
    .await;
    let waited = filled.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "fired after {waited:?}, before `for`"
    );
    let message = fired["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("{mount} on disk is 9"))
            && message.contains("% full (rule disk-full: above 90% for 4 s)"),
        "{message}"
    );
    assert_eq!(fired["severity"], "warning");
    assert_eq!(fired["detail"]["threshold"]["threshold"], 90.0);
    // The figure is df's Use% (root's reserve is not room for apps), not used / all blocks.
    let value = fired["detail"]["threshold"]["value"]
        .as_f64()
        .expect("value");
    let df = fs.used_percent();
    assert!(
        (value - df).abs() < 1.0,
        "alert says {value} %, df says {df} %"
    );
    // The fleet API lists the firing rule among its problems, naming the mount point.
    let fleet = api.json("/v1/fleet").await;
    let problem = fleet["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| p["kind"] == "threshold" && p["subject"] == mount.as_str())
        .unwrap_or_else(|| panic!("no threshold problem for {mount}: {fleet}"))
        .clone();
    assert_eq!(problem["rule"], "disk-full");
    assert_eq!(problem["host"], "disk");
    assert_eq!(problem["severity"], "warning");
    assert!(
        fleet["summary"]["problems_warning"].as_u64() >= Some(1),
        "{fleet}"
    );
    assert!(
        fired["detail"]["threshold"]["value"]
            .as_f64()
            .expect("value")
            > 90.0
    );

    // Still full for five more stored samples: no second alert.
    let seen = stored_samples(&work);
    wait_for("five more samples", Duration::from_secs(30), || async {
        (stored_samples(&work) >= seen + 5).then_some(())
    })
    .await;
    assert_eq!(about(&receiver, &mount, "problem").len(), 1);

    // Between the clear level and the threshold: no recovery yet.
    fs.fill_to("big", 85.0);
    let seen = stored_samples(&work);
    wait_for("five more samples", Duration::from_secs(30), || async {
        (stored_samples(&work) >= seen + 5).then_some(())
    })
    .await;
    assert!(about(&receiver, &mount, "recovery").is_empty());

    std::fs::remove_file(fs.mount.join("big")).expect("free the space");
    run("sync", &[fs.mount_point()]);
    let recovered = wait_for("the recovery", Duration::from_secs(30), || async {
        about(&receiver, &mount, "recovery").into_iter().next()
    })
    .await;
    assert!(
        recovered["message"]
            .as_str()
            .expect("message")
            .contains("back below 80%"),
        "{recovered}"
    );
    let seen = stored_samples(&work);
    wait_for("five more samples", Duration::from_secs(30), || async {
        (stored_samples(&work) >= seen + 5).then_some(())
    })
    .await;
    assert_eq!(about(&receiver, &mount, "problem").len(), 1);
    assert_eq!(about(&receiver, &mount, "recovery").len(), 1);

    // Both are in the event log, with what the rule saw.
    let events: Vec<(String, String)> = db(&work)
        .run(|c| {
            c.query_map(
                "SELECT kind, detail_json FROM events WHERE kind LIKE 'threshold-%' AND message LIKE ?1 ORDER BY id",
                fleetdeck_collector::params![format!("{mount} %")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .expect("rows");
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["threshold-fired", "threshold-cleared"]);
    let detail: Value = serde_json::from_str(&events[0].1).expect("detail json");
    assert_eq!(detail["threshold"]["rule"], "disk-full");
    assert_eq!(detail["threshold"]["subject"], mount.as_str());

    // The events API gives them back with the rule's figures, and the problem has left the fleet.
    let page = api.json("/v1/events?kind=threshold-fired&host=disk").await;
    let event = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["threshold"]["subject"] == mount.as_str())
        .unwrap_or_else(|| panic!("no threshold-fired event for {mount}: {page}"))
        .clone();
    assert_eq!(event["threshold"]["rule"], "disk-full");
    assert!(
        event["threshold"]["value"].as_f64().expect("value") > 90.0,
        "{event}"
    );
    let fleet = api.json("/v1/fleet").await;
    assert!(
        !fleet["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["kind"] == "threshold" && p["subject"] == mount.as_str()),
        "{fleet}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steadily_filling_disk_is_predicted_full_before_it_is() {
    let fs = LoopFs::new();
    let mount = fs.mount_point().to_owned();
    let work = Workdir::new();
    let receiver = Receiver::start().await;
    // A 2-minute window: the fit needs 10 s of samples (window / 12).
    let (_agent, _collector, config) = fleet(
        &work,
        "[[rules]]\nname = \"disk-predicted-full\"\nmetric = \"disk.hours_to_full\"\nbelow = 24\nwindow = \"2m\"\n",
        &receiver,
    );
    let api = Api::new(&_collector, &create_key(&config, "viewer", "viewer"));
    wait_for("the host up", Duration::from_secs(30), || async {
        (api.json("/v1/hosts/disk").await["status"] == "up").then_some(())
    })
    .await;
    // About 256 KiB every 500 ms: ~18 MiB free lasts about half a minute more than the fit needs.
    let started = Instant::now();
    let alert = loop {
        if let Some(alert) = about(&receiver, &mount, "problem").into_iter().next() {
            break alert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no predicted-full alert in 90 s; the disk is {:.1}% used",
            fs.used_percent()
        );
        let used = fs.used_percent();
        assert!(
            used < 99.0,
            "the disk filled up before the prediction: {used:.1}%"
        );
        fs.append("growing", 256 * 1024);
        // Pacing the writer (the steady fill itself), not waiting for the collector.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let at_alert = fs.used_percent();
    assert!(at_alert < 99.0, "{at_alert}");
    let message = alert["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("{mount} on disk will be full in ~"))
            && message.contains("at the current rate"),
        "{message}"
    );
    assert_eq!(alert["detail"]["threshold"]["metric"], "disk.hours_to_full");
    assert!(
        alert["detail"]["threshold"]["value"]
            .as_f64()
            .expect("hours")
            < 24.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_metrics_api_returns_the_stored_points() {
    let sim = Sim::new(SimConfig {
        hosts: 1,
        apps_per_host: 1,
        sample_interval: Duration::from_millis(500),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .expect("the simulator");
    let app = sim.app_names(0)[0].clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let addr = listener.local_addr().expect("simulator address");
    tokio::spawn(async move {
        let _ = sim.serve(listener, std::future::pending()).await;
    });
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "[[agents]]\nname = \"sim\"\nurl = \"http://{addr}/agents/0\"\ntoken_file = \"sim.token\"\n"
        ),
    );
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "viewer", "viewer"));
    let path = format!("/v1/hosts/sim/apps/{app}/metrics?step=500ms");
    let answer = wait_for(
        "ten stored app samples in the API",
        Duration::from_secs(30),
        || async {
            let answer = api.get(&path).await;
            if answer.status() != 200 {
                return None; // Not polled yet: 404 until the collector knows the host and app.
            }
            let body: Value = answer.json().await.ok()?;
            (body["points"].as_array().map_or(0, Vec::len) >= 10).then_some(body)
        },
    )
    .await;
    assert_eq!(answer["resolution"], "raw");
    assert_eq!(answer["app"], app.as_str());
    let rows = app_rows(&work, &app);
    let points = answer["points"].as_array().expect("points");
    // Every point the API gave is a stored row, with its memory figure.
    for p in points {
        let ts = p["ts_unix_ms"].as_i64().expect("ts");
        let row = rows
            .iter()
            .find(|(t, _)| *t == ts)
            .unwrap_or_else(|| panic!("point {ts} not stored"));
        assert_eq!(p["memory_bytes"].as_i64(), row.1, "{p}");
        assert_eq!(p["samples"], 1);
    }
    let missing = api.get("/v1/hosts/sim/apps/nope/metrics").await;
    assert_eq!(missing.status(), 404);
    let bad = api
        .get(&format!("/v1/hosts/sim/apps/{app}/metrics?step=0s"))
        .await;
    assert_eq!(bad.status(), 400);
}

/// (ts_ms, mem) of the app's raw samples in the collector's database.
fn app_rows(work: &Workdir, app: &str) -> Vec<(i64, Option<i64>)> {
    db(work)
        .run(|c| {
            c.query_map(
                "SELECT ts_ms, mem FROM app_samples_raw WHERE app = ?1 ORDER BY ts_ms",
                fleetdeck_collector::params![app],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .expect("rows")
}

//! A simulated host `sim` (real HTTP, `fleetdeck-sim`) polled and streamed by the real collector
//! binary with no grace period, and a real webhook receiver: what the problem and alert tests
//! drive. Included by the test files that use it (`#[path]`), beside `common`.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;
use std::time::Duration;

use super::common::*;
use fleetdeck_sim::{Sim, SimConfig};
use serde_json::Value;

pub const LIMIT: Duration = Duration::from_secs(20);

/// One simulated host `sim` with two apps, a collector polling it every second with no grace
/// period, and a webhook receiver.
pub struct Bench {
    pub sim: Arc<Sim>,
    pub apps: Vec<String>,
    pub api: Api,
    pub hook: Receiver,
    pub collector: Daemon,
    pub config: std::path::PathBuf,
    _work: Workdir,
}

pub async fn bench() -> Bench {
    bench_with(|hook| {
        format!(
            "[[webhooks]]\nurl = \"{}\"\nformat = \"json\"\n",
            hook.url()
        )
    })
    .await
}

/// The same, with `alerting(hook)` as the config's channels, webhooks and routes (`hook` is
/// the bench's own receiver).
pub async fn bench_with(alerting: impl FnOnce(&Receiver) -> String) -> Bench {
    let sim = Sim::new(SimConfig {
        hosts: 1,
        apps_per_host: 2,
        sample_interval: Duration::from_millis(500),
        token: AGENT_TOKEN.to_owned(),
        host_prefix: "sim".to_owned(),
        ..SimConfig::default()
    })
    .expect("the simulator");
    let apps = sim.app_names(0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let addr = listener.local_addr().expect("simulator address");
    let served = sim.clone();
    tokio::spawn(async move {
        let _ = served.serve(listener, std::future::pending()).await;
    });
    let hook = Receiver::start().await;
    let work = Workdir::new();
    work.secret("sim.token", AGENT_TOKEN);
    let config = collector_config(
        &work,
        &format!(
            "[alerts]\ngrace = \"0s\"\n{}\
             [[agents]]\nname = \"sim\"\nurl = \"http://{addr}/agents/0\"\ntoken_file = \"sim.token\"\n",
            alerting(&hook)
        ),
    );
    let collector = start_collector(&config);
    let api = Api::new(&collector, &create_key(&config, "root", "admin"));
    wait_for("sim up with its apps", LIMIT, || async {
        let host = api.json("/v1/hosts/sim").await;
        (host["status"] == "up" && host["apps"].as_array().is_some_and(|a| a.len() == 2))
            .then_some(())
    })
    .await;
    Bench {
        sim,
        apps,
        api,
        hook,
        collector,
        config,
        _work: work,
    }
}

impl Bench {
    /// Waits for a webhook body of `kind` whose message contains `text`; answers it.
    pub async fn alert(&self, kind: &str, text: &str) -> Value {
        wait_for(&format!("a {kind} alert with {text:?}"), LIMIT, || async {
            self.hook.received().into_iter().find(|b| {
                b["kind"] == kind && b["message"].as_str().is_some_and(|m| m.contains(text))
            })
        })
        .await
    }

    pub fn alerts_with(&self, text: &str) -> usize {
        self.hook
            .received()
            .iter()
            .filter(|b| b["message"].as_str().is_some_and(|m| m.contains(text)))
            .count()
    }

    /// Waits until `GET /v1/fleet` lists a problem of `kind` (or none, with `want = false`).
    pub async fn problem(&self, kind: &str, want: bool) -> Value {
        wait_for(&format!("problem {kind} open: {want}"), LIMIT, || async {
            let fleet = self.api.json("/v1/fleet").await;
            let found = fleet["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["kind"] == kind);
            (found == want).then_some(fleet)
        })
        .await
    }

    /// Waits until the collector has polled the host twice more (its `last_seen` moved twice):
    /// anything the last change would cause has arrived by then.
    pub async fn two_more_polls(&self) {
        let seen = || async {
            self.api.json("/v1/hosts/sim").await["last_seen_unix_ms"]
                .as_u64()
                .unwrap_or(0)
        };
        let first = seen().await;
        let second = wait_for("a poll", LIMIT, || async {
            let now = seen().await;
            (now > first).then_some(now)
        })
        .await;
        wait_for("another poll", LIMIT, || async {
            (seen().await > second).then_some(())
        })
        .await;
    }

    /// Waits for an event of `kind` in the collector's event log.
    pub async fn event(&self, kind: &str) -> Value {
        wait_for(&format!("a {kind} event"), LIMIT, || async {
            let page = self.api.json("/v1/events?limit=200").await;
            page["events"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["kind"] == kind)
                .cloned()
        })
        .await
    }
}

//! The fleet of an operator's day: hosts in network namespaces of their own, each with a real
//! agent, and what the day's steps wait for in the collector and at the webhook receiver.
//! Included by the day tests (`#[path]`), beside `common`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::*;

/// How long any one step may take to show its effect.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A host of the fleet: a network namespace made with `testbed.sh net` under its own names,
/// removed when dropped (also when the test fails half-way).
pub struct Netns {
    pub name: String,
    pub veth: String,
    pub host_ip: String,
    pub ns_ip: String,
}

impl Netns {
    /// Namespace `tb-dayN` at 10.99.1N.2, the root namespace at 10.99.1N.1.
    pub fn up(n: u8) -> Self {
        let netns = Self {
            name: format!("tb-day{n}"),
            // The namespace's end is this name with its last 0 turned into 1 (tbd1v1): both fit
            // the kernel's 15 characters.
            veth: format!("tbd{n}v0"),
            host_ip: format!("10.99.1{n}.1"),
            ns_ip: format!("10.99.1{n}.2"),
        };
        // A previous run that was killed may have left it behind: start clean.
        let _ = netns.command("down").output();
        netns.net("up");
        netns
    }

    pub fn command(&self, verb: &str) -> Command {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed/testbed.sh");
        let mut cmd = Command::new(script);
        cmd.args(["net", verb])
            .env("TESTBED_NETNS", &self.name)
            .env("TESTBED_VETH", &self.veth)
            .env("TESTBED_HOST_IP", &self.host_ip)
            .env("TESTBED_NS_IP", &self.ns_ip);
        cmd
    }

    pub fn net(&self, verb: &str) {
        let out = self
            .command(verb)
            .output()
            .unwrap_or_else(|e| panic!("cannot run testbed.sh net {verb}: {e}"));
        assert!(
            out.status.success(),
            "testbed.sh net {verb} for {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The real agent inside this namespace, listening on its address.
    pub fn start_agent(&self, config: &Path) -> Daemon {
        Daemon::spawn(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.name))
                .arg(agent_bin())
                .arg("--config")
                .arg(config)
                .arg("--allow-public-bind"), // 10.99.1N.2 is the test host's private address
            &format!("fleetdeck-agent in netns {}", self.name),
            RUST_LOG,
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.command("down").output();
    }
}

/// An agent config for `host` listening in `netns`, watching `apps`; every app allows actions.
pub fn host_config(work: &Workdir, host: &str, netns: &Netns, apps: &[(&str, &str)]) -> PathBuf {
    let tables: String = apps
        .iter()
        .map(|(name, source)| {
            format!("[[apps]]\nname = \"{name}\"\n{source}\nallow_actions = true\n")
        })
        .collect();
    agent_config(work, host, &format!("{}:0", netns.ns_ip), &tables)
}

/// The app's view in the collector (`null` while the collector has not seen it).
pub async fn app_view(api: &Api, host: &str, app: &str) -> Value {
    let view = api.json(&format!("/v1/hosts/{host}")).await;
    view["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["status"]["name"] == app))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the collector shows `app` on `host` in `state` (and, if given, with that main PID).
pub async fn wait_app(
    api: &Api,
    host: &str,
    app: &str,
    state: &str,
    main_pid: Option<u32>,
) -> Value {
    let what = format!("to be {state} (main PID {main_pid:?})");
    wait_app_where(api, host, app, &what, |view| {
        let pid_ok = main_pid.is_none_or(|pid| view["status"]["systemd"]["main_pid"] == pid);
        view["status"]["state"] == state && pid_ok
    })
    .await
}

/// Waits until the collector's view of `app` on `host` satisfies `want`; on a timeout, the
/// failure shows what the collector showed last and its event log of the app.
pub async fn wait_app_where(
    api: &Api,
    host: &str,
    app: &str,
    what: &str,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view = app_view(api, host, app).await;
        if want(&view) {
            return view;
        }
        if Instant::now() >= deadline {
            let events = api.json(&format!("/v1/events?host={host}&app={app}")).await;
            panic!(
                "timed out after {PATIENCE:?} waiting for {app} on {host} {what} in the \
                 collector; it shows {view:#}; its events (newest first): {events:#}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The alerts the receiver got about (`host`, `app`), in arrival order.
pub fn alerts_about(receiver: &Receiver, host: &str, app: Option<&str>) -> Vec<Value> {
    receiver
        .received()
        .into_iter()
        .filter(|b| b["host"] == host && b["app"].as_str() == app)
        .collect()
}

/// Waits for the alert of `kind` about (`host`, `app`) and answers it; on a timeout, the failure
/// shows the collector's event log of that subject and every alert received.
pub async fn wait_alert(
    api: &Api,
    receiver: &Receiver,
    kind: &str,
    host: &str,
    app: Option<&str>,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = alerts_about(receiver, host, app)
            .into_iter()
            .find(|a| a["kind"] == kind);
        if let Some(alert) = found {
            return alert;
        }
        if Instant::now() >= deadline {
            let query = match app {
                Some(app) => format!("/v1/events?host={host}&app={app}"),
                None => format!("/v1/events?host={host}"),
            };
            let events = api.json(&query).await;
            panic!(
                "timed out after {PATIENCE:?} waiting for the {kind} alert about {host}/{}; \
                 the collector's events (newest first): {events:#}; alerts received: {:#?}",
                app.unwrap_or("(host)"),
                receiver.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An action through the collector, as the operator's desktop sends it; it must succeed.
pub async fn act(api: &Api, host: &str, app: &str, action: &str) -> Value {
    let resp = api
        .http
        .post(format!(
            "{}/v1/hosts/{host}/apps/{app}/actions/{action}",
            api.base
        ))
        .bearer_auth(&api.key)
        .send()
        .await
        .expect("action request");
    let status = resp.status();
    let outcome: Value = resp.json().await.expect("action outcome");
    assert_eq!(status, 200, "{action} {app} on {host}: {outcome}");
    assert_eq!(
        outcome["result"], "done",
        "{action} {app} on {host}: {outcome}"
    );
    outcome
}

/// The day's app scripts, in files: systemd 252 writes a transient unit's `;` as `\;` inside
/// quotes and reads it back as such after any `daemon-reload` (other tests on this user manager
/// make them), which would break a `sh -c` script with `;` in it on its next start.
pub struct Scripts {
    /// A unit's script that runs until killed.
    pub idle: String,
    /// `api`'s script: it reads `env` (`PORT=8080`), says "api serving on port $PORT", idles.
    pub api: String,
    /// `api`'s `.env`.
    pub env: PathBuf,
}

impl Scripts {
    pub fn write(work: &Workdir) -> Self {
        let idle = work.write("loop.sh", "while true; do sleep 1; done\n");
        let env = work.secret("api.env", "# api\nPORT=8080\nLOG_LEVEL=info\n");
        let api = work.write(
            "api.sh",
            &format!(
                ". {}\necho \"api serving on port $PORT\"\nwhile true; do sleep 1; done\n",
                env.display()
            ),
        );
        Self {
            idle: format!(". {}", idle.display()),
            api: format!(". {}", api.display()),
            env,
        }
    }
}

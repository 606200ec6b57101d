//! What the agent's bench binaries share: the agent under test, the test bed, SSE reading.

#![allow(dead_code)] // each bench uses its own subset

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "bench-token-0123456789abcdef0123";

/// The agent binary to measure: FLEETDECK_AGENT_BIN (the static musl build, as shipped), else
/// the release build cargo made for this bench.
pub fn agent_bin() -> PathBuf {
    std::env::var_os("FLEETDECK_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fleetdeck-agent")))
}

pub fn testbed_image() -> String {
    std::env::var("TESTBED_IMAGE").expect("TESTBED_IMAGE unset: run the bench through its scripts/bench-*.sh (they bring up the test bed)")
}

pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run");
    assert!(out.status.success(), "{cmd} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub struct Agent {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent with `apps` (TOML `[[apps]]` tables) and waits for /healthz.
    pub async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("agent.token");
        std::fs::write(&token, TOKEN).expect("token");
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let port = free_port();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!("listen = [\"127.0.0.1:{port}\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\n{extra}"),
        )
        .expect("config");
        let child = Command::new(agent_bin())
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start agent");
        let agent = Self {
            child,
            port,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client
                .get(agent.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return agent;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the agent did not answer within 20 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("field");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

/// A minimal SSE reader: yields the `data` of each event.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    pub async fn open(url: &str) -> Self {
        let resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("open stream");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        Self {
            resp,
            buf: String::new(),
        }
    }

    pub async fn next_data(&mut self, limit: Duration) -> Option<String> {
        self.next_named(limit).await.map(|(_, data)| data)
    }

    /// The next event's name (`event:`, if any) and data.
    pub async fn next_named(&mut self, limit: Duration) -> Option<(Option<String>, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.trim_start())
                    .collect();
                let name = block
                    .lines()
                    .find_map(|l| l.strip_prefix("event:"))
                    .map(|n| n.trim().to_owned());
                if !data.is_empty() {
                    return Some((name, data.join("\n")));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A transient systemd unit and a container from the test bed's image, as the apps of a small
/// VM; both removed when dropped.
pub struct BenchApps {
    pub unit: String,
    pub container: String,
}

impl BenchApps {
    /// Starts the unit (`busybox sh -c unit_script`, with `unit_props` as `-p` properties) and a
    /// container sleeping for good.
    pub fn start(prefix: &str, unit_props: &[&str], unit_script: &str) -> Self {
        let unit = format!("fdbench-{prefix}-{}.service", std::process::id());
        let container = format!("fdbench-{prefix}-{}", std::process::id());
        let unit_arg = format!("--unit={unit}");
        let mut args = vec!["--user", unit_arg.as_str()];
        for p in unit_props {
            args.extend(["-p", p]);
        }
        args.extend(["busybox", "sh", "-c", unit_script]);
        sh("systemd-run", &args);
        sh(
            "podman",
            &[
                "run",
                "-d",
                "--name",
                &container,
                &testbed_image(),
                "sleep",
                "1000000",
            ],
        );
        Self { unit, container }
    }

    /// The `[[apps]]` tables for them: the unit as app `web`, the container as app `cache`.
    pub fn apps_toml(&self) -> String {
        format!(
            "[[apps]]\nname = \"web\"\nsystemd_unit = \"{}\"\n[[apps]]\nname = \"cache\"\ndocker_container = \"{}\"\n",
            self.unit, self.container
        )
    }
}

impl Drop for BenchApps {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["--user", "stop", &self.unit])
            .output();
        let _ = Command::new("systemctl")
            .args(["--user", "reset-failed", &self.unit])
            .output();
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.container])
            .output();
    }
}

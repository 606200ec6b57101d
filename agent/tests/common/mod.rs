//! Helpers for the agent's integration tests: the real binary, the real test bed (systemd user
//! manager, journald, podman's Docker API), real sockets. Nothing here is mocked.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub use fleetdeck_testkit::*;

/// A directory with a 0600 token file, where a test writes its agent.toml.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        secret(TOKEN);
        let dir = tempfile::tempdir().expect("temp dir");
        let token = dir.path().join("agent.token");
        std::fs::write(&token, format!("{TOKEN}\n")).expect("write token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))
            .expect("chmod token");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `agent.toml` with `body` appended to a loopback listen and the token file.
    pub fn config(&self, body: &str) -> PathBuf {
        self.config_raw(&format!(
            "listen = [\"127.0.0.1:0\"]\ntoken_file = \"agent.token\"\nsystemd = \"user\"\n{body}"
        ))
    }

    pub fn config_raw(&self, text: &str) -> PathBuf {
        let path = self.path("agent.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// The real `fleetdeck-agent` binary, running until dropped.
pub struct RunningAgent {
    daemon: Daemon,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetdeck-agent")
}

impl RunningAgent {
    /// Opens the SSE stream at `path` with the test token.
    pub async fn sse(&self, path: &str, last_event_id: Option<&str>) -> SseStream {
        SseStream::open(&self.client, &self.url(path), TOKEN, last_event_id).await
    }

    /// Starts the agent on `config` and waits for it to log its listening address.
    pub fn start(config: &Path) -> Self {
        Self::start_with(Command::new(agent_bin()).arg("--config").arg(config))
    }

    pub fn start_with(cmd: &mut Command) -> Self {
        let daemon = Daemon::spawn(cmd, "fleetdeck-agent", "info");
        Self {
            addr: daemon.addr,
            daemon,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json body")
    }

    /// Polls `/v1/apps/{app}` until it shows `want` (15 s at most); returns that status.
    pub async fn wait_state(
        &self,
        app: &str,
        want: fleetdeck_proto::AppState,
    ) -> fleetdeck_proto::AppStatus {
        wait_for(
            &format!("{app} to be {want}"),
            Duration::from_secs(15),
            || async {
                let s = self.app(app).await;
                (s.state == want).then_some(s)
            },
        )
        .await
    }

    pub async fn app(&self, name: &str) -> fleetdeck_proto::AppStatus {
        let resp = self.get(&format!("/v1/apps/{name}")).await;
        assert_eq!(resp.status(), 200, "GET /v1/apps/{name}");
        resp.json().await.expect("AppStatus")
    }

    /// Everything the agent has logged so far.
    pub fn logs(&mut self) -> &[String] {
        self.daemon.logs()
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Waits up to `limit` for the agent to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.daemon.wait_exit(limit)
    }
}

/// Runs the agent expecting it to refuse to start; returns its stderr.
pub fn refused(config: &Path, extra: &[&str]) -> String {
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(config)
        .args(extra)
        .output()
        .expect("run fleetdeck-agent");
    save_log("fleetdeck-agent-refused", Some(&out.stdout), &out.stderr);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the agent should exit 2; stderr: {stderr}"
    );
    stderr
}

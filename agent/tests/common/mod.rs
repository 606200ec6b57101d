//! Helpers for the agent's integration tests: the real binary, the real test bed (systemd user
//! manager, journald, podman's Docker API), real sockets. Nothing here is mocked.

#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Panics with how to start the bed if the test bed's environment is missing: a test that needs
/// the real systemd or Docker must fail, not pass vacuously, when they are absent.
pub fn require_testbed() {
    for var in [
        "TESTBED_DIR",
        "DBUS_SESSION_BUS_ADDRESS",
        "DOCKER_HOST",
        "CONTAINERS_CONF",
        "TESTBED_IMAGE",
    ] {
        assert!(
            std::env::var_os(var).is_some(),
            "{var} is not set: run `testbed/testbed.sh up && eval \"$(testbed/testbed.sh env)\"` first \
             (scripts/test.sh does both)"
        );
    }
}

/// A unique name for this test's units and containers.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("fdtest-{prefix}-{}-{n}", std::process::id())
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `[[apps]]` table of an app run by systemd unit `unit`.
pub fn unit_app(name: &str, unit: &str) -> String {
    format!("[[apps]]\nname = \"{name}\"\nsystemd_unit = \"{unit}\"\n")
}

/// The `[[apps]]` table of an app run by container `container`.
pub fn container_app(name: &str, container: &str) -> String {
    format!("[[apps]]\nname = \"{name}\"\ndocker_container = \"{container}\"\n")
}

/// A directory with a 0600 token file, where a test writes its agent.toml.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
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
    child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stderr: mpsc::Receiver<String>,
    logged: Vec<String>,
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetdeck-agent")
}

impl RunningAgent {
    /// Starts the agent on `config` and waits for it to log its listening address.
    pub fn start(config: &Path) -> Self {
        Self::start_with(Command::new(agent_bin()).arg("--config").arg(config))
    }

    pub fn start_with(cmd: &mut Command) -> Self {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fleetdeck-agent");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if let Some(addr) = line.split("addr=").nth(1) {
                        if line.contains("listening") {
                            let addr = addr.split_whitespace().next().unwrap_or_default();
                            break addr.parse().expect("listening address");
                        }
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the agent did not log a listening address within 10 s; it logged:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        Self {
            child,
            addr,
            client: reqwest::Client::new(),
            stderr: rx,
            logged: seen,
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
        self.logged.extend(self.stderr.try_iter());
        &self.logged
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the agent to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "the agent should exit 2; stderr: {stderr}"
    );
    stderr
}

/// A transient user unit running `cmd` (via busybox sh), stopped and reset when dropped.
pub struct TransientUnit {
    pub name: String,
}

impl TransientUnit {
    pub fn start(prefix: &str, props: &[&str], script: &str) -> Self {
        let name = format!("{}.service", unique(prefix));
        let unit_arg = format!("--unit={name}");
        // No --collect: a failed unit must stay loaded for the test to see it failed.
        let mut args = vec!["--user", unit_arg.as_str()];
        for p in props {
            args.push("-p");
            args.push(p);
        }
        args.extend(["busybox", "sh", "-c", script]);
        run("systemd-run", &args);
        Self { name }
    }

    pub fn main_pid(&self) -> u32 {
        let out = run(
            "systemctl",
            &["--user", "show", "-p", "MainPID", "--value", &self.name],
        );
        out.trim().parse().expect("MainPID")
    }
}

impl Drop for TransientUnit {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["--user", "stop", &self.name])
            .output();
        let _ = Command::new("systemctl")
            .args(["--user", "reset-failed", &self.name])
            .output();
    }
}

/// A container from the test bed's image, removed when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    pub fn run(prefix: &str, extra: &[&str], cmd: &[&str]) -> Self {
        let name = unique(prefix);
        let image = std::env::var("TESTBED_IMAGE").expect("TESTBED_IMAGE");
        let mut args = vec!["run", "-d", "--name", name.as_str()];
        args.extend_from_slice(extra);
        args.push(&image);
        args.extend_from_slice(cmd);
        run("podman", &args);
        Self { name }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A reader of an SSE response.
pub struct SseStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseStream {
    pub async fn open(agent: &RunningAgent, path: &str, last_event_id: Option<&str>) -> Self {
        let mut req = agent.client.get(agent.url(path)).bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("open stream");
        assert_eq!(resp.status(), 200, "GET {path}");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event that is not a keep-alive comment, or `None` if none comes within `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<SseEvent> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if ev.event.is_some() || !ev.data.is_empty() {
                    return Some(ev);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    /// Reads events until one satisfies `want`, failing after `limit`.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut want: impl FnMut(&SseEvent) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self
                .next_within(left)
                .await
                .unwrap_or_else(|| panic!("no {what} within {limit:?}"));
            if let Some(v) = want(&ev) {
                return v;
            }
        }
    }
}

/// A unit with a file on disk (in the user manager's runtime unit directory), as an operator's
/// app is: unlike a transient unit it stays loaded when stopped. Removed when dropped.
pub struct UnitFile {
    pub name: String,
    path: PathBuf,
}

impl UnitFile {
    pub fn start(prefix: &str, script: &str) -> Self {
        let name = format!("{}.service", unique(prefix));
        let dir = PathBuf::from(std::env::var("XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR"))
            .join("systemd/user");
        std::fs::create_dir_all(&dir).expect("unit dir");
        let path = dir.join(&name);
        std::fs::write(
            &path,
            format!("[Service]\nExecStart=busybox sh -c '{script}'\n"),
        )
        .expect("unit file");
        run("systemctl", &["--user", "daemon-reload"]);
        run("systemctl", &["--user", "start", &name]);
        Self { name, path }
    }

    pub fn main_pid(&self) -> u32 {
        let out = run(
            "systemctl",
            &["--user", "show", "-p", "MainPID", "--value", &self.name],
        );
        out.trim().parse().expect("MainPID")
    }
}

impl Drop for UnitFile {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["--user", "stop", &self.name])
            .output();
        let _ = std::fs::remove_file(&self.path);
        let _ = Command::new("systemctl")
            .args(["--user", "daemon-reload"])
            .output();
    }
}

//! Test helpers shared by the agent's and the collector's integration tests: the real test bed
//! (systemd user manager, journald, podman's Docker API), real processes and sockets. Nothing here
//! is mocked.
//!
//! Every daemon a test starts logs into the run's log directory ([`log_dir`]), and every secret a
//! test uses is recorded there ([`secret`], [`secret_env`]), so `scripts/check-secrets.sh` can
//! prove that no secret reached a log.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// Where this run's daemon logs and `secrets.txt` go: `$FLEETDECK_TEST_LOGS`, else
/// `$CARGO_TARGET_DIR/test-logs` (if absolute), else `test-logs` in the target directory holding
/// this test binary (`target/test-logs`). Created on first use.
pub fn log_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|t| t.is_absolute());
    let dir = if let Some(dir) = std::env::var_os("FLEETDECK_TEST_LOGS") {
        PathBuf::from(dir)
    } else if let Some(target) = target {
        target.join("test-logs")
    } else {
        // A test binary is TARGET/debug/deps/NAME-HASH.
        let exe = std::env::current_exe().expect("the test binary's path");
        exe.ancestors()
            .nth(3)
            .map(|target| target.join("test-logs"))
            .unwrap_or_else(|| PathBuf::from("target/test-logs"))
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot create the test log directory {}: {e}",
            dir.display()
        )
    });
    dir
}

/// A new log file for one process, `WHAT-TESTPID-N.log` in [`log_dir`]: give it to the process as
/// its stdout or stderr (`Stdio::from(file)`), or write its lines into it.
pub fn log_file(what: &str) -> (PathBuf, File) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = log_dir().join(format!("{name}-{}-{n}.log", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot create log file {}: {e}", path.display()));
    (path, file)
}

/// Saves what a finished process printed (`Command::output`) as its log. Pass its stdout only if
/// it is a log: `keys create` and `--demo` print a key there on purpose.
pub fn save_log(what: &str, stdout: Option<&[u8]>, stderr: &[u8]) {
    let (path, mut file) = log_file(what);
    let written = stdout
        .map_or(Ok(()), |out| file.write_all(out))
        .and_then(|()| file.write_all(stderr));
    if let Err(e) = written {
        panic!("cannot write log file {}: {e}", path.display());
    }
}

/// Records `value` as a secret this test uses (a token, an API key, an `.env` value, a webhook URL
/// with a token), so the secrets check can prove no log holds it. Each line of at least 6
/// characters is recorded; shorter ones would match by chance.
pub fn secret(value: &str) {
    record_secrets(value.lines().map(|l| l.trim_end_matches('\r')));
}

/// Records the values of an `.env` text's `KEY=VALUE` lines as secrets (see [`secret`]); quotes
/// around a value are dropped, comments and keys are not secrets.
pub fn secret_env(text: &str) {
    record_secrets(env_values(text).into_iter());
}

fn env_values(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (_, value) = line.split_once('=')?;
            let value = value.trim();
            Some(
                value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                    .unwrap_or(value),
            )
        })
        .collect()
}

fn record_secrets<'a>(values: impl Iterator<Item = &'a str>) {
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut new = String::new();
    for value in values {
        if value.chars().count() >= 6 && seen.insert(value.to_owned()) {
            new.push_str(value);
            new.push('\n');
        }
    }
    if new.is_empty() {
        return;
    }
    let path = log_dir().join("secrets.txt");
    // One append of all the lines: tests in other processes append to the same file.
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(new.as_bytes()));
    if let Err(e) = written {
        panic!("cannot record a secret in {}: {e}", path.display());
    }
}

/// A line-by-line copy of a child's output into its log file.
fn tee_line(log: &mut File, line: &str) {
    // A log that cannot be written fails the secrets check (the file is missing or short), not
    // the test that happened to run the daemon.
    let _ = writeln!(log, "{line}");
}

/// A daemon under test (agent or collector): started, its stderr read line by line, ready once it
/// logs `listening addr=...`; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    logged: Vec<String>,
}

impl Daemon {
    /// Spawns `cmd` with `RUST_LOG=rust_log` (or `$FLEETDECK_TEST_RUST_LOG`, to run the suite at
    /// another level, e.g. `debug` for the secrets check) and waits up to 20 s for its listening
    /// address. Its stdout and stderr go to its own file in [`log_dir`] too.
    pub fn spawn(cmd: &mut Command, what: &str, rust_log: &str) -> Self {
        let rust_log = std::env::var("FLEETDECK_TEST_RUST_LOG").unwrap_or_else(|_| rust_log.into());
        let (_, mut log) = log_file(what);
        let stdout = log
            .try_clone()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let mut child = cmd
            .env("RUST_LOG", &rust_log)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tee_line(&mut log, &line);
                // The test may have dropped the daemon: keep copying to the log until EOF.
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains("listening") {
                        if let Some(addr) = line.split("addr=").nth(1) {
                            let addr = addr.split_whitespace().next().unwrap_or_default();
                            break addr.parse().expect("listening address");
                        }
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{what} did not log a listening address within 20 s; it logged:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        Self {
            child,
            addr,
            lines: rx,
            logged: seen,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything logged so far.
    /// Every line the daemon wrote to stderr so far; once it has exited, every line up to the end
    /// (waiting up to 2 s for the reader to reach it), so last words are not missed.
    pub fn logs(&mut self) -> &[String] {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match self.lines.recv_timeout(left) {
                    Ok(line) => self.logged.push(line),
                    Err(_) => break,
                }
            }
        } else {
            self.logged.extend(self.lines.try_iter());
        }
        &self.logged
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for the exit (killed after 10 s).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Runs a daemon's `dist/install.sh` with `args` under `FLEETDECK_ROOT=root` (a directory, not
/// the machine); its stdout and stderr together. Panics, with what it said, if it fails.
pub fn install_script(script: &std::path::Path, root: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(script)
        .args(args)
        .env("FLEETDECK_ROOT", root)
        .output()
        .expect("run install.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.sh {args:?} failed: {text}");
    text
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

/// The `[[apps]]` table (agent.toml) of an app run by systemd unit `unit`.
pub fn unit_app(name: &str, unit: &str) -> String {
    format!("[[apps]]\nname = \"{name}\"\nsystemd_unit = \"{unit}\"\n")
}

/// The `[[apps]]` table (agent.toml) of an app run by container `container`.
pub fn container_app(name: &str, container: &str) -> String {
    format!("[[apps]]\nname = \"{name}\"\ndocker_container = \"{container}\"\n")
}

/// A unit's script whose journal makes a search costly: journalctl's PCRE2 backtracks on
/// [`BACKTRACKING_GREP`] over these lines, and 5,000 of them keep it busy for over 30 s of CPU
/// (measured on the test bed), under PCRE2's own match limit, so a search runs into the agent's
/// 5 s deadline. The script writes `ready` last, which matches nothing costly.
pub const BACKTRACKING_LINES: &str = "i=0; while [ $i -lt 5000 ]; do echo aaaaaaaaaaaaaaaaaaaaaab; i=$((i+1)); done; echo ready; sleep 100000";
/// The pattern that backtracks over [`BACKTRACKING_LINES`] and matches none of them.
pub const BACKTRACKING_GREP: &str = "(a|aa)+$";

/// A transient user unit running `cmd` (via busybox sh), stopped and reset when dropped.
#[derive(Debug)]
pub struct TransientUnit {
    pub name: String,
    script_path: PathBuf,
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
        // The script runs from a file: systemd 252 writes `;` in a transient unit's command line
        // as `\;` and reads it back so after any `daemon-reload` (another test's), which broke the
        // next restart of such a unit.
        let dir = std::env::temp_dir().join("fleetdeck-testkit-units");
        std::fs::create_dir_all(&dir).expect("unit script dir");
        let script_path = dir.join(format!("{name}.sh"));
        std::fs::write(&script_path, script).expect("unit script");
        let script_arg = script_path.to_str().expect("utf-8 temp dir").to_owned();
        args.extend(["busybox", "sh", script_arg.as_str()]);
        run("systemd-run", &args);
        Self { name, script_path }
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
        let _ = std::fs::remove_file(&self.script_path);
    }
}

/// A container from the test bed's image, removed when dropped.
#[derive(Debug)]
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
#[allow(missing_debug_implementations)] // holds a byte stream
pub struct SseStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseStream {
    /// Opens `url` with the bearer `token`, resuming after `last_event_id`; the answer must be a
    /// 200 event stream.
    pub async fn open(
        client: &reqwest::Client,
        url: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let path = url;
        let mut req = client.get(url).bearer_auth(token);
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
#[derive(Debug)]
pub struct UnitFile {
    pub name: String,
    path: PathBuf,
}

impl UnitFile {
    pub fn start(prefix: &str, script: &str) -> Self {
        Self::start_with(prefix, "", script)
    }

    /// [`UnitFile::start`] with more `[Service]` lines (e.g. `EnvironmentFile=...\n`).
    pub fn start_with(prefix: &str, service_lines: &str, script: &str) -> Self {
        let name = format!("{}.service", unique(prefix));
        let dir = PathBuf::from(std::env::var("XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR"))
            .join("systemd/user");
        std::fs::create_dir_all(&dir).expect("unit dir");
        let path = dir.join(&name);
        std::fs::write(
            &path,
            format!("[Service]\n{service_lines}ExecStart=busybox sh -c '{script}'\n"),
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

/// The processes `pid` started (from every thread's `children`), with their command lines.
pub fn children(pid: u32) -> Vec<(u32, String)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .map(|child| {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            (child, String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

/// How many of `pid`'s children run `program` (the first word of their command line, its file
/// name) and carry `arg` among their arguments, if given.
pub fn children_running(pid: u32, program: &str, arg: Option<&str>) -> usize {
    children(pid)
        .iter()
        .filter(|(_, cmdline)| {
            let mut words = cmdline.split_whitespace();
            let runs = words
                .next()
                .is_some_and(|w| std::path::Path::new(w).file_name() == Some(program.as_ref()));
            runs && arg.is_none_or(|a| words.any(|w| w.starts_with(a)))
        })
        .count()
}

/// `s` percent-encoded for a query string (unreserved characters kept).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Asserts `resp` is a cap's refusal: `status` (429 or 503) with `Retry-After: retry_after` and
/// the error code `code`; returns the error's message.
pub async fn assert_refused(
    resp: reqwest::Response,
    status: u16,
    retry_after: &str,
    code: &str,
) -> String {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(retry_after)
    );
    let body: serde_json::Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or("").to_owned()
}

/// A `podman system service` of a test's own on a socket in a temp dir: killing it cannot
/// disturb the shared bed's engine. Killed (by its PID) when dropped.
#[derive(Debug)]
pub struct OwnEngine {
    child: std::process::Child,
}

impl OwnEngine {
    pub async fn start(socket: &std::path::Path) -> Self {
        let _ = std::fs::remove_file(socket);
        let child = std::process::Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            // It breaks `podman system service` (test bed gotcha 8).
            .env_remove("CONTAINER_HOST")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("podman system service");
        let engine = Self { child };
        let socket = socket.to_owned();
        wait_for(
            "our podman service to answer",
            Duration::from_secs(15),
            || {
                let socket = socket.clone();
                async move {
                    let ping = std::process::Command::new("curl")
                        .args(["-sf", "--unix-socket"])
                        .arg(&socket)
                        .arg("http://d/_ping")
                        .output()
                        .ok()?;
                    ping.status.success().then_some(())
                }
            },
        )
        .await;
        engine
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnEngine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CA (PEM), and a server config for `localhost` whose certificate, signed by that CA, is valid
/// from 30 days before `not_after` until it.
pub fn certificates(
    not_after: time::OffsetDateTime,
) -> (String, tokio_rustls::rustls::ServerConfig) {
    let (ca_cert, leaf, key) = ca_and_leaf(not_after);
    use tokio_rustls::rustls;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server TLS config");
    (ca_cert.pem(), config)
}

/// A CA and a certificate for `localhost` it signed, valid 30 days to `not_after`.
fn ca_and_leaf(
    not_after: time::OffsetDateTime,
) -> (rcgen::Certificate, rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Fleetdeck test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    leaf.not_before = not_after - time::Duration::days(30);
    leaf.not_after = not_after;
    let leaf = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server cert");
    (ca_cert, leaf, key)
}

/// The same as PEM text, for servers the tests run outside Rust (an SMTP server in Python):
/// (CA certificate, `localhost` certificate, its private key), valid for the next 10 days.
pub fn certificate_pems() -> (String, String, String) {
    let (ca, leaf, key) = ca_and_leaf(time::OffsetDateTime::now_utc() + time::Duration::days(10));
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// An HTTPS server on 127.0.0.1 answering every request with 200 and body `ok`; its port.
pub async fn https_server(config: tokio_rustls::rustls::ServerConfig) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[cfg(test)]
mod tests {
    use super::env_values;

    #[test]
    fn env_values_are_the_values_unquoted() {
        assert_eq!(
            env_values(
                "# a comment=x\nPORT=8080\n\nA='single q'\n B = \"double\" \nnot a pair\nE=\n"
            ),
            vec!["8080", "single q", "double", ""]
        );
    }
}

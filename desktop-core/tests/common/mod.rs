//! Helpers for the integration tests: the real collector binary in demo mode (a simulated fleet
//! with crash-prone apps, served over a real socket), free ports, and a small HTTP server that is
//! not a collector. Nothing is mocked.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use fleetdeck_desktop_core::{ApiKey, CollectorClient};
pub use fleetdeck_testkit::wait_for;

/// The collector binary: `$FLEETDECK_COLLECTOR_BIN`, else beside this test binary in the target
/// directory (a workspace `cargo test` builds it first).
pub fn collector_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLEETDECK_COLLECTOR_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "FLEETDECK_COLLECTOR_BIN={} is not a file",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/this-test → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .to_owned();
    let mut candidates = vec![dir.join("fleetdeck-collector")];
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug/fleetdeck-collector"));
    }
    candidates
        .iter()
        .find(|bin| bin.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the collector binary is not built (looked for {candidates:?}): run \
                 `cargo build -p fleetdeck-collector` first, or set FLEETDECK_COLLECTOR_BIN"
            )
        })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// `fleetdeck-collector --demo`: stopped (SIGTERM, so it removes its temporary directory) when
/// dropped.
pub struct Demo {
    child: Child,
    pub url: String,
    pub key: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    /// Starts a demo of `hosts` simulated hosts and waits for its URL and operator key.
    pub fn start(hosts: usize) -> Self {
        let port = free_port();
        let mut child = Command::new(collector_bin())
            .args([
                "--demo",
                "--port",
                &port.to_string(),
                "--hosts",
                &hosts.to_string(),
                // The client's tests need the live fleet, not its stored past.
                "--history-days",
                "0",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the demo collector");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let logged = Arc::new(Mutex::new(Vec::new()));
        let into = logged.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                into.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep reading after the key, as a terminal would.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut demo = Demo {
            child,
            url: String::new(),
            key: String::new(),
            stderr: logged,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while demo.key.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if let Some(url) = line.strip_prefix("URL:") {
                        demo.url = url.trim().to_owned();
                    } else if let Some(key) = line.strip_prefix("operator key:") {
                        demo.key = key.trim().to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the demo collector printed no URL and key within 30 s; it logged:\n{}",
                    demo.logs()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // It exited: once its stderr is read to the end, say what it said.
                    let _ = demo.child.wait();
                    let _ = stderr_reader.join();
                    panic!(
                        "the demo collector ({}) stopped before printing its URL and key; if the \
                         binary is stale, run `cargo build -p fleetdeck-collector`. It logged:\n{}",
                        collector_bin().display(),
                        demo.logs()
                    )
                }
            }
        }
        assert!(
            demo.url.starts_with("http://127.0.0.1:"),
            "URL {}",
            demo.url
        );
        assert!(
            demo.key.starts_with("fdk_"),
            "the demo's key has the fdk_ form"
        );
        demo
    }

    pub fn client(&self) -> CollectorClient {
        CollectorClient::new(&self.url, ApiKey::new(self.key.clone())).expect("the demo's URL")
    }

    /// What it logged so far, for failure messages.
    pub fn logs(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Waits until the collector has polled every host.
    pub async fn wait_all_up(
        &self,
        client: &CollectorClient,
        hosts: u32,
    ) -> fleetdeck_proto::Fleet {
        wait_for(
            "every simulated host up",
            Duration::from_secs(30),
            || async {
                let fleet = client.fleet().await.ok()?;
                (fleet.summary.hosts_up == hosts).then_some(fleet)
            },
        )
        .await
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A web server that is not a collector: it answers every request with `status` and an HTML
/// page, on a real socket, until the test's runtime ends.
pub async fn not_a_collector(status: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request head; the body (none for GET) does not matter.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let page = "<!doctype html><html><body><h1>It works!</h1></body></html>";
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

//! Helpers for the collector's integration tests: the real collector and agent binaries, the real
//! test bed, a real webhook receiver, the collector's real SQLite file. Nothing is mocked.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
pub use fleetdeck_testkit::*;

pub const AGENT_TOKEN: &str = "collector-test-agent-token-0123456789";

/// The agent binary, built beside this test binary (`cargo test` at the workspace root builds it;
/// a lone `cargo test -p fleetdeck-collector` builds it here first).
pub fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned();
    let bin = dir.join("fleetdeck-agent");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "fleetdeck-agent", "--bin", "fleetdeck-agent"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p fleetdeck-agent failed");
    }
    bin
}

pub fn collector_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetdeck-collector")
}

/// A temporary directory for configs, tokens and databases.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    /// With `FLEETDECK_TEST_STORE=postgres`, the collector's database on the test bed's
    /// PostgreSQL server, made for this directory and dropped with it.
    pg: Option<PgDatabase>,
}

/// Whether these tests' collectors store in PostgreSQL (`FLEETDECK_TEST_STORE=postgres`, with
/// the test bed's server: `testbed/testbed.sh pg up`) rather than SQLite.
pub fn on_postgres() -> bool {
    std::env::var("FLEETDECK_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The test bed's server as the test role sees it: its URL, the password from `PGPASSFILE`.
fn pg_url(database: Option<&str>) -> String {
    let url = std::env::var("FLEETDECK_TEST_PG_URL").expect(
        "FLEETDECK_TEST_STORE=postgres needs the test bed's server: testbed/testbed.sh pg up, then eval \"$(testbed/testbed.sh env)\"",
    );
    let url = match database {
        Some(name) => match url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => url,
        },
        None => url,
    };
    match std::env::var("PGPASSFILE") {
        Ok(file) => format!("{url}?passfile={file}"),
        Err(_) => url,
    }
}

/// A database of its own on the test bed's server.
struct PgDatabase {
    name: String,
}

/// Runs `f` on a thread of its own: PostgreSQL's sync client cannot block a thread that drives
/// tokio tasks, which is where the tests run.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("database thread"))
}

fn pg_admin(sql: &str) {
    off_runtime(|| {
        let target = fleetdeck_collector::store::db::PgTarget::parse(&pg_url(None), None)
            .expect("FLEETDECK_TEST_PG_URL");
        target
            .connect()
            .expect("the test bed's PostgreSQL server")
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

impl PgDatabase {
    fn new() -> Self {
        // The test role's password is a secret the daemons' logs must not show.
        if let Ok(file) = std::env::var("PGPASSFILE") {
            if let Ok(text) = std::fs::read_to_string(file) {
                for line in text.lines() {
                    if let Some((_, password)) = line.rsplit_once(':') {
                        secret(password);
                    }
                }
            }
        }
        let name = format!("fdt_{:016x}", rand::random::<u64>());
        pg_admin(&format!("CREATE DATABASE {name}"));
        Self { name }
    }
}

impl Drop for PgDatabase {
    /// Dropped once the test is done with it; a database that cannot be dropped is left on the
    /// test bed's server with a warning, not a failure of the test that used it.
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = off_runtime(|| {
            let target = fleetdeck_collector::store::db::PgTarget::parse(&pg_url(None), None)?;
            let conn = target.connect().map_err(|e| e.to_string())?;
            conn.execute_batch(&sql).map_err(|e| e.to_string())
        }) {
            eprintln!("warning: {sql}: {e}");
        }
    }
}

impl Workdir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = on_postgres().then(PgDatabase::new);
        Self { dir, pg }
    }

    /// A directory whose collector stores in SQLite, whichever the test pass.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self { dir, pg: None }
    }

    /// A directory whose collector stores in a new database on the test bed's PostgreSQL server,
    /// whichever the test pass.
    pub fn postgres() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            dir,
            pg: Some(PgDatabase::new()),
        }
    }

    /// collector.toml's `database`: `collector.db` in this directory, or its PostgreSQL database.
    pub fn database_line(&self) -> String {
        match &self.pg {
            Some(pg) => format!("database = \"{}\"\n", pg_url(Some(&pg.name))),
            None => "database = \"collector.db\"\n".to_owned(),
        }
    }

    /// Where the collector of this directory stores.
    pub fn target(&self) -> fleetdeck_collector::store::Target {
        match &self.pg {
            Some(pg) => fleetdeck_collector::store::Target::Postgres(Box::new(
                fleetdeck_collector::store::db::PgTarget::parse(&pg_url(Some(&pg.name)), None)
                    .expect("the test database's URL"),
            )),
            None => fleetdeck_collector::store::Target::Sqlite(self.path("collector.db")),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `name` with mode 0600, and records its content as secrets for the secrets check:
    /// the values of an `.env` file (`*.env`), or each line of anything else (a token).
    pub fn secret(&self, name: &str, text: &str) -> PathBuf {
        if name.ends_with(".env") {
            secret_env(text);
        } else {
            secret(text);
        }
        let path = self.path(name);
        std::fs::write(&path, text).expect("write secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

/// How the collector tests log: the collector's debug lines say when a stream opens.
pub const RUST_LOG: &str = "info,fleetdeck_collector=debug";

/// An agent config in `work` listening on `listen`, watching `apps` (TOML tables).
pub fn agent_config(work: &Workdir, name: &str, listen: &str, apps: &str) -> PathBuf {
    // Workdir::secret records the token for the secrets check.
    work.secret(&format!("{name}.token"), AGENT_TOKEN);
    work.write(
        &format!("{name}.toml"),
        &format!(
            "listen = [\"{listen}\"]\ntoken_file = \"{name}.token\"\nsystemd = \"user\"\nsample_interval = \"1s\"\n{apps}"
        ),
    )
}

/// The real agent on loopback.
pub fn start_agent(config: &Path) -> Daemon {
    Daemon::spawn(
        Command::new(agent_bin()).arg("--config").arg(config),
        "fleetdeck-agent",
        RUST_LOG,
    )
}

/// The real agent inside the test bed's network namespace (a second host at 10.99.0.2).
pub fn start_agent_in_netns(config: &Path) -> Daemon {
    Daemon::spawn(
        Command::new("nsenter")
            .arg("--net=/run/netns/tb-agent")
            .arg(agent_bin())
            .arg("--config")
            .arg(config)
            .arg("--allow-public-bind"), // 10.99.0.2 is the test host's private address
        "fleetdeck-agent in netns tb-agent",
        RUST_LOG,
    )
}

/// The `[[agents]]` table of an agent at `addr`.
pub fn agent_entry(name: &str, addr: SocketAddr) -> String {
    format!(
        "[[agents]]\nname = \"{name}\"\nurl = \"http://{addr}\"\ntoken_file = \"{name}.token\"\n"
    )
}

/// Writes collector.toml (mode 0600: webhook URLs are secrets, so the collector refuses a config
/// that holds any and is readable by others): loopback, a database in `work`, 1 s polls unless
/// `body` sets `poll_interval`.
pub fn collector_config(work: &Workdir, body: &str) -> PathBuf {
    let polls = if body.contains("poll_interval") {
        ""
    } else {
        "poll_interval = \"1s\"\npoll_timeout = \"700ms\"\n"
    };
    let path = work.write(
        "collector.toml",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n{}{polls}{body}",
            work.database_line()
        ),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

pub fn start_collector(config: &Path) -> Daemon {
    Daemon::spawn(
        Command::new(collector_bin()).arg("--config").arg(config),
        "fleetdeck-collector",
        RUST_LOG,
    )
}

/// `keys create` through the binary; the key is the last line.
pub fn create_key(config: &Path, name: &str, role: &str) -> String {
    let out = Command::new(collector_bin())
        .arg("--config")
        .arg(config)
        .args(["keys", "create", "--name", name, "--role", role])
        .output()
        .expect("run keys create");
    // Its stdout is the key, printed on purpose; its stderr is a log.
    save_log("fleetdeck-collector-keys", None, &out.stderr);
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .last()
        .expect("a key on the last line")
        .trim()
        .to_owned();
    secret(&key);
    key
}

/// A client of the collector's API with one key.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(collector: &Daemon, key: &str) -> Self {
        Self {
            base: collector.url(""),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request")
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json")
    }

    pub async fn sse(&self, path: &str, last_event_id: Option<&str>) -> SseStream {
        SseStream::open(
            &self.http,
            &format!("{}{path}", self.base),
            &self.key,
            last_event_id,
        )
        .await
    }
}

/// A real local HTTP receiver for webhooks: records every body it is sent.
#[derive(Clone, Default)]
pub struct Receiver {
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    pub addr: Option<SocketAddr>,
}

impl Receiver {
    pub async fn start() -> Self {
        let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let store = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |_headers: HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    store.lock().expect("receiver lock").push(value);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            bodies,
            addr: Some(addr),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.expect("started"))
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().expect("receiver lock").clone()
    }

    /// The alerts of `kind` about `host` (and `app`, if given).
    pub fn alerts(&self, kind: &str, host: &str, app: Option<&str>) -> usize {
        self.received()
            .iter()
            .filter(|b| {
                b["kind"] == kind
                    && b["host"] == host
                    && match app {
                        Some(a) => b["app"] == a,
                        None => b["app"].is_null(),
                    }
            })
            .count()
    }
}

/// The names of the hosts in a `GET /v1/fleet` answer.
pub fn host_names(fleet: &serde_json::Value) -> Vec<String> {
    fleet["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["name"].as_str().map(str::to_owned))
        .collect()
}

/// The collector's database beside the running collector (SQLite's WAL allows it; PostgreSQL a
/// session of the test's own).
pub struct Db(fleetdeck_collector::store::Target);

pub fn db(work: &Workdir) -> Db {
    Db(work.target())
}

impl Db {
    /// Runs `f` on a new connection, on a thread of its own.
    pub fn run<T: Send>(
        &self,
        f: impl FnOnce(
                &fleetdeck_collector::store::Conn,
            ) -> Result<T, fleetdeck_collector::store::StoreError>
            + Send,
    ) -> Result<T, fleetdeck_collector::store::StoreError> {
        off_runtime(|| f(&self.0.connect()?))
    }
}

/// The seqs of the host's raw samples per agent instance, in order (none while the collector has
/// not created its schema yet).
pub fn stored_seqs(work: &Workdir, host: &str) -> Vec<(i64, Vec<i64>)> {
    if work.pg.is_none() && !work.path("collector.db").exists() {
        return Vec::new();
    }
    let Ok(rows) = db(work).run(|c| {
        c.query_map(
            "SELECT s.instance, s.seq FROM samples_raw s JOIN hosts h ON h.id = s.host_id
             WHERE h.name = ?1 ORDER BY s.instance, s.seq",
            fleetdeck_collector::params![host],
            |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
        )
    }) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, Vec<i64>)> = Vec::new();
    for (instance, seq) in rows {
        match out.last_mut() {
            Some((i, seqs)) if *i == instance => seqs.push(seq),
            _ => out.push((instance, vec![seq])),
        }
    }
    out
}

/// Asserts the seqs have no hole.
pub fn assert_contiguous(seqs: &[i64], what: &str) {
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{what}: a gap in the stored samples between seq {} and {}",
            pair[0],
            pair[1]
        );
    }
}

/// `testbed.sh net VERB` on the test bed's namespace host tb-agent (up, cut, drop, heal, down).
pub fn testbed_net(verb: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed/testbed.sh");
    run(script, &["net", verb]);
}

/// A simulated fleet (`fleetdeck-sim`) served on loopback for the rest of the test: the simulator
/// and its address (agent `i` at `http://ADDR/agents/i`).
pub async fn serve_sim(
    config: fleetdeck_sim::SimConfig,
) -> (std::sync::Arc<fleetdeck_sim::Sim>, SocketAddr) {
    let sim = fleetdeck_sim::Sim::new(config).expect("the simulator");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let addr = listener.local_addr().expect("simulator address");
    let served = sim.clone();
    tokio::spawn(async move {
        let _ = served.serve(listener, std::future::pending()).await;
    });
    (sim, addr)
}

/// Heals tb-agent's partition even when the test fails half-way.
pub struct HealOnDrop;

impl Drop for HealOnDrop {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed/testbed.sh");
        let _ = Command::new(script).args(["net", "heal"]).output();
    }
}

/// The agent's newest sample seq (`latest_seq` of its /v1/samples) at `base` (the agent's URL, or a
/// simulated agent's), or None while it does not answer.
pub async fn agent_latest_seq(http: &reqwest::Client, base: &str) -> Option<i64> {
    let page: serde_json::Value = http
        .get(format!("{base}/v1/samples?after=0&limit=1"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    page["latest_seq"].as_i64()
}

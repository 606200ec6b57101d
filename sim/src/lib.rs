//! Virtual Fleetdeck agents: one HTTP server that speaks the agent wire contract v1 for many
//! simulated hosts, for `fleetdeck-collector --demo` and the collector's benchmarks.
//!
//! Modules: `host` holds each virtual host's state and computes its metrics and samples on demand
//! from a cheap hash (`noise`); `logs` makes deterministic log lines from the clock; `env` reads
//! and edits the demo `.env` files; `chaos` crashes and recovers apps; `api` routes and serves it
//! all under `/agents/{index}`.
//!
//! Nothing runs per host in the background: with chaos off, a virtual agent costs only its state
//! in memory and the CPU of the requests it answers.

#![forbid(unsafe_code)]

mod api;
mod chaos;
mod env;
mod host;
mod logs;
mod noise;
mod problems;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

pub use fleetdeck_proto::{AppState, Exit};

use crate::host::{Host, HostParams, Process};

/// How many virtual agents to simulate, and how they behave.
#[derive(Clone)]
pub struct SimConfig {
    /// Number of virtual hosts, each one agent under `/agents/{index}` (0-based).
    pub hosts: usize,
    /// Apps per host, 1 to 8 (values outside are clamped); systemd and Docker alternate.
    pub apps_per_host: usize,
    /// Time between two samples of a host (at least 1 ms); also the snapshot's window.
    pub sample_interval: Duration,
    /// The bearer token every route but `healthz` requires; must not be empty.
    pub token: String,
    /// Where the `.env` files live (`<env_dir>/<host>/<app>.env`); `None`: no app has one
    /// (the benchmark), and `GET .../env` answers 404 `no_env_file`.
    pub env_dir: Option<PathBuf>,
    /// Whether apps crash and recover by themselves (see [`Sim::spawn_chaos`]).
    pub chaos: bool,
    /// Seeds every figure, name and secret: the same seed gives the same fleet (but new instance
    /// ids at each start, as real agents have).
    pub seed: u64,
    /// Host names are `<prefix>-NN` (fewer than 100 hosts) or `<prefix>-NNNNN`, numbered from 1.
    pub host_prefix: String,
    /// Time between two log lines of every app (at least 1 ms); `None`: each app its own, 0.8
    /// to 2.2 s (a chatty fleet for the desktop's memory benchmark sets a few ms).
    pub log_period: Option<Duration>,
}

impl Default for SimConfig {
    /// Four demo hosts with four apps each, a 10 s sample interval, token `demo`, no `.env`
    /// files, no chaos.
    fn default() -> Self {
        Self {
            hosts: 4,
            apps_per_host: 4,
            sample_interval: Duration::from_secs(10),
            token: "demo".to_owned(),
            env_dir: None,
            chaos: false,
            seed: 1,
            host_prefix: "demo".to_owned(),
            log_period: None,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("hosts", &self.hosts)
            .field("apps_per_host", &self.apps_per_host)
            .field("sample_interval", &self.sample_interval)
            .field("token", &"<hidden>")
            .field("env_dir", &self.env_dir)
            .field("chaos", &self.chaos)
            .field("seed", &self.seed)
            .field("host_prefix", &self.host_prefix)
            .field("log_period", &self.log_period)
            .finish()
    }
}

/// The simulator: many virtual agents behind one [`axum::Router`].
pub struct Sim {
    config: SimConfig,
    token_digest: [u8; 32],
    hosts: Vec<Arc<Host>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("config", &self.config)
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Builds the fleet; with `env_dir`, creates each app's `.env` (mode 0600, demo content:
    /// `PORT`, `DATABASE_URL`, `API_KEY`, ...) unless it already exists, so edits survive a
    /// restart. Fails if a file cannot be created, the token is empty or `sample_interval` is
    /// under 1 ms.
    pub fn new(config: SimConfig) -> std::io::Result<Arc<Sim>> {
        if config.token.trim().is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the token is empty: every virtual agent needs one for its bearer auth",
            ));
        }
        let interval_ms = u64::try_from(config.sample_interval.as_millis()).unwrap_or(u64::MAX);
        if interval_ms == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "sample_interval must be at least 1 ms",
            ));
        }
        let now = host::now_ms();
        let width = if config.hosts < 100 {
            2
        } else {
            config.hosts.to_string().len().max(5)
        };
        let mut hosts = Vec::with_capacity(config.hosts);
        for i in 0..config.hosts {
            let name = format!("{}-{:0width$}", config.host_prefix, i + 1);
            let env_dir = config.env_dir.as_ref().map(|d| d.join(&name));
            let host = Host::new(HostParams {
                name,
                seed: noise::hash(config.seed, i as u64),
                instance_id: random_id(),
                now_ms: now,
                interval_ms,
                apps: config.apps_per_host.clamp(1, 8),
                env_dir,
                log_period_ms: config.log_period.map(|d| d.as_millis() as u64),
            });
            if let Some(dir) = &host.env_dir {
                let names: Vec<&str> = host.apps.iter().map(|a| a.name).collect();
                env::create_demo(dir, &host.name, &names, noise::hash(config.seed, i as u64))?;
            }
            hosts.push(Arc::new(host));
        }
        let token_digest = Sha256::digest(config.token.as_bytes()).into();
        Ok(Arc::new(Sim {
            config,
            token_digest,
            hosts,
        }))
    }

    /// The HTTP routes of every virtual agent: agent `i` answers under `/agents/{i}` exactly as
    /// a real agent does at its root (`/agents/3/v1/snapshot`, `/agents/3/healthz`, ...).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }

    /// Serves [`Sim::router`] on `listener` until `shutdown` resolves (then waits for open
    /// connections, SSE streams included, to end).
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Each virtual agent's host name and path prefix (`("demo-01", "/agents/0")`), in index order.
    pub fn agents(&self) -> Vec<(String, String)> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), format!("/agents/{i}")))
            .collect()
    }

    /// The number of virtual hosts.
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// The names of host `host`'s apps, in order (empty for an unknown host).
    pub fn app_names(&self, host: usize) -> Vec<String> {
        self.hosts.get(host).map_or_else(Vec::new, |h| {
            h.apps.iter().map(|a| a.name.to_owned()).collect()
        })
    }

    /// Host `host` at `t_ms` in the past, for a stored history: its snapshot with each app (by
    /// index, as [`Sim::app_names`] lists them) in the state, since-time and last exit given,
    /// and its sample numbered `seq`. The figures are those the host had at that time.
    pub fn past(
        &self,
        host: usize,
        t_ms: u64,
        seq: u64,
        apps: &[(AppState, u64, Option<Exit>)],
    ) -> Option<(fleetdeck_proto::Snapshot, fleetdeck_proto::Sample)> {
        Some(self.hosts.get(host)?.past(t_ms, seq, apps))
    }

    /// The current state of an app, if the host and app exist.
    pub fn app_state(&self, host: usize, app: &str) -> Option<AppState> {
        let h = self.hosts.get(host)?;
        h.state(h.app_index(app)?)
    }

    /// Host `host`'s agent instance id (new at each [`Sim::new`]).
    pub fn instance_id(&self, host: usize) -> Option<String> {
        self.hosts.get(host).map(|h| h.instance_id.clone())
    }

    /// The app of host 0 that chaos keeps crash-looping forever, if there is a host.
    pub fn troubled_app(&self) -> Option<String> {
        let h = self.hosts.first()?;
        h.apps.get(chaos::forever_app(h)).map(|a| a.name.to_owned())
    }

    /// With `config.chaos`, starts the one task that, every 2–4 s, crashes a random running app
    /// (failed with exit code 1–3 or signal 9; a systemd app may go crash-looping instead) and
    /// recovers it 5–20 s later (running, one more restart), and keeps [`Sim::troubled_app`] of
    /// host 0 cycling failed, crash-looping, running about every 15 s. Logs keep flowing
    /// throughout. Without chaos the task ends at once. Abort the handle to stop it.
    pub fn spawn_chaos(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        if self.config.chaos {
            tokio::spawn(chaos::run(self.clone()))
        } else {
            tokio::spawn(async {})
        }
    }

    /// Moves an app to `state` as a transition, emitted as an event on `/v1/events`, with `exit`
    /// as how its process ended. Entering `running` starts a new process, counted as a restart
    /// when the app was failed or crash-looping; `running` on a running app is a restart
    /// (`restarted: true`); any other state the app is already in changes nothing. An unknown
    /// host or app is ignored (with a warning).
    pub fn set_state(&self, host: usize, app: &str, state: AppState, exit: Option<Exit>) {
        let Some((h, i)) = self
            .hosts
            .get(host)
            .and_then(|h| Some((h, h.app_index(app)?)))
        else {
            tracing::warn!(host, app, "set_state: no such host or app");
            return;
        };
        let process = if state == AppState::Running {
            let counted = matches!(h.state(i), Some(AppState::Failed | AppState::CrashLooping));
            Process::New { counted }
        } else {
            Process::Same
        };
        h.change(i, state, exit, process);
    }

    /// Makes a host unreachable (every route of it answers 503 `unreachable` and its open SSE
    /// streams end) or reachable again. An unknown host is ignored.
    pub fn set_reachable(&self, host: usize, reachable: bool) {
        if let Some(h) = self.hosts.get(host) {
            tracing::debug!(host = %h.name, reachable, "sim: reachability");
            h.set_reachable(reachable);
        }
    }

    /// Whether `Authorization: Bearer <token>` is present and right; compares digests of equal
    /// length without an early exit, so timing reveals nothing of the token.
    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        digest
            .iter()
            .zip(&self.token_digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A fresh random id (32 hex digits), like the agent's instance id.
fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

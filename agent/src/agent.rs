//! The agent's domain: one [`Agent`] answers "what runs here and how is it" from systemd, Docker
//! and /proc, for the HTTP handlers to serialize.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use fleetdeck_proto::{
    ActionOutcome, AppAction, AppKind, AppSample, AppState, AppStatus, DiskIoSample, EnvBackups,
    EnvFile, EnvUpdate, EnvWritten, EventSource, FsSample, HostMetrics, Info, NetSample, Sample,
    SamplesPage, Snapshot, SourceHealth, Sources,
};
use futures_util::future::join_all;

use crate::config::{AppConfig, AppSource, Config};
use crate::crash::CrashLines;
use crate::docker::DockerSource;
use crate::env_file;
use crate::events::EventLog;
use crate::host::{process_rss_bytes, HostError, HostReader};
use crate::journal::Journal;
use crate::requests::Requests;
use crate::ring::Ring;

mod logs;
pub use logs::LogPageStream;
mod record;
mod reload;
use crate::search::{SearchError, Searches};
use crate::sources::SourceTracker;
use crate::systemd::{app_state, Systemd};
use record::Seen;
pub use reload::{Reloaded, Watched};

#[derive(Debug)]
pub struct Agent {
    /// The settings read at start. Its `apps` are moved out: the apps watched now (listed, then
    /// discovered; a reload or a discovery pass swaps them) are [`Agent::watched`].
    config: Config,
    watched: std::sync::RwLock<Arc<Watched>>,
    /// Tells the watch task that the watched apps changed (the value counts the changes).
    watched_changes: tokio::sync::watch::Sender<u64>,
    /// Digests of the tokens a request may carry: `token_file`'s, and `next_token_file`'s
    /// during a rotation. A reload reads them again.
    token_digests: std::sync::RwLock<Vec<[u8; 32]>>,
    /// `[discover]` as last loaded.
    discover: std::sync::RwLock<crate::discover::Discover>,
    /// Wakes discovery early (a discovered app was read as gone).
    discover_now: tokio::sync::Notify,
    instance_id: String,
    started_unix_ms: u64,
    host: HostReader,
    systemd: Systemd,
    journal: Journal,
    docker: DockerSource,
    ring: Mutex<Ring>,
    events: EventLog,
    /// The last result of every endpoint check.
    checks: crate::checks::Checks,
    /// Serializes `.env` writes; the guard moves into the blocking write itself, so a client
    /// that goes away mid-write cannot let a second write start beside it.
    env_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Slots for log searches (pages with `grep`), in journald or the agent.
    searches: Searches,
    /// Actions under way and stops asked for through the API.
    requests: Requests,
    /// Bounds the reads of crashed processes' last lines.
    crash_lines: CrashLines,
    /// Whether systemd and Docker answered when last asked.
    sources: SourceTracker,
    /// Per app: held by the refresh under way.
    refreshing: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per app, what its last reading showed: a crash's context reports the memory before it.
    seen: Mutex<std::collections::HashMap<String, Seen>>,
    /// Woken at each death a source tells of (see [`Agent::note_death`]).
    deaths: tokio::sync::Notify,
}

/// Why an action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no app named {0:?} is configured on this agent; GET /v1/apps lists them")]
    NotFound(String),
    #[error("actions are not enabled for app {0:?}: set allow_actions = true in its [[apps]] entry of the agent's config")]
    NotAllowed(String),
    #[error("{0} does not exist on this host")]
    TargetMissing(String),
    /// The `.env` cannot be applied the way the app reads it (a container made without compose).
    #[error("{0}")]
    CannotApply(String),
    #[error("{0}")]
    Source(String),
}

/// Why logs cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("no app named {0:?} is configured on this agent; GET /v1/apps lists them")]
    NotFound(String),
    #[error("{0:?} is not a cursor of this app's logs; use a `cursor` from an entry of this app")]
    BadCursor(String),
    #[error("{0}")]
    BadQuery(String),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("{0}")]
    Source(String),
}

/// Why an app's `.env` cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EnvAccessError {
    #[error("no app named {0:?} is configured on this agent; GET /v1/apps lists them")]
    NotFound(String),
    #[error("app {0:?} has no env_file in the agent's config; add env_file = \"/path/to/.env\" to its [[apps]] entry")]
    NoEnvFile(String),
    #[error(transparent)]
    File(#[from] crate::env_file::EnvError),
    #[error("app {app:?} has no backup {n} of its .env (1 is the newest, at most {max}); GET /v1/apps/{app}/env/backups lists them")]
    NoBackup { app: String, n: usize, max: usize },
}

/// A stream of log entries, whatever their source.
pub type LogFollow =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = fleetdeck_proto::LogEntry> + Send>>;

/// An app's status and, if its source failed, the source's error.
struct Probe {
    status: AppStatus,
    source_error: Option<String>,
}

impl Agent {
    pub fn new(mut config: Config) -> Result<Self, HostError> {
        let host = HostReader::new()?;
        let listed = std::mem::take(&mut config.apps);
        let watched = Watched::new(listed, Vec::new());
        let systemd = Systemd::new(config.systemd);
        let docker = DockerSource::new(config.docker_socket.clone());
        let instance_id = new_instance_id();
        let capacity =
            (config.sample_retention.as_secs() / config.sample_interval.as_secs().max(1)).max(1);
        Ok(Self {
            events: EventLog::new(instance_id.clone()),
            checks: crate::checks::Checks::new(&watched.apps),
            env_lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            searches: Searches::default(),
            requests: Requests::default(),
            crash_lines: CrashLines::default(),
            sources: SourceTracker::default(),
            refreshing: Mutex::default(),
            watched: std::sync::RwLock::new(Arc::new(watched)),
            watched_changes: tokio::sync::watch::Sender::new(0),
            token_digests: std::sync::RwLock::new(reload::token_digests(&config)),
            discover: std::sync::RwLock::new(config.discover.clone()),
            discover_now: tokio::sync::Notify::new(),
            seen: Mutex::new(std::collections::HashMap::new()),
            deaths: tokio::sync::Notify::new(),
            ring: Mutex::new(Ring::new(capacity as usize)),
            instance_id,
            started_unix_ms: unix_ms_now(),
            host,
            systemd,
            journal: Journal::new(config.systemd),
            docker,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn info(&self) -> Info {
        let (memory, capacity) = self.ring_usage();
        let mut capabilities = vec!["host".to_owned()];
        if self.uses(AppKind::Systemd) {
            capabilities.push("systemd".to_owned());
        }
        if self.uses(AppKind::Docker) {
            capabilities.push("docker".to_owned());
        }
        Info {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            wire_version: fleetdeck_proto::WIRE_VERSION,
            hostname: self.host.hostname().to_owned(),
            instance_id: self.instance_id.clone(),
            boot_id: self.host.boot_id().to_owned(),
            started_unix_ms: self.started_unix_ms,
            capabilities,
            sample_interval_ms: self.config.sample_interval.as_millis() as u64,
            samples_capacity: capacity as u64,
            samples_memory_bytes: memory as u64,
        }
    }

    fn uses(&self, kind: AppKind) -> bool {
        self.watched().apps.iter().any(|a| kind_of(a) == kind)
    }

    pub fn checks(&self) -> &crate::checks::Checks {
        &self.checks
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    fn lock_ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // Every update of the ring is a single push: a panic elsewhere cannot leave it half-done.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One poll of the host and every app, read now. `seq` is that of the latest sample in the
    /// ring, so a collector knows where its backfill stands. `taken_unix_ms` is when the reads
    /// began: every status in it is at least that new, so a collector can order it against the
    /// events it already has (a status read before a crash must not look newer than the crash).
    pub async fn snapshot(&self) -> Result<Snapshot, HostError> {
        let taken_unix_ms = unix_ms_now();
        let (host, (apps, sources)) =
            tokio::join!(self.host.read(), self.apps_with_sources(EventSource::Poll));
        Ok(Snapshot {
            seq: self.lock_ring().latest_seq().unwrap_or(0),
            instance_id: self.instance_id.clone(),
            taken_unix_ms,
            host: host?,
            apps,
            sources,
        })
    }

    /// Reads the host and every app and stores them as the next sample; returns its seq.
    pub async fn record_sample(&self) -> Result<u64, HostError> {
        let (host, (apps, _)) =
            tokio::join!(self.host.read(), self.apps_with_sources(EventSource::Poll));
        let sample = sample_of(&host?, &apps, unix_ms_now());
        Ok(self.lock_ring().push(&sample))
    }

    pub fn samples_after(&self, after: u64, limit: usize) -> SamplesPage {
        self.lock_ring()
            .samples_after(after, limit, &self.instance_id)
    }

    /// Saves the sample ring to `dir` (see [`crate::ring::keep`]): when the agent stops.
    pub fn save_samples(&self, dir: &std::path::Path) -> std::io::Result<usize> {
        let ring = self.lock_ring();
        crate::ring::keep::save(dir, ring.samples(), unix_ms_now())?;
        Ok(ring.len())
    }

    /// Takes back the samples a previous run saved in `dir`, before the first new one.
    pub fn restore_samples(
        &self,
        dir: &std::path::Path,
    ) -> std::io::Result<crate::ring::keep::Taken> {
        crate::ring::keep::take(dir, &mut self.lock_ring())
    }

    /// Bytes the sample ring holds now, and how many samples it keeps at most.
    pub fn ring_usage(&self) -> (usize, usize) {
        let ring = self.lock_ring();
        (ring.memory_bytes(), ring.capacity())
    }

    pub async fn apps(&self) -> Vec<AppStatus> {
        self.apps_with_sources(EventSource::Poll).await.0
    }

    /// The status of one app, or `None` if no app of that name is configured.
    pub async fn app(&self, name: &str) -> Option<AppStatus> {
        self.refresh(name, EventSource::Poll).await
    }

    /// Reads one app now and records what it shows (a watcher calls this when its source signals
    /// a change; `source` says which).
    pub async fn refresh(&self, name: &str, source: EventSource) -> Option<AppStatus> {
        let watched = self.watched();
        let app = watched.app(name)?;
        // One read of an app at a time: signals come in bursts, and a second read beside one
        // that waits for a crash's lines would read them again for nothing.
        let serial = self.serial(name);
        let _serial = serial.lock().await;
        let ticket = self.events.begin_read();
        let probe = self.probe(app).await;
        self.note_source(kind_of(app), probe.source_error);
        let status = probe.status;
        if self.gone_discovered(&watched, &status) {
            return None;
        }
        self.record(app, &status, source, unix_ms_now(), ticket)
            .await;
        Some(status)
    }

    /// Records what the agent just noticed of a status source (`None`: it answered); a change
    /// (down with why, or back up) is a `source` event, once, at that moment.
    pub fn note_source(&self, kind: AppKind, error: Option<String>) {
        let name = match kind {
            AppKind::Systemd => "systemd",
            AppKind::Docker => "docker",
        };
        if let Some(change) = self.sources.note(name, error) {
            if change.up {
                tracing::info!(source = name, "status source answers again");
            } else {
                tracing::warn!(
                    source = name,
                    error = change.error.as_deref().unwrap_or(""),
                    "status source stopped answering"
                );
            }
            self.events
                .record_source(name, change.up, change.error, unix_ms_now());
        }
    }

    /// Passes a Docker event's action on (see [`DockerSource::note_lifecycle`]).
    pub async fn docker_lifecycle(&self, container: &str, action: &str, at_unix_ms: u64) {
        self.docker
            .note_lifecycle(container, action, at_unix_ms)
            .await;
    }

    /// App `name`'s env file and the links it may be reached through.
    fn env_path(
        &self,
        name: &str,
    ) -> Result<(std::path::PathBuf, env_file::Links), EnvAccessError> {
        let app = self
            .app_config(name)
            .ok_or_else(|| EnvAccessError::NotFound(name.to_owned()))?;
        let path = app
            .env_file
            .clone()
            .ok_or_else(|| EnvAccessError::NoEnvFile(name.to_owned()))?;
        Ok((path, app.env_links.clone()))
    }

    /// App `name`'s `.env` as written and as read.
    pub async fn env_read(&self, name: &str) -> Result<EnvFile, EnvAccessError> {
        let (path, links) = self.env_path(name)?;
        let file = tokio::task::spawn_blocking(move || env_file::read(&path, &links))
            .await
            .map_err(|e| env_file::EnvError::Invalid(format!("the read was interrupted: {e}")))??;
        Ok(file)
    }

    /// The backups of app `name`'s `.env` the agent keeps (newest first).
    pub async fn env_backups(&self, name: &str) -> Result<EnvBackups, EnvAccessError> {
        let (path, links) = self.env_path(name)?;
        let backups = tokio::task::spawn_blocking(move || env_file::backups(&path, &links))
            .await
            .map_err(|e| env_file::EnvError::Invalid(format!("the read was interrupted: {e}")))??;
        Ok(EnvBackups { backups })
    }

    /// Backup `n` (1 is the newest) of app `name`'s `.env`, as a file is read.
    pub async fn env_backup(&self, name: &str, n: usize) -> Result<EnvFile, EnvAccessError> {
        let (path, links) = self.env_path(name)?;
        let no_backup = || EnvAccessError::NoBackup {
            app: name.to_owned(),
            n,
            max: env_file::BACKUPS,
        };
        if !(1..=env_file::BACKUPS).contains(&n) {
            return Err(no_backup());
        }
        let file = tokio::task::spawn_blocking(move || env_file::backup(&path, &links, n))
            .await
            .map_err(|e| env_file::EnvError::Invalid(format!("the read was interrupted: {e}")))??;
        file.ok_or_else(no_backup)
    }

    /// Applies `update` to app `name`'s `.env` if it is still at `if_match`. Writes to one file
    /// are serialized, so the etag check and the rename cannot interleave.
    pub async fn env_write(
        &self,
        name: &str,
        if_match: &str,
        update: EnvUpdate,
    ) -> Result<EnvWritten, EnvAccessError> {
        let (path, links) = self.env_path(name)?;
        let serial = self.env_lock.clone().lock_owned().await;
        let keys = update.set.len() + update.unset.len();
        let p = path.clone();
        let if_match = if_match.to_owned();
        let etag = tokio::task::spawn_blocking(move || {
            let _serial = serial;
            env_file::write(&p, &links, &if_match, &update)
        })
        .await
        .map_err(|e| env_file::EnvError::Invalid(format!("the write was interrupted: {e}")))??;
        // Which app and how many keys; never a value.
        tracing::info!(app = name, keys, "env file written");
        Ok(EnvWritten {
            etag,
            path: path.display().to_string(),
        })
    }

    /// Carries out `action` on app `name` if its config allows it; waits for it to finish.
    pub async fn act(&self, name: &str, action: AppAction) -> Result<ActionOutcome, ActionError> {
        let app = self
            .app_config(name)
            .ok_or_else(|| ActionError::NotFound(name.to_owned()))?;
        if !app.allow_actions {
            return Err(ActionError::NotAllowed(name.to_owned()));
        }
        // Until the status read after it is recorded, what the app does is what was asked.
        let _in_flight = self.requests.begin(name, action, unix_ms_now());
        let result = self.act_on(&app, action).await;
        if result.is_err() && action == AppAction::Stop {
            self.requests.stop_failed(name);
        }
        let result = result?;
        tracing::info!(app = name, action = action.as_str(), result = %result, "action carried out");
        let status = self
            .refresh(name, EventSource::Poll)
            .await
            .ok_or_else(|| ActionError::NotFound(name.to_owned()))?;
        Ok(ActionOutcome {
            app: name.to_owned(),
            action,
            result,
            status,
        })
    }

    async fn act_on(&self, app: &AppConfig, action: AppAction) -> Result<String, ActionError> {
        if action == AppAction::Apply {
            return self.apply(app).await;
        }
        Ok(match &app.source {
            AppSource::SystemdUnit(unit) => self.systemd.act(unit, action).await.map_err(|e| {
                if e.is_no_such_unit() {
                    ActionError::TargetMissing(format!("unit {unit:?}"))
                } else {
                    ActionError::Source(e.to_string())
                }
            })?,
            AppSource::DockerContainer(c) => match self.docker.act(c, action).await {
                Ok(true) => "done".to_owned(),
                Ok(false) => return Err(ActionError::TargetMissing(format!("container {c:?}"))),
                Err(e) => return Err(ActionError::Source(e.to_string())),
            },
        })
    }

    /// Makes the app's edited `.env` take effect the way it reads it: see [`AppAction::Apply`].
    async fn apply(&self, app: &AppConfig) -> Result<String, ActionError> {
        match &app.source {
            AppSource::SystemdUnit(unit) => {
                let job = self
                    .systemd
                    .act(unit, AppAction::Restart)
                    .await
                    .map_err(|e| {
                        if e.is_no_such_unit() {
                            ActionError::TargetMissing(format!("unit {unit:?}"))
                        } else {
                            ActionError::Source(e.to_string())
                        }
                    })?;
                Ok(format!(
                    "restarted {unit} (job {job}): systemd reads EnvironmentFile= when the unit starts"
                ))
            }
            AppSource::DockerContainer(c) => match self.docker.apply(c).await {
                Ok(Some(ran)) => Ok(format!(
                    "recreated {c} with `{ran}`: compose applies .env when it creates the container"
                )),
                Ok(None) => Err(ActionError::TargetMissing(format!("container {c:?}"))),
                Err(crate::docker::ApplyError::Compose(e)) => {
                    Err(ActionError::CannotApply(e.to_string()))
                }
                Err(crate::docker::ApplyError::Docker(e)) => {
                    Err(ActionError::Source(e.to_string()))
                }
            },
        }
    }

    async fn apps_with_sources(&self, source: EventSource) -> (Vec<AppStatus>, Sources) {
        let ticket = self.events.begin_read();
        let watched = self.watched();
        let probes = join_all(watched.apps.iter().map(|a| self.probe(a))).await;
        // Discovered apps that are gone are not reported (discovery drops them).
        let (apps, probes): (Vec<&AppConfig>, Vec<Probe>) = watched
            .apps
            .iter()
            .zip(probes)
            .filter(|(_, p)| !self.gone_discovered(&watched, &p.status))
            .unzip();
        let now = unix_ms_now();
        join_all(
            apps.iter()
                .zip(&probes)
                .map(|(a, p)| self.record(a, &p.status, source, now, ticket)),
        )
        .await;
        let health = |kind: AppKind| {
            if !apps.iter().any(|a| kind_of(a) == kind) {
                return SourceHealth::Unused;
            }
            let error = apps
                .iter()
                .zip(&probes)
                .filter(|(a, _)| kind_of(a) == kind)
                .find_map(|(_, p)| p.source_error.clone());
            match error {
                Some(error) => SourceHealth::Down { error },
                None => SourceHealth::Up,
            }
        };
        let sources = Sources {
            systemd: health(AppKind::Systemd),
            docker: health(AppKind::Docker),
        };
        for (kind, health) in [
            (AppKind::Systemd, &sources.systemd),
            (AppKind::Docker, &sources.docker),
        ] {
            match health {
                SourceHealth::Up => self.note_source(kind, None),
                SourceHealth::Down { error } => self.note_source(kind, Some(error.clone())),
                SourceHealth::Unused => {}
            }
        }
        (probes.into_iter().map(|p| p.status).collect(), sources)
    }

    async fn probe(&self, app: &AppConfig) -> Probe {
        let mut probe = self.probe_source(app).await;
        self.checks.fill(&mut probe.status);
        probe
    }

    async fn probe_source(&self, app: &AppConfig) -> Probe {
        match &app.source {
            AppSource::SystemdUnit(unit) => match self.systemd.unit(unit).await {
                Ok(p) => Probe {
                    status: AppStatus {
                        state: app_state(&p.load_state, &p.active_state, &p.sub_state),
                        since_unix_ms: p.state_change_usec.map(|us| us / 1000),
                        last_exit: p.last_exit(),
                        restarts: p.n_restarts.map(u64::from),
                        memory_bytes: p
                            .memory_current
                            .or_else(|| p.main_pid.and_then(process_rss_bytes)),
                        systemd: Some(p.detail()),
                        stopped_by_request: self.requests.stopped_by_request(
                            app.name.as_str(),
                            app_state(&p.load_state, &p.active_state, &p.sub_state),
                            p.state_change_usec.map(|us| us / 1000),
                        ),
                        ..blank(app, AppKind::Systemd, unit)
                    },
                    source_error: None,
                },
                Err(e) => unknown(app, AppKind::Systemd, unit, e.to_string()),
            },
            AppSource::DockerContainer(name) => match self.docker.container(name).await {
                Ok(Some(c)) => Probe {
                    status: AppStatus {
                        state: c.app_state(),
                        since_unix_ms: c.since_unix_ms(),
                        last_exit: c.last_exit(),
                        restarts: c.restart_count,
                        memory_bytes: c.memory_bytes,
                        docker: Some(c.detail()),
                        stopped_by_request: self.requests.stopped_by_request(
                            app.name.as_str(),
                            c.app_state(),
                            c.since_unix_ms(),
                        ),
                        ..blank(app, AppKind::Docker, name)
                    },
                    source_error: None,
                },
                Ok(None) => Probe {
                    status: AppStatus {
                        state: AppState::NotFound,
                        ..blank(app, AppKind::Docker, name)
                    },
                    source_error: None,
                },
                Err(e) => unknown(app, AppKind::Docker, name, e.to_string()),
            },
        }
    }
}

/// The compact form of a reading kept in the ring.
fn sample_of(host: &HostMetrics, apps: &[AppStatus], taken_unix_ms: u64) -> Sample {
    Sample {
        seq: 0,
        taken_unix_ms,
        cpu_percent: host.cpu.total_percent.map(|p| p as f32),
        memory_used_bytes: host.memory.used_bytes,
        memory_total_bytes: host.memory.total_bytes,
        swap_used_bytes: host.swap.used_bytes,
        swap_total_bytes: host.swap.total_bytes,
        cores: host.cpu.cores,
        load1: host.load.one as f32,
        load5: host.load.five as f32,
        load15: host.load.fifteen as f32,
        filesystems: host
            .filesystems
            .iter()
            .map(|f| FsSample {
                mount_point: f.mount_point.clone(),
                used_bytes: f.used_bytes,
                // As `df` counts Use%: the blocks reserved for root are not room an app has, so
                // a full disk (for apps) is at 100 % here, and 97 % is reachable on ext4.
                total_bytes: f
                    .used_bytes
                    .saturating_add(f.available_bytes)
                    .min(f.total_bytes.max(f.used_bytes)),
                inodes_used: f.inodes_used,
                inodes_total: f.inodes_total,
            })
            .collect(),
        network: host
            .network
            .iter()
            .map(|n| NetSample {
                name: n.name.clone(),
                rx_bytes_per_sec: n.rx_bytes_per_sec.map(|r| r.round() as u64),
                tx_bytes_per_sec: n.tx_bytes_per_sec.map(|r| r.round() as u64),
            })
            .collect(),
        apps: apps
            .iter()
            .map(|a| AppSample {
                name: a.name.clone(),
                state: a.state,
                restarts: a.restarts,
                memory_bytes: a.memory_bytes,
                cpu_percent: a
                    .docker
                    .as_ref()
                    .and_then(|d| d.cpu_percent)
                    .or_else(|| a.systemd.as_ref().and_then(|s| s.cpu_percent))
                    .map(|p| p as f32),
                memory_limit_bytes: a
                    .docker
                    .as_ref()
                    .and_then(|d| d.memory_limit_bytes)
                    .or_else(|| a.systemd.as_ref().and_then(|s| s.memory_limit_bytes)),
                net_rx_bytes_per_sec: a
                    .docker
                    .as_ref()
                    .and_then(|d| d.net_rx_bytes_per_sec)
                    .map(|r| r.round() as u64),
                net_tx_bytes_per_sec: a
                    .docker
                    .as_ref()
                    .and_then(|d| d.net_tx_bytes_per_sec)
                    .map(|r| r.round() as u64),
                checks: a.checks.iter().map(crate::checks::sample_of).collect(),
            })
            .collect(),
        disks: host
            .disks
            .iter()
            .map(|d| DiskIoSample {
                device: d.device.clone(),
                read_bytes_per_sec: d.read_bytes_per_sec.map(|r| r.round() as u64),
                write_bytes_per_sec: d.write_bytes_per_sec.map(|r| r.round() as u64),
            })
            .collect(),
    }
}

fn kind_of(app: &AppConfig) -> AppKind {
    match app.source {
        AppSource::SystemdUnit(_) => AppKind::Systemd,
        AppSource::DockerContainer(_) => AppKind::Docker,
    }
}

fn blank(app: &AppConfig, kind: AppKind, target: &str) -> AppStatus {
    AppStatus {
        name: app.name.to_string(),
        kind,
        target: target.to_owned(),
        state: AppState::Unknown,
        since_unix_ms: None,
        last_exit: None,
        restarts: None,
        memory_bytes: None,
        error: None,
        systemd: None,
        docker: None,
        expect: app.expect,
        stopped_by_request: false,
        checks: Vec::new(),
        degraded: false,
    }
}

fn unknown(app: &AppConfig, kind: AppKind, target: &str, error: String) -> Probe {
    Probe {
        status: AppStatus {
            error: Some(error.clone()),
            ..blank(app, kind, target)
        },
        source_error: Some(error),
    }
}

pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A random id for this run of the agent, from the kernel's UUID generator.
fn new_instance_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| {
            // /proc always has this file on Linux; should it not, the start time in nanoseconds
            // with the PID is still unique per run.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{nanos:x}-{:x}", std::process::id())
        })
}

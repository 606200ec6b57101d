//! The agent's domain: one [`Agent`] answers "what runs here and how is it" from systemd, Docker
//! and /proc, for the HTTP handlers to serialize.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use fleetdeck_proto::{AppKind, AppState, AppStatus, Info, Snapshot, SourceHealth, Sources};
use futures_util::future::join_all;

use crate::config::{AppConfig, AppSource, Config};
use crate::docker::DockerSource;
use crate::host::{process_rss_bytes, HostError, HostReader};
use crate::systemd::{app_state, Systemd};

#[derive(Debug)]
pub struct Agent {
    config: Config,
    instance_id: String,
    started_unix_ms: u64,
    seq: AtomicU64,
    host: HostReader,
    systemd: Systemd,
    docker: DockerSource,
}

/// An app's status and, if its source failed, the source's error.
struct Probe {
    status: AppStatus,
    source_error: Option<String>,
}

impl Agent {
    pub fn new(config: Config) -> Result<Self, HostError> {
        let host = HostReader::new()?;
        let systemd = Systemd::new(config.systemd);
        let docker = DockerSource::new(config.docker_socket.clone());
        Ok(Self {
            instance_id: new_instance_id(),
            started_unix_ms: unix_ms_now(),
            seq: AtomicU64::new(0),
            host,
            systemd,
            docker,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn info(&self) -> Info {
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
        }
    }

    fn uses(&self, kind: AppKind) -> bool {
        self.config.apps.iter().any(|a| kind_of(a) == kind)
    }

    /// One poll of the host and every app.
    pub async fn snapshot(&self) -> Result<Snapshot, HostError> {
        let (host, (apps, sources)) = tokio::join!(self.host.read(), self.apps_with_sources());
        Ok(Snapshot {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            instance_id: self.instance_id.clone(),
            taken_unix_ms: unix_ms_now(),
            host: host?,
            apps,
            sources,
        })
    }

    pub async fn apps(&self) -> Vec<AppStatus> {
        self.apps_with_sources().await.0
    }

    /// The status of one app, or `None` if no app of that name is configured.
    pub async fn app(&self, name: &str) -> Option<AppStatus> {
        let app = self.config.app(name)?;
        Some(self.probe(app).await.status)
    }

    async fn apps_with_sources(&self) -> (Vec<AppStatus>, Sources) {
        let probes = join_all(self.config.apps.iter().map(|a| self.probe(a))).await;
        let health = |kind: AppKind| {
            if !self.uses(kind) {
                return SourceHealth::Unused;
            }
            let error = self
                .config
                .apps
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
        (probes.into_iter().map(|p| p.status).collect(), sources)
    }

    async fn probe(&self, app: &AppConfig) -> Probe {
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

//! Docker containers over the Docker API (bollard; podman's compatible API works too): state,
//! health, restarts and exit from inspect, CPU and memory from one-shot stats.

pub mod compose;
pub mod logs;
mod podman;
mod status;
pub mod watch;

use bollard::query_parameters::StatsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use tokio::sync::Mutex;

pub use status::{app_state, parse_docker_time, ContainerFacts};

/// The labels compose puts on a service's container: project, working directory, config files,
/// service.
pub const COMPOSE_LABELS: [&str; 4] = [
    "com.docker.compose.project",
    "com.docker.compose.project.working_dir",
    "com.docker.compose.project.config_files",
    "com.docker.compose.service",
];

/// Seconds bollard waits for one request.
const REQUEST_TIMEOUT_SECS: u64 = 5;

/// The "timeout" of streams that last as long as someone listens (events, log follows).
pub const FOREVER: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect to the Docker API at {socket}: {source}")]
    Connect {
        socket: String,
        source: bollard::errors::Error,
    },
    #[error("cannot reach the Docker API at {socket} ({cause}); is Docker (or podman's API service) running there? The agent uses docker_socket from its config, else DOCKER_HOST")]
    Unreachable { socket: String, cause: String },
    #[error("Docker API call failed: {0}")]
    Call(bollard::errors::Error),
    /// A call read again past a podman-only state word (see [`podman`]) that failed.
    #[error("Docker API call failed: {0}")]
    Reread(String),
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
}

/// A failed call as the agent reports it: [`DockerError::Unreachable`] with the OS's reason (which
/// bollard's own message leaves out) when the engine could not be connected to at all.
pub(crate) fn call_failed(socket: &str, e: bollard::errors::Error) -> DockerError {
    use std::io::ErrorKind;
    let unreachable = match &e {
        bollard::errors::Error::HyperLegacyError { err } => err.is_connect(),
        bollard::errors::Error::IOError { err } => matches!(
            err.kind(),
            ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::PermissionDenied
        ),
        _ => false,
    };
    if !unreachable {
        return DockerError::Call(e);
    }
    // The innermost cause says why, e.g. "No such file or directory (os error 2)".
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    DockerError::Unreachable {
        socket: socket.to_owned(),
        cause: cause.to_string(),
    }
}

/// CPU counters of the previous stats call, to turn the next one into a percentage.
#[derive(Debug, Clone, Copy)]
struct CpuCounters {
    container_ns: u64,
    system_ns: u64,
}

/// Network byte counters (summed over interfaces) of the previous stats call, and when it was
/// read, to turn the next one into rates.
#[derive(Debug, Clone, Copy)]
struct NetCounters {
    rx: u64,
    tx: u64,
    at: std::time::Instant,
}

/// Why an `.env` could not be applied to a container.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Compose(#[from] compose::ComposeError),
}

/// A container as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
}

/// The Docker API at one socket, connected on first use and reconnected after a failure.
#[derive(Debug)]
pub struct DockerSource {
    socket: String,
    client: Mutex<Option<Docker>>,
    cpu: Mutex<HashMap<String, CpuCounters>>,
    net: Mutex<HashMap<String, NetCounters>>,
    /// Containers stopped on purpose, with when (Unix ms) the stop was noted.
    on_purpose: Mutex<HashMap<String, u64>>,
}

impl DockerSource {
    pub fn new(socket: String) -> Self {
        Self {
            socket,
            client: Mutex::new(None),
            cpu: Mutex::new(HashMap::new()),
            net: Mutex::new(HashMap::new()),
            on_purpose: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn client(&self) -> Result<Docker, DockerError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let connected = if self.socket.starts_with("unix://") {
            Docker::connect_with_unix(
                &self.socket,
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        } else {
            Docker::connect_with_http(
                &self.socket,
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        };
        let client = connected.map_err(|source| DockerError::Connect {
            socket: self.socket.clone(),
            source,
        })?;
        *guard = Some(client.clone());
        Ok(client)
    }

    async fn reset(&self) {
        self.client.lock().await.take();
    }

    /// Makes an edited `.env` take effect on container `name`: recreated in its compose project
    /// (see [`compose`]). `Ok(None)` if no container has that name.
    pub async fn apply(&self, name: &str) -> Result<Option<String>, ApplyError> {
        let docker = self.client().await?;
        let Some(inspect) = self.inspect(&docker, name).await? else {
            return Ok(None);
        };
        let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
        let project = compose::project_of(name, &labels)?
            .ok_or_else(|| compose::ComposeError::NotCompose(name.to_owned()))?;
        // Its old container stops on purpose: no crash to report.
        self.note_lifecycle(name, "stop", crate::agent::unix_ms_now())
            .await;
        let ran = compose::recreate(&project, &self.socket).await?;
        Ok(Some(ran))
    }

    /// Every container the engine has (`all`: stopped ones too), as discovery needs them.
    pub async fn list(&self, all: bool) -> Result<Vec<Listed>, DockerError> {
        use bollard::query_parameters::ListContainersOptions;
        let docker = self.client().await?;
        let options = ListContainersOptions {
            all,
            ..Default::default()
        };
        let listed = match docker.list_containers(Some(options)).await {
            Ok(l) => l,
            Err(e) if podman::is_unknown_state(&e) => podman::list(&self.socket, all)
                .await
                .map_err(DockerError::Reread)?,
            Err(e) => {
                self.reset().await;
                return Err(call_failed(&self.socket, e));
            }
        };
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                // The API names a container "/name"; the first name is its own.
                let name = c.names?.first()?.trim_start_matches('/').to_owned();
                let running = c.state.is_some_and(|s| {
                    matches!(
                        s,
                        bollard::models::ContainerSummaryStateEnum::RUNNING
                            | bollard::models::ContainerSummaryStateEnum::RESTARTING
                    )
                });
                Some(Listed {
                    name,
                    running,
                    labels: c.labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Inspects `name`; `Ok(None)` if no container has that name. A podman-only state word in
    /// the answer is read as Docker's (see [`podman`]).
    pub(crate) async fn inspect(
        &self,
        docker: &Docker,
        name: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, DockerError> {
        match docker.inspect_container(name, None).await {
            Ok(i) => Ok(Some(i)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) if podman::is_unknown_state(&e) => podman::inspect(&self.socket, name)
                .await
                .map(Some)
                .map_err(DockerError::Reread),
            Err(e) => Err(call_failed(&self.socket, e)),
        }
    }

    /// The facts of one container; `Ok(None)` if no container has that name.
    pub async fn container(&self, name: &str) -> Result<Option<ContainerFacts>, DockerError> {
        let result = self.container_inner(name).await;
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn container_inner(&self, name: &str) -> Result<Option<ContainerFacts>, DockerError> {
        let docker = self.client().await?;
        let Some(inspect) = self.inspect(&docker, name).await? else {
            self.cpu.lock().await.remove(name);
            return Ok(None);
        };
        let mut facts = ContainerFacts::from_inspect(&inspect);
        facts.stopped_on_purpose = self.stopped_on_purpose(name, facts.started_unix_ms).await;
        if facts.state == "running" {
            self.add_stats(&docker, name, &mut facts).await;
        } else {
            self.cpu.lock().await.remove(name);
        }
        Ok(Some(facts))
    }

    /// Starts, stops (10 s grace, then SIGKILL) or restarts `name`. `Ok(false)` if no container
    /// has that name.
    pub async fn act(
        &self,
        name: &str,
        action: fleetdeck_proto::AppAction,
    ) -> Result<bool, DockerError> {
        use bollard::query_parameters::{RestartContainerOptions, StopContainerOptions};
        use fleetdeck_proto::AppAction;

        // Marked before the call: the engine reports the exit (`die`) before the call returns,
        // also for a restart (cleared again once it has started).
        if matches!(
            action,
            AppAction::Stop | AppAction::Restart | AppAction::Apply
        ) {
            self.note_lifecycle(name, "stop", crate::agent::unix_ms_now())
                .await;
        }
        // A stop may take its 10 s grace and more: longer than the usual request timeout.
        let docker = self
            .client()
            .await?
            .with_timeout(std::time::Duration::from_secs(60));
        let mut result = match action {
            AppAction::Start => docker.start_container(name, None).await,
            AppAction::Stop => {
                docker
                    .stop_container(
                        name,
                        Some(StopContainerOptions {
                            t: Some(10),
                            signal: None,
                        }),
                    )
                    .await
            }
            // Apply goes through [`DockerSource::apply`]; as an action it is a restart.
            AppAction::Restart | AppAction::Apply => {
                docker
                    .restart_container(
                        name,
                        Some(RestartContainerOptions {
                            t: Some(10),
                            signal: None,
                        }),
                    )
                    .await
            }
        };
        // Podman now and then fails a start with 500 "write child: broken pipe" (its runtime's
        // child died while being set up): once, after a moment, the same call succeeds.
        if action == AppAction::Start
            && matches!(
                &result,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 500,
                    message,
                }) if message.contains("broken pipe")
            )
        {
            tracing::info!(
                container = name,
                "the engine failed a start transiently; trying once more"
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            result = docker.start_container(name, None).await;
        }
        if result.is_ok()
            || matches!(
                result,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304,
                    ..
                })
            )
        {
            self.note_lifecycle(name, action.as_str(), crate::agent::unix_ms_now())
                .await;
        }
        match result {
            Ok(()) => Ok(true),
            // 304: already started / already stopped; the wanted state holds.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => {
                self.reset().await;
                Err(call_failed(&self.socket, e))
            }
        }
    }

    /// Records a lifecycle step of `name` (a Docker event's action, or the agent's own): after a
    /// `stop` the container's exit is deliberate until it starts again.
    pub async fn note_lifecycle(&self, name: &str, action: &str, at_unix_ms: u64) {
        let mut on_purpose = self.on_purpose.lock().await;
        match action {
            "stop" => {
                on_purpose.insert(name.to_owned(), at_unix_ms);
            }
            // Only a start after the stop ends it (events can be replayed out of date).
            "start" | "restart"
                if on_purpose
                    .get(name)
                    .is_some_and(|&noted| at_unix_ms >= noted) =>
            {
                on_purpose.remove(name);
            }
            _ => {}
        }
    }

    /// Whether `name` was stopped on purpose and has not started since (a start after the stop
    /// was noted, even one whose `start` event was missed, ends it). A container still running
    /// through its stop grace stays marked.
    async fn stopped_on_purpose(&self, name: &str, started_unix_ms: Option<u64>) -> bool {
        let mut on_purpose = self.on_purpose.lock().await;
        let Some(&noted) = on_purpose.get(name) else {
            return false;
        };
        if started_unix_ms.is_some_and(|started| started > noted) {
            on_purpose.remove(name);
            return false;
        }
        true
    }

    /// Adds CPU % and memory from a one-shot stats call. A failure here leaves them empty: the
    /// container's state is still known.
    async fn add_stats(&self, docker: &Docker, name: &str, facts: &mut ContainerFacts) {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let stats = match docker.stats(name, Some(options)).next().await {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::debug!(container = name, error = %e, "container stats unavailable");
                return;
            }
            None => return,
        };
        if let Some(mem) = &stats.memory_stats {
            // As `docker stats` shows it: usage less the page cache the kernel can drop.
            let cache = mem
                .stats
                .as_ref()
                .and_then(|s| {
                    s.get("inactive_file")
                        .or_else(|| s.get("total_inactive_file"))
                        .or_else(|| s.get("cache"))
                })
                .copied()
                .unwrap_or(0);
            facts.memory_bytes = mem.usage.map(|u| u.saturating_sub(cache));
            facts.memory_limit_bytes = mem.limit.filter(|&l| l != 0 && l != u64::MAX);
        }
        if let Some(networks) = &stats.networks {
            let now = NetCounters {
                rx: networks.values().filter_map(|n| n.rx_bytes).sum(),
                tx: networks.values().filter_map(|n| n.tx_bytes).sum(),
                at: std::time::Instant::now(),
            };
            let prev = self.net.lock().await.insert(name.to_owned(), now);
            if let Some(prev) = prev {
                let secs = now.at.duration_since(prev.at).as_secs_f64();
                // A counter that went back (a restarted container) gives no rate this time.
                let rate = |now: u64, prev: u64| {
                    now.checked_sub(prev)
                        .filter(|_| secs > 0.0)
                        .map(|d| (d as f64 / secs * 10.0).round() / 10.0)
                };
                facts.net_rx_bytes_per_sec = rate(now.rx, prev.rx);
                facts.net_tx_bytes_per_sec = rate(now.tx, prev.tx);
            }
        }
        let Some(cpu) = &stats.cpu_stats else { return };
        let (Some(container_ns), Some(system_ns)) = (
            cpu.cpu_usage.as_ref().and_then(|u| u.total_usage),
            cpu.system_cpu_usage,
        ) else {
            return;
        };
        let online = cpu.online_cpus.filter(|&n| n > 0).unwrap_or(1);
        let now = CpuCounters {
            container_ns,
            system_ns,
        };
        let prev = self.cpu.lock().await.insert(name.to_owned(), now);
        if let Some(prev) = prev {
            let dc = now.container_ns.checked_sub(prev.container_ns);
            let ds = now.system_ns.checked_sub(prev.system_ns).filter(|&d| d > 0);
            if let (Some(dc), Some(ds)) = (dc, ds) {
                let pct = dc as f64 / ds as f64 * f64::from(online) * 100.0;
                facts.cpu_percent = Some((pct * 10.0).round() / 10.0);
            }
        }
    }
}

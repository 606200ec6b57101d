use serde::{Deserialize, Serialize};

use crate::CheckResult;

/// What an app is, whichever source runs it: one status for systemd units and Docker containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AppState {
    Running,
    Starting,
    Stopping,
    Stopped,
    Failed,
    /// Restarting by itself after failures (systemd `auto-restart`, Docker `restarting`).
    CrashLooping,
    /// The source could not be asked (D-Bus or Docker down), or it said something unexpected.
    Unknown,
    /// The unit or container does not exist on this host.
    NotFound,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Starting => "starting",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::CrashLooping => "crash-looping",
            Self::Unknown => "unknown",
            Self::NotFound => "not-found",
        }
    }
}

impl std::fmt::Display for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    Systemd,
    Docker,
}

/// How the main process last ended: an exit code or a signal, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// One app's status, with the raw details of its source kept beside the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppStatus {
    pub name: String,
    pub kind: AppKind,
    /// The unit (`myspendo.service`) or container (`weather`) name from the agent's config.
    pub target: String,
    pub state: AppState,
    /// When the app entered its current state, if the source knows.
    pub since_unix_ms: Option<u64>,
    /// How the main process last ended, if it did.
    pub last_exit: Option<Exit>,
    /// Restarts counted by the source (systemd `NRestarts`, Docker `RestartCount`).
    pub restarts: Option<u64>,
    /// The cgroup's memory (systemd `MemoryCurrent`, Docker usage less page cache); for a unit
    /// without memory accounting, the main process's resident memory.
    pub memory_bytes: Option<u64>,
    /// Why the state is `unknown`, e.g. the source's error.
    pub error: Option<String>,
    pub systemd: Option<SystemdDetail>,
    pub docker: Option<DockerDetail>,
    /// What the app is expected to do (`expect` in agent.toml): a `running` app that stops
    /// without anyone asking through Fleetdeck is a problem.
    #[serde(default)]
    pub expect: Expect,
    /// The app's last stop (or the state it is in) was asked for through Fleetdeck
    /// (`POST .../actions/stop`), so a stopped app is no surprise. Cleared when it starts again.
    #[serde(default)]
    pub stopped_by_request: bool,
    /// The last result of each endpoint check, in config order.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// A check failed twice in a row or more: the app runs but does not serve. Never shown green.
    #[serde(default)]
    pub degraded: bool,
}

/// What an app is expected to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Always running: a stop nobody asked for through Fleetdeck is a problem.
    #[default]
    Running,
    /// A batch job or a timer's unit: stopping is normal.
    Any,
}

/// The unit's properties as systemd reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemdDetail {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// The service's `Result` (`success`, `exit-code`, `signal`, `core-dump`, ...).
    pub result: Option<String>,
    pub n_restarts: Option<u32>,
    /// `ExecMainCode`: 1 exited, 2 killed, 3 dumped (`CLD_*`).
    pub exec_main_code: Option<i32>,
    pub exec_main_status: Option<i32>,
    pub main_pid: Option<u32>,
    pub memory_current_bytes: Option<u64>,
    /// `MemoryMax` (or `MemoryHigh` when only that is set): the cgroup's memory limit.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// CPU use over the last second or more, in percent of one core (from `CPUUsageNSec`;
    /// absent without CPU accounting or on the first reading).
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    pub state_change_unix_ms: Option<u64>,
    pub invocation_id: Option<String>,
}

/// The container's state as the Docker API reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DockerDetail {
    pub id: Option<String>,
    pub image: Option<String>,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub state: String,
    /// `starting`, `healthy` or `unhealthy` when the container has a health check.
    pub health: Option<String>,
    pub restart_count: Option<u64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub started_unix_ms: Option<u64>,
    pub finished_unix_ms: Option<u64>,
    /// CPU use since the previous snapshot, in percent of one core.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// Bytes received per second over all the container's interfaces, since the previous read.
    #[serde(default)]
    pub net_rx_bytes_per_sec: Option<f64>,
    /// Bytes sent per second over all the container's interfaces, since the previous read.
    #[serde(default)]
    pub net_tx_bytes_per_sec: Option<f64>,
}

/// Whether each status source answered this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sources {
    pub systemd: SourceHealth,
    pub docker: SourceHealth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SourceHealth {
    /// No configured app uses this source, so it was not asked.
    Unused,
    Up,
    Down {
        error: String,
    },
}

/// What `POST /v1/apps/{app}/actions/{action}` can do to an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AppAction {
    Start,
    Stop,
    Restart,
    /// Makes an edited `.env` take effect the way the app reads it: a unit restarted (systemd
    /// reads `EnvironmentFile=` at start), a compose service's container recreated in its project;
    /// refused for a container made without compose, which keeps the environment it was made with.
    Apply,
}

impl AppAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Apply => "apply",
        }
    }
}

/// The answer to an action: how the source's job ended, and the app's status after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionOutcome {
    pub app: String,
    pub action: AppAction,
    /// systemd's job result (`done`, `failed`, `timeout`, `canceled`, `dependency`, `skipped`), or
    /// `done` when the Docker API accepted the call; for `apply`, what was done, in words.
    pub result: String,
    pub status: AppStatus,
}

/// The usual name of a Linux signal (`SIGKILL` for 9), for the signals that commonly end a
/// service.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

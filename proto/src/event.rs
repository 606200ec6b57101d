use serde::{Deserialize, Serialize};

use crate::{AppKind, AppState, CheckResult, Exit};

/// A status transition of one app, as the agent saw it. Served on `GET /v1/events` (SSE, event
/// `transition`, id `INSTANCE:ID`); `Last-Event-ID` resumes after that id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppEvent {
    /// Increases by one per event within one agent instance.
    pub id: u64,
    pub instance_id: String,
    pub app: String,
    pub kind: AppKind,
    pub from: AppState,
    pub to: AppState,
    /// The same state with a new process: a restart of a running app (new systemd InvocationID or
    /// MainPID, new container start time).
    pub restarted: bool,
    pub at_unix_ms: u64,
    /// How the main process ended, when the transition is an exit.
    pub exit: Option<Exit>,
    pub restarts: Option<u64>,
    /// What revealed it: a systemd signal, a Docker event, or a poll.
    pub source: EventSource,
    /// The change was asked for through Fleetdeck (an action on this agent), e.g. a stop.
    #[serde(default)]
    pub requested: bool,
    /// When the transition ends a process that was not asked to end (a crash, including one
    /// the restart policy already healed): what the agent saw at that moment.
    #[serde(default)]
    pub crash: Option<CrashContext>,
}

/// Why a process ended, captured by the agent when it ended: an operator reading only the
/// notification knows what broke.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrashContext {
    /// How the dead run ended. For a run its restart policy brought back before the agent read
    /// it, the exit its source told as it died (systemd's change signal, Docker's `die` event);
    /// absent if that was missed.
    pub exit: Option<Exit>,
    /// The kernel's OOM killer ended it: systemd's `Result=oom-kill` or the engine's
    /// `OOMKilled`, or, where neither tells (podman with runc on cgroup v1), a SIGKILL while the
    /// kernel's OOM-kill count (`/proc/vmstat`) rose in the seconds before.
    pub oom_killed: bool,
    /// The app's memory at the last sample before it ended.
    pub memory_bytes: Option<u64>,
    /// The memory limit it ran under, if any.
    pub memory_limit_bytes: Option<u64>,
    /// The last log lines of the dead process (at most 20, oldest first, each cut to 500 bytes):
    /// journald by the dead invocation, Docker up to the container's finish time.
    pub last_lines: Vec<String>,
    /// Why `last_lines` is empty or short, when reading them failed.
    pub lines_error: Option<String>,
}

impl CrashContext {
    /// The most telling line: the last one that is not blank.
    pub fn last_line(&self) -> Option<&str> {
        self.last_lines
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }
}

/// A check passed after failing, or failed after passing (its first result counts as a change
/// when it fails). Served on `GET /v1/events` as SSE event `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckEvent {
    pub id: u64,
    pub instance_id: String,
    pub app: String,
    pub result: CheckResult,
    pub at_unix_ms: u64,
}

/// A status source (systemd's D-Bus, the Docker engine) stopped or started answering. Served on
/// `GET /v1/events` as SSE event `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceEvent {
    pub id: u64,
    pub instance_id: String,
    /// `systemd` or `docker`.
    pub source: String,
    pub up: bool,
    /// Why it is down.
    pub error: Option<String>,
    pub at_unix_ms: u64,
}

/// Everything `GET /v1/events` sends, in one id sequence per agent instance; the SSE event
/// name is the variant (`transition`, `check`, `source`) and the data is its body. A client
/// that knows only `transition` may skip the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AgentEvent {
    Transition(AppEvent),
    Check(CheckEvent),
    Source(SourceEvent),
}

impl AgentEvent {
    pub fn id(&self) -> u64 {
        match self {
            Self::Transition(e) => e.id,
            Self::Check(e) => e.id,
            Self::Source(e) => e.id,
        }
    }

    pub fn instance_id(&self) -> &str {
        match self {
            Self::Transition(e) => &e.instance_id,
            Self::Check(e) => &e.instance_id,
            Self::Source(e) => &e.instance_id,
        }
    }

    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Transition(_) => "transition",
            Self::Check(_) => "check",
            Self::Source(_) => "source",
        }
    }

    /// The SSE event id (`INSTANCE:ID`).
    pub fn sse_id(&self) -> String {
        format!("{}:{}", self.instance_id(), self.id())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EventSource {
    Systemd,
    Docker,
    Poll,
}

impl AppEvent {
    /// The SSE event id: the instance and the event's number, so a client reconnecting to a
    /// restarted agent can tell its `Last-Event-ID` is from another instance.
    pub fn sse_id(&self) -> String {
        format!("{}:{}", self.instance_id, self.id)
    }
}

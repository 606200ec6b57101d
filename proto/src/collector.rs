//! The collector's API types (`/v1/fleet`, history, events, keys, audit): what the desktop reads.

use serde::{Deserialize, Serialize};

use crate::{AppStatus, CheckResult, CrashContext, Exit, HostMetrics};

/// What an API key may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads status, metrics, events and logs; never `.env` values.
    Viewer,
    /// Also reads and writes `.env` files and starts, stops and restarts apps.
    Operator,
    /// Also manages API keys and reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Whether the collector reaches a host's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Up,
    /// Missed `down_after` polls in a row.
    Down,
    /// Not polled successfully yet.
    Unknown,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Unknown => "unknown",
        }
    }
}

/// `GET /v1/cluster`: whether this collector leads the database it shares with others (a
/// PostgreSQL `database`), or stands by; an SQLite collector is `single`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    /// `single`, `leader` or `standby`. Only the leader polls, subscribes and alerts; a standby
    /// serves the API from the shared database and passes actions to the agents itself.
    pub role: String,
    /// This collector, as it names itself to the others (`fleetdeck-collector pid N on HOST`).
    pub this: String,
    /// Who leads, as it named itself; `None` when not known (no leader yet, or `single`).
    pub leader: Option<String>,
    /// How many leaders the database has had, this one included when leading.
    pub epoch: Option<i64>,
    /// When this collector took its present role.
    pub since_unix_ms: u64,
}

/// `GET /v1/fleet`: every host and its apps, and the counts a tray needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fleet {
    pub summary: FleetSummary,
    pub hosts: Vec<HostView>,
    /// Every open problem the collector's alerting knows of (thresholds, checks, sources, clock
    /// skew, app and host problems), critical first, then oldest first.
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// When the collector alerts (its `[alerts]`): the desktop's notices follow the same rules.
    /// Absent from collectors older than this field.
    #[serde(default)]
    pub alert_policy: Option<AlertPolicyView>,
}

/// The collector's alert timing, as the desktop's notices follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertPolicyView {
    /// A problem that clears within this raises no alert (and no notice); 0 alerts at once.
    pub grace_ms: u64,
    /// Problem entries are counted for flapping within this window; a flapping subject settles
    /// after a whole window without a change. 0 turns flap detection off.
    pub flap_window_ms: u64,
    /// Entries within the window that make a subject flapping (below 2: off).
    pub flap_threshold: u32,
}

/// One open problem: a condition that raised (or will raise, after its grace or `for`) an alert
/// and has not recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `host-down`, `app-down` (failed, crash-looping), `not-found`, `stopped` (stopped while
    /// expected to run), `check`, `source`, `clock-skew`, `cert-expiring` (an HTTPS check's
    /// certificate: warning within 14 days, critical within 3), or `threshold` (with `rule`).
    pub kind: String,
    /// The threshold rule's name, for `threshold`.
    pub rule: Option<String>,
    pub severity: Severity,
    pub host: String,
    pub app: Option<String>,
    /// What inside the host or app: a mount point, a check's name, a source (`docker`).
    pub subject: Option<String>,
    /// One line a person reads: what, and why (the value and the limit, the check's error...).
    pub message: String,
    pub since_unix_ms: u64,
}

/// Fleet health at a glance: `down` when a host is down or an app failed or crash-loops,
/// `degraded` when an app is starting, stopping, unknown or missing, else `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetSummary {
    pub health: FleetHealth,
    pub hosts: u32,
    pub hosts_up: u32,
    pub hosts_down: u32,
    pub apps: u32,
    pub apps_running: u32,
    /// Failed or crash-looping.
    pub apps_down: u32,
    /// Starting, stopping, unknown or not found.
    pub apps_degraded: u32,
    pub apps_stopped: u32,
    /// Open problems by severity (see [`Fleet::problems`]).
    #[serde(default)]
    pub problems_warning: u32,
    #[serde(default)]
    pub problems_critical: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FleetHealth {
    Ok,
    Degraded,
    Down,
}

/// One host as the collector knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostView {
    /// The name from the collector's config.
    pub name: String,
    pub status: HostStatus,
    pub status_since_unix_ms: Option<u64>,
    pub last_seen_unix_ms: Option<u64>,
    /// Why the last poll failed, while it fails.
    pub error: Option<String>,
    /// What the agent reports as its hostname.
    pub hostname: Option<String>,
    pub agent_instance_id: Option<String>,
    /// What the agent says it is (`/v1/info`), once the collector has asked it.
    #[serde(default)]
    pub agent_version: Option<String>,
    #[serde(default)]
    pub wire_version: Option<u32>,
    /// The agent is older than the collector (its version or its wire version): upgrade it.
    #[serde(default)]
    pub agent_outdated: bool,
    pub cpu_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub apps: Vec<AppView>,
    /// The latest host metrics in full (`GET /v1/hosts/{host}` only).
    pub metrics: Option<HostMetrics>,
}

/// One app: the agent's latest status, when the collector saw it enter its state, and uptime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppView {
    pub status: AppStatus,
    pub state_since_unix_ms: u64,
    /// Time running over time known in the last 30 days, 0–1.
    pub uptime_30d: Option<f64>,
    /// The first moment of those 30 days the collector knew the app's state: later than the
    /// window's start for an app first seen less than 30 days ago, so the ratio can say "since".
    #[serde(default)]
    pub uptime_known_since_unix_ms: Option<u64>,
}

/// `GET /v1/hosts/{host}/metrics`: points oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Metrics {
    pub host: String,
    pub from: String,
    pub to: String,
    pub step_ms: u64,
    /// `raw`, `1m` or `1h`: which table the points come from.
    pub resolution: String,
    pub points: Vec<MetricPoint>,
}

/// Host figures at `ts` (raw), or averaged over the bucket starting at `ts` (rollups; disk and
/// the maxima are the bucket's highest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricPoint {
    /// RFC 3339.
    pub ts: String,
    pub ts_unix_ms: u64,
    pub samples: u32,
    pub cpu_percent: Option<f64>,
    pub cpu_percent_max: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub swap_used_bytes: Option<u64>,
    pub load1: Option<f64>,
    pub disk_used_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub net_rx_bytes_per_sec: Option<f64>,
    pub net_tx_bytes_per_sec: Option<f64>,
    /// All whole disks together.
    #[serde(default)]
    pub disk_read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub disk_write_bytes_per_sec: Option<f64>,
    /// The root filesystem's inodes in use, 0–100.
    #[serde(default)]
    pub root_inodes_used_percent: Option<f64>,
}

/// `GET /v1/hosts/{host}/apps/{app}/metrics?from&to&step`: points oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppMetrics {
    pub host: String,
    pub app: String,
    pub from: String,
    pub to: String,
    pub step_ms: u64,
    /// `raw`, `1m` or `1h`.
    pub resolution: String,
    pub points: Vec<AppMetricPoint>,
}

/// One app's figures at `ts` (raw) or over the bucket starting at `ts` (averages, and maxima).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppMetricPoint {
    pub ts: String,
    pub ts_unix_ms: u64,
    pub samples: u32,
    pub cpu_percent: Option<f64>,
    pub cpu_percent_max: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_bytes_max: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub net_rx_bytes_per_sec: Option<f64>,
    pub net_tx_bytes_per_sec: Option<f64>,
    pub checks: Vec<CheckPoint>,
}

/// One check over a metric point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckPoint {
    pub name: String,
    /// Average latency of the runs that got an answer.
    pub latency_ms: Option<f64>,
    /// Share of passing runs, 0–1.
    pub ok_ratio: f64,
}

/// What a threshold rule saw when it fired or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThresholdHit {
    pub rule: String,
    /// e.g. `disk.used_percent`.
    pub metric: String,
    /// The mount point, or the app, the value belongs to.
    pub subject: Option<String>,
    pub value: f64,
    /// The level crossed (`above` or `below`; the clear level for a recovery).
    pub threshold: f64,
    /// `above` or `below`.
    pub direction: String,
    /// How long the condition held before it fired.
    pub for_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum FleetEventKind {
    /// An app changed state.
    Transition,
    /// An app got a new process in the same state.
    Restarted,
    HostDown,
    HostUp,
    /// An endpoint check failed after passing (or failed at its first run).
    CheckFailed,
    CheckPassed,
    /// Docker or D-Bus stopped answering the agent, or answers again.
    SourceDown,
    SourceUp,
    /// A threshold rule's condition held for its `for` duration, or cleared.
    ThresholdFired,
    ThresholdCleared,
    /// The agent's clock is off by more than 30 s from the collector's, or back in line.
    ClockSkew,
    ClockOk,
    /// An HTTPS check's certificate expires within 14 days (warning) or 3 days (critical), or
    /// expired; `check` holds the result with its `cert_not_after_unix_ms`.
    CertExpiring,
    /// ... and is far from expiry again (renewed).
    CertRenewed,
    /// The agent no longer watches an app: removed from its agent.toml, or a discovered
    /// container or unit that is gone. It leaves the fleet; its open problems are resolved.
    AppUnwatched,
}

impl FleetEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transition => "transition",
            Self::Restarted => "restarted",
            Self::HostDown => "host-down",
            Self::HostUp => "host-up",
            Self::CheckFailed => "check-failed",
            Self::CheckPassed => "check-passed",
            Self::SourceDown => "source-down",
            Self::SourceUp => "source-up",
            Self::ThresholdFired => "threshold-fired",
            Self::ThresholdCleared => "threshold-cleared",
            Self::ClockSkew => "clock-skew",
            Self::ClockOk => "clock-ok",
            Self::CertExpiring => "cert-expiring",
            Self::CertRenewed => "cert-renewed",
            Self::AppUnwatched => "app-unwatched",
        }
    }
}

/// One entry of the collector's event log; `GET /v1/events/stream` sends them live (SSE event
/// `fleet`, id = `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetEvent {
    pub id: i64,
    pub at_unix_ms: u64,
    pub severity: Severity,
    /// What revealed it: `agent-stream`, `poll` or `collector` (missed polls).
    pub source: String,
    pub kind: FleetEventKind,
    pub host: String,
    pub app: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub exit: Option<Exit>,
    pub message: String,
    /// A crash's context (exit, OOM, memory, the last log lines), when the agent captured one.
    #[serde(default)]
    pub context: Option<CrashContext>,
    /// The check's result, for `check-failed` and `check-passed`.
    #[serde(default)]
    pub check: Option<CheckResult>,
    /// What the rule saw, for `threshold-fired` and `threshold-cleared`.
    #[serde(default)]
    pub threshold: Option<ThresholdHit>,
}

/// `GET /v1/events`: newest first; pass `next_before` as `before` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsPage {
    pub events: Vec<FleetEvent>,
    pub next_before: Option<i64>,
}

/// One audited request (a mutation, or a read of `.env` values): who, what, on what, how it
/// ended. Never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at_unix_ms: u64,
    /// The key's id (`KeyInfo::id`): names can be reused after a key is deleted, ids never are.
    /// None for what was done at the command line, and for entries older than ids in the audit.
    #[serde(default)]
    pub key_id: Option<i64>,
    pub key_name: String,
    pub action: String,
    pub target: String,
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_before: Option<i64>,
}

/// An API key as listed: never the key itself (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// Never reused, unlike the name; the audit names keys by both.
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_unix_ms: u64,
    pub last_used_unix_ms: Option<u64>,
}

/// `POST /v1/keys`: the new key, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyCreated {
    pub name: String,
    pub role: Role,
    pub key: String,
}

/// `POST /v1/keys` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
}

/// `GET /v1/hosts/{host}/apps/{app}/uptime`: uptime over a window `[from_ms, to_ms)`, with one entry per UTC day it touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uptime {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Time in `running`.
    pub up_ms: u64,
    /// Time in any state but `unknown` (gaps between intervals are unknown).
    pub known_ms: u64,
    /// `up_ms / known_ms`; `None` when nothing is known, so "no data" never reads as 0 % or 100 %.
    pub ratio: Option<f64>,
    /// The first moment inside the window whose state is known (`None` when nothing is): an app
    /// first seen after `from_ms` has its ratio "since first seen", not over the whole window.
    #[serde(default)]
    pub first_known_ms: Option<u64>,
    /// One entry per UTC day overlapping the window, oldest first; partial first and last days
    /// count only the part inside the window.
    pub days: Vec<DayUptime>,
}

/// One UTC day of an [`Uptime`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayUptime {
    /// UTC midnight starting this day (even when the window starts later in the day).
    pub day_start_ms: u64,
    pub up_ms: u64,
    pub known_ms: u64,
    /// `up_ms / known_ms`; `None` when nothing is known that day.
    pub ratio: Option<f64>,
}

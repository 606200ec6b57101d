//! The desktop app's own wire: what its Rust side and its webview exchange through Tauri
//! commands, events and channels. API keys never cross it (they stay in the Rust side and the
//! OS keyring).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ActionOutcome, EnvWritten, Fleet, FleetEvent, FleetEventKind, LogEntry, Severity};

/// Tauri event: a collector's fleet was read again. Payload [`FleetUpdate`].
pub const EVENT_FLEET: &str = "fleet-updated";
/// Tauri event: a collector's event stream delivered an event. Payload [`FleetEventFrom`].
pub const EVENT_FLEET_EVENT: &str = "fleet-event";
/// Tauri event: a collector's connection changed. Payload [`CollectorInfo`].
pub const EVENT_COLLECTOR: &str = "collector-status";
/// Tauri event: the tray or a notification asks the window to show an app. Payload [`AppRef`].
pub const EVENT_OPEN_APP: &str = "open-app";
/// Tauri event: the tray's state changed. Payload [`TrayState`].
pub const EVENT_TRAY: &str = "tray-state";

/// Every command's error: a stable code and a message for a person saying what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandError {
    /// `invalid_input`, `invalid_url`, `unreachable`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `agent_unreachable`, `agent_auth_failed`, `keyring`, `settings`, `unknown_collector`,
    /// `server` or `protocol`.
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// `add_collector`: the key goes to the OS keyring, the rest to the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCollector {
    pub name: String,
    pub url: String,
    pub key: String,
    /// Trust exactly the collector certificate of this SHA-256 (`sha256:...`; `https://` only).
    #[serde(default)]
    pub tls_fingerprint: Option<String>,
}

/// A collector connection as the UI sees it: never its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorInfo {
    pub name: String,
    pub url: String,
    pub status: ConnStatus,
    /// Why this connection is not private (plain HTTP outside loopback and the tailnet), shown
    /// beside the collector.
    #[serde(default)]
    pub warning: Option<String>,
}

/// How the app's link to one collector is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnStatus {
    pub state: ConnState,
    /// Why it is failing, for a person (never a key).
    pub message: Option<String>,
    pub since_unix_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnState {
    Connecting,
    Connected,
    Failing,
}

/// Payload of [`EVENT_FLEET`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetUpdate {
    pub collector: String,
    pub fleet: Fleet,
}

/// Payload of [`EVENT_FLEET_EVENT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetEventFrom {
    pub collector: String,
    pub event: FleetEvent,
}

/// One app on one collector; payload of [`EVENT_OPEN_APP`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppRef {
    pub collector: String,
    pub host: String,
    /// `None` for a whole host (a host that is down).
    pub app: Option<String>,
}

/// The history a host's charts show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricsRange {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl MetricsRange {
    pub const ALL: [Self; 4] = [Self::Hour, Self::Day, Self::Week, Self::Month];

    pub fn label(self) -> &'static str {
        match self {
            Self::Hour => "1 h",
            Self::Day => "24 h",
            Self::Week => "7 d",
            Self::Month => "30 d",
        }
    }

    /// How far back the range reaches, in milliseconds.
    pub fn span_ms(self) -> u64 {
        const HOUR: u64 = 3_600_000;
        match self {
            Self::Hour => HOUR,
            Self::Day => 24 * HOUR,
            Self::Week => 7 * 24 * HOUR,
            Self::Month => 30 * 24 * HOUR,
        }
    }

    /// The step asked of the collector: about 120-360 points per chart.
    pub fn step(self) -> &'static str {
        match self {
            Self::Hour => "15s",
            Self::Day => "5m",
            Self::Week => "1h",
            Self::Month => "2h",
        }
    }
}

/// `events`: the collector's event log filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    pub host: Option<String>,
    pub app: Option<String>,
    pub severity: Option<Severity>,
    pub kind: Option<FleetEventKind>,
    /// Events older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

/// `logs_page`: a page of log lines, newest first, older than `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    pub before: Option<String>,
    pub limit: Option<u32>,
    /// Only lines containing this text.
    pub grep: Option<String>,
    /// Only lines at this syslog priority or more urgent: `err`, `warning`, `info`, ...
    pub priority: Option<String>,
    /// Only lines written at or after this time (Unix ms).
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Only lines written before this time (Unix ms).
    #[serde(default)]
    pub until_ms: Option<u64>,
}

/// `audit`: a page of the collector's audit log; every filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Entries older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    pub limit: Option<u32>,
    /// The key's name.
    pub key: Option<String>,
    /// The action or its start (`key.`).
    pub action: Option<String>,
    /// Text in the target.
    pub target: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

/// `logs_search`: one log search over many apps of a collector (`GET /v1/logs/search`). Empty
/// lists mean every host, every app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSearchQuery {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
    /// A regular expression (case-insensitive unless it has capitals).
    pub grep: Option<String>,
    pub priority: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Lines per app.
    pub limit: Option<u32>,
}

/// What the `logs_follow` channel carries: lines in the order written, in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LogFeed {
    Lines {
        entries: Vec<LogEntry>,
    },
    /// The follow broke and is being retried (it resumes after the last line, none lost).
    Interrupted {
        message: String,
    },
    Resumed,
    /// The follow ended for good (the app is gone, or the key may no longer read it).
    Stopped {
        message: String,
    },
}

/// `env_save`: edits to an app's `.env`, checked against the etag read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSave {
    pub etag: String,
    pub set: BTreeMap<String, String>,
    pub unset: Vec<String>,
    /// Restart the app once the file is written.
    pub restart: bool,
}

/// The answer to `env_save`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSaved {
    pub written: EnvWritten,
    /// The outcome of the `apply` asked for after the save (a restart or a recreate, as the app
    /// reads its `.env`), when it ran.
    pub restart: Option<ActionOutcome>,
    /// Why the asked-for apply failed (the file is written either way).
    pub restart_error: Option<String>,
}

/// The desktop's own settings (not the collectors').
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopSettings {
    /// Do not disturb: no notifications while on.
    pub dnd: bool,
    #[serde(default)]
    pub theme: Theme,
    /// The view the window showed last, opened again at start.
    #[serde(default)]
    pub last_view: Option<SavedView>,
    /// Fleetdeck starts when the operator logs in (an entry in the OS's autostart).
    #[serde(default)]
    pub autostart: bool,
}

/// A change to [`DesktopSettings`]: each field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsChange {
    pub theme: Option<Theme>,
    pub last_view: Option<SavedView>,
    pub autostart: Option<bool>,
}

/// Light or dark: as the system says, or always one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

/// A view of the window as remembered between starts: the page, and for a host's or an app's
/// page, on which collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "view", rename_all = "lowercase", deny_unknown_fields)]
pub enum SavedView {
    Fleet,
    Logs,
    Events,
    Alerts,
    Admin,
    Settings,
    Host {
        collector: String,
        host: String,
    },
    App {
        collector: String,
        host: String,
        app: String,
    },
}

/// The tray icon's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrayHealth {
    /// Green: every host up, every app running or stopped on purpose.
    Ok,
    /// Amber.
    Degraded,
    /// Red: a host is down or an app failed or crash-loops.
    Down,
    /// Grey: no collector answers (or none is configured).
    Disconnected,
}

/// What the tray shows: its colour, a tooltip, and a menu entry per thing that is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrayState {
    pub health: TrayHealth,
    pub tooltip: String,
    pub down: Vec<DownItem>,
    /// Open alerts nobody acknowledged yet, newest first (the tray menu lists them).
    #[serde(default)]
    pub alerts: Vec<DownItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownItem {
    pub target: AppRef,
    /// e.g. `web-1 / api: failed (exit 1)`.
    pub label: String,
}

/// `bench_ready`: when the UI first painted the fleet, for the start-up benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FirstPaint {
    pub hosts: u32,
}

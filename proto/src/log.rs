use serde::{Deserialize, Serialize};

/// One log line of an app: from journald for a unit, from the Docker API for a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// Where this entry is: pass it as `before` to page back, or as `Last-Event-ID` to resume a
    /// follow after it. Opaque.
    pub cursor: String,
    /// When it was written, in microseconds since the Unix epoch.
    pub unix_us: u64,
    /// syslog priority, 0 (emerg) to 7 (debug), if the source has one.
    pub priority: Option<u8>,
    /// `stdout` or `stderr` for container output.
    pub stream: Option<LogStream>,
    /// The line, invalid UTF-8 replaced by U+FFFD.
    pub message: String,
    /// The line was longer than the agent passes on (64 KiB) and was cut.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// `GET /v1/apps/{app}/logs`: entries newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
}

/// One line of `GET /v1/logs/search`'s answer (newline-delimited JSON, one event per line, as the
/// agents answer): the apps searched, then each app's matches or error as it comes, then `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum LogSearchEvent {
    /// Every app the search runs on, before any result.
    Started { targets: Vec<LogTarget> },
    /// One app's matching lines, newest first (at most `limit`; `more` when there may be older).
    Result {
        host: String,
        app: String,
        entries: Vec<LogEntry>,
        more: bool,
    },
    /// One app could not be searched: its agent was unreachable, refused the query, or ran out of
    /// time. The others go on.
    Failed {
        host: String,
        app: String,
        status: u16,
        message: String,
    },
    /// Every app answered or failed.
    Done {
        searched: u32,
        failed: u32,
        took_ms: u64,
    },
}

/// An app a fleet-wide log search covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogTarget {
    pub host: String,
    pub app: String,
}

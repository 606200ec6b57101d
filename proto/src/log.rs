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

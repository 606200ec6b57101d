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
    /// A search with a pattern sends an app's matches as its agent finds them, `partial`; the
    /// app's last `result` holds the rest, up to the limit.
    Result {
        host: String,
        app: String,
        entries: Vec<LogEntry>,
        more: bool,
        /// More of this app's lines may follow in this search.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        partial: bool,
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

/// The latest time a log range may name (Unix ms, November 2286: its nanoseconds still fit a u64).
pub const MAX_LOG_TIME_MS: u64 = 10_000_000_000_000;

/// Checks a log range `[since, until)` in Unix ms: each bound at most [`MAX_LOG_TIME_MS`], and
/// `since` before `until`. The error says which is wrong, for a 400.
pub fn check_log_range(since: Option<u64>, until: Option<u64>) -> Result<(), String> {
    for (name, t) in [("since", since), ("until", until)] {
        if t.is_some_and(|t| t > MAX_LOG_TIME_MS) {
            return Err(format!(
                "{name} is Unix milliseconds, at most {MAX_LOG_TIME_MS} (the year 2286)"
            ));
        }
    }
    match (since, until) {
        (Some(since), Some(until)) if since >= until => Err(format!(
            "since ({since}) must be before until ({until}): both are Unix milliseconds"
        )),
        _ => Ok(()),
    }
}

/// A syslog priority as a log query names it: 0–7 or emerg, alert, crit, err, warning, notice,
/// info, debug (any case).
pub fn parse_log_priority(p: &str) -> Result<u8, String> {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    p.parse::<u8>()
        .ok()
        .filter(|n| *n <= 7)
        .or_else(|| {
            NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(p))
                .map(|i| i as u8)
        })
        .ok_or_else(|| format!("priority {p:?}: use 0-7 or one of {}", NAMES.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_priorities() {
        assert_eq!(check_log_range(Some(1), Some(2)), Ok(()));
        assert_eq!(check_log_range(None, None), Ok(()));
        assert!(check_log_range(Some(2), Some(2)).is_err_and(|e| e.contains("must be before")));
        assert!(check_log_range(None, Some(u64::MAX)).is_err_and(|e| e.contains("until")));
        assert_eq!(parse_log_priority("WARNING"), Ok(4));
        assert_eq!(parse_log_priority("7"), Ok(7));
        assert!(parse_log_priority("8").is_err_and(|e| e.contains("emerg")));
    }
}

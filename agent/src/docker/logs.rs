//! Container logs through the Docker API with timestamps. A cursor is the line's timestamp in
//! nanoseconds (`d<ns>`): pages go back with `until`, follows resume with `since` and skip what
//! is not newer than the cursor.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use fleetdeck_proto::{LogEntry, LogStream};
use futures_util::{Stream, StreamExt};

use super::{DockerError, DockerSource};
use crate::journal::{cut, LogQuery};

/// With a filter (grep or priority) a page looks at this many lines before `before`.
pub const FILTER_WINDOW: usize = 5_000;

/// The priority given to container output: stderr as `err` (3), stdout as `info` (6).
fn priority(stream: LogStream) -> u8 {
    match stream {
        LogStream::Stderr => 3,
        LogStream::Stdout => 6,
    }
}

/// Parses a cursor of ours (`d` and nanoseconds).
pub fn parse_cursor(c: &str) -> Option<u64> {
    c.strip_prefix('d')?.parse().ok()
}

/// Splits one chunk of output (`<RFC 3339 nano> <text>` per line) into entries.
pub fn entries_of(output: LogOutput) -> Vec<LogEntry> {
    let (stream, bytes) = match output {
        LogOutput::StdOut { message } => (LogStream::Stdout, message),
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::Console { message } => (LogStream::Stdout, message),
        LogOutput::StdIn { .. } => return Vec::new(),
    };
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            let space = line.iter().position(|b| *b == b' ')?;
            let ts = std::str::from_utf8(&line[..space]).ok()?;
            let ns = parse_rfc3339_ns(ts)?;
            let (message, truncated) =
                cut(String::from_utf8_lossy(&line[space + 1..]).into_owned());
            Some(LogEntry {
                cursor: format!("d{ns}"),
                unix_us: ns / 1_000,
                priority: Some(priority(stream)),
                stream: Some(stream),
                message,
                truncated,
            })
        })
        .collect()
}

/// `2024-05-01T10:00:00.123456789Z` (or with an offset) in nanoseconds since the epoch.
pub fn parse_rfc3339_ns(ts: &str) -> Option<u64> {
    let ms = super::parse_docker_time(ts)?;
    // parse_docker_time keeps milliseconds; add the sub-millisecond digits back.
    let frac = ts
        .split_once('.')
        .map(|(_, f)| f.trim_end_matches(|c: char| !c.is_ascii_digit()));
    let frac = frac.map(|f| f.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""));
    let sub_ms = frac
        .map(|f| {
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
            digits[3..].parse::<u64>().unwrap_or(0)
        })
        .unwrap_or(0);
    Some(ms * 1_000_000 + sub_ms)
}

fn matches(e: &LogEntry, query: &LogQuery, grep: Option<&regex_lite::Regex>) -> bool {
    query
        .priority
        .is_none_or(|p| e.priority.is_none_or(|ep| ep <= p))
        && grep.is_none_or(|re| re.is_match(&e.message))
}

impl DockerSource {
    /// The newest lines of `container` matching `query`, newest first.
    pub async fn log_page(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<Vec<LogEntry>, DockerError> {
        let grep = match &query.grep {
            Some(g) => Some(
                regex_lite::RegexBuilder::new(g)
                    .case_insensitive(!g.chars().any(char::is_uppercase))
                    .build()
                    .map_err(|e| DockerError::Query(e.to_string()))?,
            ),
            None => None,
        };
        let before = query.before.as_deref().and_then(parse_cursor);
        let filtered = grep.is_some() || query.priority.is_some();
        let window = if filtered {
            FILTER_WINDOW
        } else {
            query.limit + 500
        };
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: 0,
            // until is in whole seconds: take the cursor's second and drop what is not older.
            until: before.map_or(0, |ns| {
                i32::try_from(ns / 1_000_000_000 + 1).unwrap_or(i32::MAX)
            }),
            timestamps: true,
            tail: window.to_string(),
        };
        let docker = self.client().await?;
        let mut chunks = docker.logs(container, Some(options));
        let mut all = Vec::new();
        while let Some(chunk) = chunks.next().await {
            all.extend(entries_of(chunk.map_err(DockerError::Call)?));
        }
        // Both streams arrive in one sequence ordered by time; sort to be sure, then newest first.
        all.sort_by_key(|e| parse_cursor(&e.cursor));
        Ok(all
            .into_iter()
            .rev()
            .filter(|e| before.is_none_or(|b| parse_cursor(&e.cursor).is_some_and(|ns| ns < b)))
            .filter(|e| matches(e, query, grep.as_ref()))
            .take(query.limit)
            .collect())
    }

    /// Follows `container`'s output after `after` (a cursor of ours) or from now.
    pub async fn log_follow(
        &self,
        container: &str,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = LogEntry> + use<>, DockerError> {
        let since_ns = after.unwrap_or_else(|| crate::agent::unix_ms_now() * 1_000_000);
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since: i32::try_from(since_ns / 1_000_000_000).unwrap_or(0),
            until: 0,
            timestamps: true,
            tail: "all".to_owned(),
        };
        // A follow lasts as long as the client listens: no request timeout on it.
        let docker = self.client().await?.with_timeout(super::FOREVER);
        let lines = docker.logs(container, Some(options));
        let include_equal = after.is_none();
        Ok(lines
            .take_while(|r| std::future::ready(r.is_ok()))
            .flat_map(|r| futures_util::stream::iter(r.map(entries_of).unwrap_or_default()))
            .filter(move |e| {
                let ns = parse_cursor(&e.cursor).unwrap_or(0);
                std::future::ready(if include_equal {
                    ns >= since_ns
                } else {
                    ns > since_ns
                })
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chunks_split_into_timestamped_entries() {
        let out = LogOutput::StdErr {
            message: Bytes::from_static(
                b"2024-05-01T10:00:00.123456789Z boom\n2024-05-01T10:00:01Z bin\xff\n",
            ),
        };
        let e = entries_of(out);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].cursor, "d1714557600123456789");
        assert_eq!(e[0].unix_us, 1_714_557_600_123_456);
        assert_eq!(
            (e[0].message.as_str(), e[0].stream, e[0].priority),
            ("boom", Some(LogStream::Stderr), Some(3))
        );
        assert_eq!(e[1].message, "bin\u{fffd}");
        assert_eq!(e[1].cursor, "d1714557601000000000");
        assert!(entries_of(LogOutput::StdIn {
            message: Bytes::from_static(b"x")
        })
        .is_empty());
    }

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor("d123"), Some(123));
        for bad in ["123", "d", "dx", "s=abc", ""] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
        assert_eq!(
            parse_rfc3339_ns("2024-05-01T10:00:00.5Z"),
            Some(1_714_557_600_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2024-05-01T12:00:00.000000001+02:00"),
            Some(1_714_557_600_000_000_001)
        );
    }
}

//! Container logs through the Docker API with timestamps. Engines differ in timestamp precision
//! (Docker: nanoseconds; podman 4: whole seconds), so a cursor is the line's timestamp plus its
//! ordinal among the lines of that same timestamp (`d<ns>-<n>`), counted from the first of them.
//! Every read therefore starts at a whole second (`since`), so ordinals are counted the same way
//! by every reader: pages read the newest lines and go back, follows resume from the cursor's second
//! and skip up to the cursor.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use fleetdeck_proto::{LogEntry, LogStream};
use futures_util::{Stream, StreamExt};

use super::{DockerError, DockerSource};
use crate::journal::{cut, LogQuery};

/// A page starts by reading this many of the newest lines, and doubles until it has enough.
const FIRST_WINDOW: usize = 1_000;
/// A page never reads more than this many lines back (grep over a long history stops here),
/// nor more than [`MAX_WINDOW_BYTES`] of them.
pub const MAX_WINDOW: usize = 16_000;
pub const MAX_WINDOW_BYTES: usize = 16 * 1024 * 1024;

/// Where a line is: its timestamp and its ordinal among the lines with that timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub ns: u64,
    pub ordinal: u32,
}

impl Position {
    fn cursor(self) -> String {
        format!("d{}-{}", self.ns, self.ordinal)
    }
}

/// Parses a cursor of ours (`d<ns>-<ordinal>`).
pub fn parse_cursor(c: &str) -> Option<Position> {
    let (ns, ordinal) = c.strip_prefix('d')?.split_once('-')?;
    Some(Position {
        ns: ns.parse().ok()?,
        ordinal: ordinal.parse().ok()?,
    })
}

/// The priority given to container output: stderr as `err` (3), stdout as `info` (6).
fn priority(stream: LogStream) -> u8 {
    match stream {
        LogStream::Stderr => 3,
        LogStream::Stdout => 6,
    }
}

/// A line before it has its ordinal.
struct Line {
    ns: u64,
    stream: LogStream,
    text: Vec<u8>,
}

/// Splits one chunk of output (`<RFC 3339> <text>` per line) into lines.
fn lines_of(output: LogOutput) -> Vec<Line> {
    let (stream, bytes) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (LogStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdIn { .. } => return Vec::new(),
    };
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            let space = line.iter().position(|b| *b == b' ')?;
            let ns = parse_rfc3339_ns(std::str::from_utf8(&line[..space]).ok()?)?;
            Some(Line {
                ns,
                stream,
                text: line[space + 1..].to_vec(),
            })
        })
        .collect()
}

/// Numbers lines in arrival order within each timestamp. `Numbering` carries the count across
/// chunks of one read.
#[derive(Debug, Default)]
struct Numbering {
    last: Option<Position>,
}

impl Numbering {
    fn entry(&mut self, line: Line) -> (Position, LogEntry) {
        let ordinal = match self.last {
            Some(p) if p.ns == line.ns => p.ordinal + 1,
            _ => 0,
        };
        let pos = Position {
            ns: line.ns,
            ordinal,
        };
        self.last = Some(pos);
        let (message, truncated) = cut(String::from_utf8_lossy(&line.text).into_owned());
        let entry = LogEntry {
            cursor: pos.cursor(),
            unix_us: line.ns / 1_000,
            priority: Some(priority(line.stream)),
            stream: Some(line.stream),
            message,
            truncated,
        };
        (pos, entry)
    }
}

/// `2024-05-01T10:00:00.123456789Z` (or with an offset) in nanoseconds since the epoch.
pub fn parse_rfc3339_ns(ts: &str) -> Option<u64> {
    let ms = super::parse_docker_time(ts)?;
    // parse_docker_time keeps milliseconds; add the sub-millisecond digits back.
    let frac = ts
        .split_once('.')
        .map(|(_, f)| f.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""));
    let sub_ms = frac
        .map(|f| {
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
            digits[3..].parse::<u64>().unwrap_or(0)
        })
        .unwrap_or(0);
    // Past the year 2554 nanoseconds do not fit in a u64: no time rather than a wrong one.
    ms.checked_mul(1_000_000)?.checked_add(sub_ms)
}

fn build_grep(query: &LogQuery) -> Result<Option<regex_lite::Regex>, DockerError> {
    let Some(g) = &query.grep else {
        return Ok(None);
    };
    regex_lite::RegexBuilder::new(g)
        .case_insensitive(!g.chars().any(char::is_uppercase))
        .build()
        .map(Some)
        .map_err(|e| DockerError::Query(format!("grep {g:?}: {e}")))
}

impl DockerSource {
    /// The newest `tail` lines, and whether older ones were dropped to stay under
    /// [`MAX_WINDOW_BYTES`].
    async fn read_tail(
        &self,
        container: &str,
        tail: usize,
    ) -> Result<(Vec<Line>, bool), DockerError> {
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: 0,
            until: 0,
            timestamps: true,
            tail: tail.to_string(),
        };
        let docker = self.client().await?;
        let mut chunks = docker.logs(container, Some(options));
        let mut lines = Vec::new();
        let mut bytes = 0;
        let mut dropped = false;
        while let Some(chunk) = chunks.next().await {
            let new = lines_of(chunk.map_err(DockerError::Call)?);
            bytes += new.iter().map(|l| l.text.len() + 32).sum::<usize>();
            lines.extend(new);
            if bytes > MAX_WINDOW_BYTES {
                // Keep the newest lines: drop from the front until under the cap.
                let mut excess = bytes - MAX_WINDOW_BYTES;
                let cut = lines.iter().take_while(|l| {
                    let take = excess > 0;
                    excess = excess.saturating_sub(l.text.len() + 32);
                    take
                });
                let n = cut.count();
                bytes -= lines[..n].iter().map(|l| l.text.len() + 32).sum::<usize>();
                lines.drain(..n);
                dropped = true;
            }
        }
        Ok((lines, dropped))
    }

    /// The newest lines of `container` matching `query` (older than `query.before`), newest first.
    pub async fn log_page(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<Vec<LogEntry>, DockerError> {
        let grep = build_grep(query)?;
        let before = query.before.as_deref().and_then(parse_cursor);
        let mut window = FIRST_WINDOW.max(query.limit * 2);
        loop {
            let (lines, dropped) = self.read_tail(container, window).await?;
            let complete = !dropped && lines.len() < window;
            // The oldest timestamp of a full window may be cut: its ordinals would be wrong.
            let cut_ns = if complete {
                None
            } else {
                lines.first().map(|l| l.ns)
            };
            let mut numbering = Numbering::default();
            let mut entries: Vec<LogEntry> = lines
                .into_iter()
                .filter(|l| Some(l.ns) != cut_ns)
                .map(|l| numbering.entry(l))
                .filter(|(pos, _)| before.is_none_or(|b| *pos < b))
                .map(|(_, e)| e)
                .filter(|e| {
                    query
                        .priority
                        .is_none_or(|p| e.priority.is_none_or(|ep| ep <= p))
                })
                .filter(|e| grep.as_ref().is_none_or(|re| re.is_match(&e.message)))
                .collect();
            if entries.len() >= query.limit || complete || dropped || window >= MAX_WINDOW {
                entries.reverse();
                entries.truncate(query.limit);
                return Ok(entries);
            }
            window = (window * 4).min(MAX_WINDOW);
        }
    }

    /// Follows `container`'s output after `after` or, without it, from the start of the current
    /// second.
    pub async fn log_follow(
        &self,
        container: &str,
        after: Option<Position>,
    ) -> Result<impl Stream<Item = LogEntry> + use<>, DockerError> {
        let from_ns = after.map_or_else(|| crate::agent::unix_ms_now() * 1_000_000, |p| p.ns);
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            // Whole seconds, inclusive: the cursor's timestamp group is read from its first line.
            since: i32::try_from(from_ns / 1_000_000_000).unwrap_or(0),
            until: 0,
            timestamps: true,
            tail: "all".to_owned(),
        };
        // A follow lasts as long as the client listens: no request timeout on it.
        let docker = self.client().await?.with_timeout(super::FOREVER);
        let chunks = docker.logs(container, Some(options));
        let mut numbering = Numbering::default();
        Ok(chunks
            .take_while(|r| std::future::ready(r.is_ok()))
            .flat_map(|r| futures_util::stream::iter(r.map(lines_of).unwrap_or_default()))
            .filter_map(move |line| {
                let (pos, entry) = numbering.entry(line);
                std::future::ready(after.is_none_or(|a| pos > a).then_some(entry))
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chunks_split_into_numbered_entries() {
        let out = LogOutput::StdErr {
            message: Bytes::from_static(b"2024-05-01T10:00:00Z boom\n2024-05-01T10:00:00Z bin\xff\n2024-05-01T10:00:01.5Z x\n"),
        };
        let mut n = Numbering::default();
        let e: Vec<(Position, LogEntry)> = lines_of(out).into_iter().map(|l| n.entry(l)).collect();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].1.cursor, "d1714557600000000000-0");
        assert_eq!(
            e[1].1.cursor, "d1714557600000000000-1",
            "same second: next ordinal"
        );
        assert_eq!(e[2].1.cursor, "d1714557601500000000-0");
        assert_eq!(e[2].1.unix_us, 1_714_557_601_500_000);
        assert_eq!(
            (e[0].1.message.as_str(), e[0].1.stream, e[0].1.priority),
            ("boom", Some(LogStream::Stderr), Some(3))
        );
        assert_eq!(e[1].1.message, "bin\u{fffd}");
        assert!(e[0].0 < e[1].0 && e[1].0 < e[2].0);
        assert!(lines_of(LogOutput::StdIn {
            message: Bytes::from_static(b"x")
        })
        .is_empty());
    }

    #[test]
    fn cursors() {
        assert_eq!(
            parse_cursor("d123-4"),
            Some(Position {
                ns: 123,
                ordinal: 4
            })
        );
        for bad in ["123", "d", "d123", "dx-1", "d1-x", "s=abc", ""] {
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
        // Past 2554 the nanoseconds overflow a u64: no time (it panicked in debug builds, and
        // wrapped to a wrong one in release).
        assert!(crate::docker::parse_docker_time("2600-01-01T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339_ns("2600-01-01T00:00:00Z"), None);
    }
}

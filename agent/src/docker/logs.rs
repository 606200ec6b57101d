//! Container logs through the Docker API with timestamps. Engines differ in timestamp precision
//! (Docker: nanoseconds; podman 4: whole seconds), so a cursor is the line's timestamp plus its
//! ordinal among the lines of that same timestamp (`d<ns>-<n>`), counted from the first of them.
//! Every read therefore starts at a whole second (`since`), so ordinals are counted the same way
//! by every reader: pages read the newest lines and go back, follows resume from the cursor's second
//! and skip up to the cursor.

use std::time::Instant;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use fleetdeck_proto::{LogEntry, LogStream};
use futures_util::{Stream, StreamExt};

use super::{DockerError, DockerSource};
use crate::journal::{cut, LogQuery, MAX_MESSAGE};
use crate::search::{filter_blocking, SEARCH_DEADLINE};

const NS_PER_SEC: u64 = 1_000_000_000;

/// The first page starts at the second of the newest this many lines (or `2 × limit`).
const FIRST_WINDOW: usize = 1_000;
/// One read of a range keeps at most this many lines, and [`MAX_WINDOW_BYTES`] of them (the
/// newest); a page goes on before them with the next read.
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
#[derive(Debug)]
struct Line {
    ns: u64,
    stream: LogStream,
    text: Vec<u8>,
}

/// Puts lines back together from the engine's frames (`<RFC 3339> <text>` each). A frame that
/// does not end in a newline holds part of a line: podman cuts lines where conmon's reads end
/// (a burst of output is cut every few KiB), Docker every 16 KiB. The pieces that follow carry
/// timestamps of their own; the line keeps its first one, and is whole at the next newline.
#[derive(Debug, Default)]
struct Lines {
    /// The unfinished line of stdout and of stderr.
    pending: [Option<Line>; 2],
}

impl Lines {
    /// The lines `output` completes.
    fn push(&mut self, output: LogOutput) -> Vec<Line> {
        let (stream, bytes) = match output {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (LogStream::Stdout, message)
            }
            LogOutput::StdErr { message } => (LogStream::Stderr, message),
            LogOutput::StdIn { .. } => return Vec::new(),
        };
        let slot = &mut self.pending[usize::from(stream == LogStream::Stderr)];
        let mut done = Vec::new();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let (piece, complete) = match piece.strip_suffix(b"\n") {
                Some(p) => (p, true),
                None => (piece, false),
            };
            let Some((ns, text)) = split_timestamp(piece) else {
                continue;
            };
            let line = match slot.take() {
                Some(mut line) => {
                    // Past what an entry keeps, the rest is dropped (the entry says truncated).
                    let room = (MAX_MESSAGE + 1).saturating_sub(line.text.len());
                    line.text.extend_from_slice(&text[..text.len().min(room)]);
                    line
                }
                None => Line {
                    ns,
                    stream,
                    text: text.to_vec(),
                },
            };
            if complete {
                done.push(line);
            } else {
                *slot = Some(line);
            }
        }
        done
    }

    /// At the end of a read: the lines still unfinished (their output had no newline yet).
    fn finish(self) -> impl Iterator<Item = Line> {
        let mut rest: Vec<Line> = self.pending.into_iter().flatten().collect();
        rest.sort_by_key(|l| l.ns);
        rest.into_iter()
    }
}

/// `<RFC 3339> <text>`: the time in nanoseconds and the text.
fn split_timestamp(piece: &[u8]) -> Option<(u64, &[u8])> {
    let space = piece.iter().position(|b| *b == b' ')?;
    let ns = parse_rfc3339_ns(std::str::from_utf8(&piece[..space]).ok()?)?;
    Some((ns, &piece[space + 1..]))
}

/// Numbers lines in arrival order within each timestamp. `Numbering` carries the count across
/// chunks of one read.
#[derive(Debug, Default)]
struct Numbering {
    last: Option<Position>,
}

impl Numbering {
    fn number(&mut self, ns: u64) -> Position {
        let ordinal = match self.last {
            Some(p) if p.ns == ns => p.ordinal + 1,
            _ => 0,
        };
        let pos = Position { ns, ordinal };
        self.last = Some(pos);
        pos
    }
}

/// A numbered line as the wire carries it.
fn entry(pos: Position, line: Line) -> LogEntry {
    let (message, truncated) = cut(String::from_utf8_lossy(&line.text).into_owned());
    LogEntry {
        cursor: pos.cursor(),
        unix_us: line.ns / 1_000,
        priority: Some(priority(line.stream)),
        stream: Some(line.stream),
        message,
        truncated,
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

/// A read of whole seconds `[since, until)`: its lines numbered exactly (the read starts at a
/// whole second), only those before `upper` kept, and of those only the newest that fit
/// [`MAX_WINDOW`] lines and [`MAX_WINDOW_BYTES`].
struct RangeRead {
    lines: std::collections::VecDeque<(Position, Line)>,
    /// Lines before `upper` were dropped from the front to stay under the caps.
    dropped: bool,
}

/// One page's bounds on the engine's work: lines read back in all, and the time spent reading
/// back (a page that reaches either has what it found so far).
const MAX_SCANNED: usize = 64_000;
const PAGE_BUDGET: std::time::Duration = std::time::Duration::from_secs(15);
/// How many lines one read of a range aims at when it chooses how far back to go.
const RANGE_TARGET: u64 = 2_000;

impl DockerSource {
    /// The second the oldest of the newest `tail` lines was written in, or `None` when there are
    /// fewer lines than that (the whole log fits).
    async fn tail_start(&self, container: &str, tail: usize) -> Result<Option<u64>, DockerError> {
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
        // Frames, not lines, are counted: `tail` counts the engine's log records, and a line
        // cut in pieces is several (see [`Lines`]).
        let (mut first, mut count) = (None, 0);
        while let Some(chunk) = chunks.next().await {
            let (LogOutput::StdOut { message }
            | LogOutput::StdErr { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message }) = chunk.map_err(DockerError::Call)?;
            count += 1;
            if first.is_none() {
                first = split_timestamp(&message).map(|(ns, _)| ns);
            }
        }
        Ok((count >= tail).then(|| first.map_or(0, |ns| ns / NS_PER_SEC)))
    }

    /// Reads whole seconds from `since` up to `upper`'s second (inclusive) and keeps the lines
    /// before `upper` (see [`RangeRead`]).
    async fn read_range(
        &self,
        container: &str,
        since: u64,
        upper: Option<Position>,
    ) -> Result<RangeRead, DockerError> {
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: i32::try_from(since).unwrap_or(i32::MAX),
            // The engines keep lines up to and including `until` (to the nanosecond): one second
            // past upper's, and positions sort out the rest.
            until: upper.map_or(0, |u| {
                i32::try_from(u.ns / NS_PER_SEC + 1).unwrap_or(i32::MAX)
            }),
            timestamps: true,
            tail: "all".to_owned(),
        };
        let docker = self.client().await?;
        let mut chunks = docker.logs(container, Some(options));
        let mut numbering = Numbering::default();
        let mut read = RangeRead {
            lines: std::collections::VecDeque::new(),
            dropped: false,
        };
        let mut bytes = 0;
        let mut lines = Lines::default();
        let mut keep = |line: Line| {
            let pos = numbering.number(line.ns);
            if upper.is_some_and(|u| pos >= u) {
                return;
            }
            bytes += line.text.len() + 32;
            read.lines.push_back((pos, line));
            while read.lines.len() > MAX_WINDOW || bytes > MAX_WINDOW_BYTES {
                let Some((_, old)) = read.lines.pop_front() else {
                    break;
                };
                bytes -= old.text.len() + 32;
                read.dropped = true;
            }
        };
        while let Some(chunk) = chunks.next().await {
            lines
                .push(chunk.map_err(DockerError::Call)?)
                .into_iter()
                .for_each(&mut keep);
        }
        lines.finish().for_each(keep);
        Ok(read)
    }

    /// The last `n` lines `container` wrote up to `until_ms` (its finish time), oldest first:
    /// lines from the 10 minutes before, joined from the engine's frames.
    pub async fn lines_until(
        docker: bollard::Docker,
        container: &str,
        until_ms: u64,
        n: usize,
    ) -> Result<Vec<String>, DockerError> {
        let until_sec = until_ms / 1_000 + 1;
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since: i32::try_from(until_sec.saturating_sub(600).max(1)).unwrap_or(i32::MAX),
            until: i32::try_from(until_sec).unwrap_or(i32::MAX),
            timestamps: true,
            tail: "all".to_owned(),
        };
        let mut chunks = docker.logs(container, Some(options));
        let mut kept = std::collections::VecDeque::with_capacity(n + 1);
        let mut lines = Lines::default();
        let limit_ns = (until_ms + 1_000) * 1_000_000;
        let mut keep = |line: Line| {
            if line.ns > limit_ns {
                return;
            }
            kept.push_back(String::from_utf8_lossy(&line.text).into_owned());
            if kept.len() > n {
                kept.pop_front();
            }
        };
        while let Some(chunk) = chunks.next().await {
            lines
                .push(chunk.map_err(DockerError::Call)?)
                .into_iter()
                .for_each(&mut keep);
        }
        lines.finish().for_each(keep);
        Ok(kept.into())
    }

    /// When `container` was created, in whole seconds: no log line is older.
    async fn created_sec(&self, container: &str) -> Result<u64, DockerError> {
        let docker = self.client().await?;
        let inspect = self
            .inspect(&docker, container)
            .await?
            .ok_or_else(|| DockerError::Reread(format!("no container is named {container:?}")))?;
        Ok(inspect
            .created
            .as_deref()
            .and_then(super::parse_docker_time)
            .map_or(0, |ms| ms / 1_000))
    }

    /// The newest lines of `container` matching `query` (older than `query.before`), newest first.
    ///
    /// The log is read back in ranges of whole seconds, each read from the first line of its
    /// first second, so every line gets the ordinal any other reader gives it, however many lines
    /// share a timestamp (a burst of 20,000 in one second pages like any other lines). Matching
    /// runs on a blocking thread, all of a page's matching within the search deadline; reading
    /// back stops after [`PAGE_BUDGET`] with what was found.
    pub async fn log_page(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<Vec<LogEntry>, DockerError> {
        let started = Instant::now();
        let mut matching_left = SEARCH_DEADLINE;
        // Before the cursor and before `until`, whichever is older.
        let until = query.until_ms.map(|ms| Position {
            ns: ms.saturating_mul(1_000_000),
            ordinal: 0,
        });
        let mut upper = match (query.before.as_deref().and_then(parse_cursor), until) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        };
        // Nothing before `since` is read: it counts as the container's start.
        let created = self
            .created_sec(container)
            .await?
            .max(query.since_ms.map_or(0, |ms| ms / 1_000));
        // The first page starts where the newest window of lines does; later ones go back by a
        // number of seconds that adapts to how many lines a second holds.
        let mut since = match upper {
            None => self
                .tail_start(container, FIRST_WINDOW.max(query.limit * 2))
                .await?
                .unwrap_or(0)
                .max(created),
            Some(u) => u.ns / NS_PER_SEC,
        };
        let mut width = 1;
        let mut found: Vec<LogEntry> = Vec::new();
        let mut scanned = 0;
        loop {
            let read = self.read_range(container, since, upper).await?;
            scanned += read.lines.len();
            let (oldest, dropped, count) = (
                read.lines.front().map(|(p, _)| *p),
                read.dropped,
                read.lines.len() as u64,
            );
            let matched = self.matching(read, query, &mut matching_left).await?;
            found.extend(matched.into_iter().rev());
            if found.len() >= query.limit
                || (!dropped && since <= created)
                || scanned >= MAX_SCANNED
                || started.elapsed() >= PAGE_BUDGET
            {
                break;
            }
            if dropped {
                // The range held more than one read keeps: go on before its oldest kept line.
                upper = oldest;
                continue;
            }
            upper = Some(Position {
                ns: since * NS_PER_SEC,
                ordinal: 0,
            });
            // Aim the next read at RANGE_TARGET lines, widening at most 8-fold (to the start).
            width = (width * RANGE_TARGET)
                .checked_div(count)
                .map_or(width * 8, |w| w.clamp(1, width * 8));
            since = since.saturating_sub(width).max(created);
        }
        found.truncate(query.limit);
        Ok(found)
    }

    /// The entries of `read` that `query`'s priority and grep accept, oldest first.
    async fn matching(
        &self,
        read: RangeRead,
        query: &LogQuery,
        matching_left: &mut std::time::Duration,
    ) -> Result<Vec<LogEntry>, DockerError> {
        let entries: Vec<LogEntry> = read
            .lines
            .into_iter()
            .map(|(pos, line)| entry(pos, line))
            .filter(|e| {
                query
                    .priority
                    .is_none_or(|p| e.priority.is_none_or(|ep| ep <= p))
                    && query
                        .since_ms
                        .is_none_or(|ms| e.unix_us >= ms.saturating_mul(1_000))
            })
            .collect();
        let Some(grep) = query.grep.clone() else {
            return Ok(entries);
        };
        let began = Instant::now();
        let kept = filter_blocking(entries, began + *matching_left, move |e| {
            grep.is_match(&e.message)
        })
        .await
        .map_err(DockerError::Search);
        *matching_left = matching_left.saturating_sub(began.elapsed());
        kept
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
        let (mut numbering, mut lines) = (Numbering::default(), Lines::default());
        Ok(chunks
            .take_while(|r| std::future::ready(r.is_ok()))
            .flat_map(move |r| {
                futures_util::stream::iter(r.map(|o| lines.push(o)).unwrap_or_default())
            })
            .filter_map(move |line| {
                let pos = numbering.number(line.ns);
                std::future::ready(after.is_none_or(|a| pos > a).then(|| entry(pos, line)))
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
        let e: Vec<(Position, LogEntry)> = Lines::default()
            .push(out)
            .into_iter()
            .map(|l| {
                let pos = n.number(l.ns);
                (pos, entry(pos, l))
            })
            .collect();
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
        assert!(Lines::default()
            .push(LogOutput::StdIn {
                message: Bytes::from_static(b"x")
            })
            .is_empty());
    }

    #[test]
    fn lines_cut_in_frames_are_put_back_together() {
        let frame = |s: &'static [u8]| LogOutput::StdOut {
            message: Bytes::from_static(s),
        };
        let mut lines = Lines::default();
        // podman: "1860\n" cut after "1860"; the newline comes in a frame of its own.
        assert!(lines.push(frame(b"2024-05-01T10:00:00Z 18")).is_empty());
        assert!(lines.push(frame(b"2024-05-01T10:00:01Z 60")).is_empty());
        let err = lines.push(LogOutput::StdErr {
            message: Bytes::from_static(b"2024-05-01T10:00:01Z oops\n"),
        });
        assert_eq!(err.len(), 1, "stderr is a line of its own");
        let done = lines.push(frame(b"2024-05-01T10:00:01Z \n2024-05-01T10:00:01Z next\n"));
        let texts: Vec<&[u8]> = done.iter().map(|l| l.text.as_slice()).collect();
        assert_eq!(texts, [&b"1860"[..], b"next"]);
        assert_eq!(
            done[0].ns, 1_714_557_600_000_000_000,
            "the first piece's time"
        );
        // An unfinished line at the end of a read is still a line; one that never ends is cut.
        let mut lines = Lines::default();
        lines.push(frame(b"2024-05-01T10:00:00Z start"));
        let big = Bytes::from(
            [
                b"2024-05-01T10:00:00Z ".to_vec(),
                vec![b'x'; MAX_MESSAGE * 2],
            ]
            .concat(),
        );
        lines.push(LogOutput::StdOut { message: big });
        let rest: Vec<Line> = lines.finish().collect();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].text.len(), MAX_MESSAGE + 1, "bounded");
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

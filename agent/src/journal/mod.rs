//! Unit logs from journald through `journalctl -o json`: pages newest first, and a live follow
//! that resumes after a cursor. The follow owns its journalctl process, which dies with it.

mod parse;

use std::process::Stdio;
use std::time::Duration;

use fleetdeck_proto::LogEntry;
use futures_util::{Stream, TryStreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

pub use parse::{cut, parse_entry, valid_cursor, CursorPosition, MAX_MESSAGE};

use crate::config::SystemdScope;
use crate::search::{Pattern, SEARCH_DEADLINE};

const PAGE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot run journalctl: {0}; is systemd's journalctl installed?")]
    Spawn(std::io::Error),
    #[error("journalctl did not answer within {0:?}")]
    Timeout(Duration),
    #[error("journalctl refused the query: {0}")]
    Query(String),
}

/// What a page asks for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub limit: usize,
    /// Entries older than this cursor (a validated journald cursor).
    pub before: Option<String>,
    /// A regular expression the message must match (journalctl `--grep`, case-insensitive
    /// unless it has capitals), bounded by [`Pattern`].
    pub grep: Option<Pattern>,
    /// The least important priority to include, 0–7.
    pub priority: Option<u8>,
    /// Only entries written at or after this time (Unix milliseconds).
    pub since_ms: Option<u64>,
    /// Only entries written before this time (Unix milliseconds).
    pub until_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Journal {
    scope: SystemdScope,
}

impl Journal {
    pub fn new(scope: SystemdScope) -> Self {
        Self { scope }
    }

    /// journalctl for `unit`'s entries as JSON; `line_buffered` runs it under `stdbuf -oL`, so
    /// each entry reaches the pipe as it is printed (block-buffered, a search's few matches
    /// would come only when it exits).
    fn command(&self, unit: &str, line_buffered: bool) -> Command {
        let mut cmd = if line_buffered {
            let mut cmd = Command::new("stdbuf");
            cmd.args(["-oL", "journalctl"]);
            cmd
        } else {
            Command::new("journalctl")
        };
        match self.scope {
            SystemdScope::System => cmd.arg(format!("--unit={unit}")),
            SystemdScope::User => cmd.arg(format!("--user-unit={unit}")),
        };
        // --all: without it journalctl prints fields over 4 KiB as null.
        cmd.args([
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
            "--output-fields=MESSAGE,PRIORITY",
        ]);
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// The newest entries matching `query`, newest first.
    pub async fn page(&self, unit: &str, query: &LogQuery) -> Result<Vec<LogEntry>, JournalError> {
        if query.before.is_some() && query.since_ms.is_some() {
            // Read as a stream, which stops at the limit (see `page_command`).
            return self.page_stream(unit, query).await?.try_collect().await;
        }
        let PageCommand { cmd, .. } = self.page_command(unit, query, false)?;
        self.run_page(cmd, query.grep.is_some()).await
    }

    /// The entries of [`page`](Self::page), each as journalctl finds it: a search over a large
    /// journal shows its newest matches at once rather than when the scan ends. Ends after
    /// `query.limit` entries or at the end; past the deadline with [`JournalError::Timeout`]. The
    /// journalctl process dies with the stream. Without `stdbuf` on the host, journalctl runs
    /// block-buffered: the same entries, later.
    pub async fn page_stream(
        &self,
        unit: &str,
        query: &LogQuery,
    ) -> Result<impl Stream<Item = Result<LogEntry, JournalError>> + use<>, JournalError> {
        let spawn = |line_buffered| -> Result<_, JournalError> {
            let PageCommand {
                mut cmd,
                older_than,
            } = self.page_command(unit, query, line_buffered)?;
            let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
            Ok((child, older_than))
        };
        let (child, older_than) = match spawn(true)? {
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => spawn(false)?,
            spawned => spawned,
        };
        let mut child = child.map_err(JournalError::Spawn)?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(JournalError::Spawn(std::io::Error::other("no pipes")));
        };
        let limit = if query.grep.is_some() {
            SEARCH_DEADLINE
        } else {
            PAGE_TIMEOUT
        };
        let state = PageStream {
            child,
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            stderr,
            older_than,
            left: query.limit,
            deadline: tokio::time::Instant::now() + limit,
            limit,
            sent: 0,
            done: false,
        };
        Ok(futures_util::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }

    /// A page's journalctl command (`line_buffered`: see [`command`](Self::command)).
    fn page_command(
        &self,
        unit: &str,
        query: &LogQuery,
        line_buffered: bool,
    ) -> Result<PageCommand, JournalError> {
        let mut cmd = self.command(unit, line_buffered);
        // The range is half-open: journalctl's --until includes its instant, so 1 µs less.
        let mut until_us = query.until_ms.map(|ms| (ms * 1_000).saturating_sub(1));
        let mut older_than = None;
        let mut lines = Some(query.limit);
        match (&query.before, query.since_ms) {
            // journalctl takes only one of --since and --after-cursor: the cursor's own time bounds
            // the page instead (--until), and what is not older than the cursor is dropped. How
            // many entries share the cursor's microsecond is not known, so there is no --lines:
            // the page's reader stops journalctl once it has its entries.
            (Some(before), Some(_)) => {
                let position = CursorPosition::parse(before).ok_or_else(|| {
                    JournalError::Query(format!(
                        "cursor {before:?} has no position (s=, i=, t=): pass the cursor of an entry of a page"
                    ))
                })?;
                until_us = Some(until_us.map_or(position.unix_us, |u| u.min(position.unix_us)));
                older_than = Some(position);
                lines = None;
            }
            // With --reverse, "after" the cursor is older than it.
            (Some(before), None) => {
                cmd.arg(format!("--after-cursor={before}"));
            }
            (None, _) => {}
        }
        cmd.arg("--reverse");
        cmd.args(lines.map(|n| format!("--lines={n}")));
        if let Some(grep) = &query.grep {
            cmd.arg(format!("--grep={}", grep.as_str()));
        }
        if let Some(p) = query.priority {
            cmd.arg(format!("--priority=0..{p}"));
        }
        if let Some(ms) = query.since_ms {
            cmd.arg(format!("--since={}", at_us(ms * 1_000)));
        }
        if let Some(us) = until_us {
            cmd.arg(format!("--until={}", at_us(us)));
        }
        Ok(PageCommand { cmd, older_than })
    }

    /// Runs a page's journalctl and parses what it prints.
    async fn run_page(
        &self,
        mut cmd: Command,
        search: bool,
    ) -> Result<Vec<LogEntry>, JournalError> {
        // A search is journalctl matching every entry of the unit: it gets the search deadline,
        // and is killed when it passes (kill_on_drop).
        let limit = if search {
            SEARCH_DEADLINE
        } else {
            PAGE_TIMEOUT
        };
        let out = tokio::time::timeout(
            limit,
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output(),
        )
        .await
        .map_err(|_| JournalError::Timeout(limit))?
        .map_err(JournalError::Spawn)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            // "-- No entries --" is not an error; anything else (a bad --grep pattern) is.
            if !out.stdout.is_empty() || stderr.trim().is_empty() || stderr.contains("No entries") {
                return Ok(parse_lines(&out.stdout));
            }
            return Err(JournalError::Query(stderr.trim().to_owned()));
        }
        Ok(parse_lines(&out.stdout))
    }

    /// Follows `unit`'s new entries, starting after `after` (a validated cursor) or, without one,
    /// with the next entry written. The journalctl process ends when the stream is dropped.
    pub async fn follow(
        &self,
        unit: &str,
        after: Option<String>,
    ) -> Result<impl Stream<Item = LogEntry> + use<>, JournalError> {
        // `journalctl -f -n 0` drops the first new entry (systemd 252), so a follow always starts
        // from a cursor: the client's, or that of the newest entry now; with no entry at all, from
        // the current second (nothing older can match, as there was nothing).
        let start = match after {
            Some(c) => Some(c),
            None => self
                .page(
                    unit,
                    &LogQuery {
                        limit: 1,
                        ..LogQuery::default()
                    },
                )
                .await?
                .pop()
                .map(|e| e.cursor),
        };
        let mut cmd = self.command(unit, false);
        // --no-tail: with --follow journalctl shows only the last 10 entries unless told otherwise,
        // which would skip entries after the cursor.
        cmd.arg("--follow").arg("--no-tail");
        match start {
            Some(c) => cmd.arg(format!("--after-cursor={c}")),
            None => cmd.arg(format!("--since=@{}", crate::agent::unix_ms_now() / 1000)),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(JournalError::Spawn)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| JournalError::Spawn(std::io::Error::other("no stdout")))?;
        Ok(follow_stream(child, stdout))
    }
}

impl Journal {
    /// The last `n` messages a unit's own processes wrote (not systemd's about it), oldest
    /// first: of run `invocation` (a 32-hex-digit id) when journald tagged them with it, else
    /// those written up to `until_unix_ms` (journald of some setups, e.g. for user units, does
    /// not record `_SYSTEMD_INVOCATION_ID`).
    pub async fn run_lines(
        &self,
        unit: &str,
        invocation: Option<&str>,
        until_unix_ms: Option<u64>,
        n: usize,
    ) -> Result<Vec<String>, JournalError> {
        let field = match self.scope {
            SystemdScope::System => "_SYSTEMD_UNIT",
            SystemdScope::User => "_SYSTEMD_USER_UNIT",
        };
        if let Some(id) = invocation {
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                let lines = self
                    .lines_matching(
                        &[
                            format!("{field}={unit}"),
                            format!("_SYSTEMD_INVOCATION_ID={id}"),
                        ],
                        None,
                        n,
                    )
                    .await?;
                if !lines.is_empty() {
                    return Ok(lines);
                }
            }
        }
        self.lines_matching(&[format!("{field}={unit}")], until_unix_ms, n)
            .await
    }

    async fn lines_matching(
        &self,
        matches: &[String],
        until_unix_ms: Option<u64>,
        n: usize,
    ) -> Result<Vec<String>, JournalError> {
        // No --user: like --user-unit, this reads every journal the agent may read (a user's
        // units log to the system journal for system users).
        let mut cmd = Command::new("journalctl");
        cmd.args([
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
            "--reverse",
            "--output-fields=MESSAGE,PRIORITY",
        ])
        .arg(format!("--lines={n}"));
        if let Some(ms) = until_unix_ms {
            cmd.arg(format!("--until=@{}.{:03}", ms / 1000, ms % 1000));
        }
        cmd.args(matches)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(PAGE_TIMEOUT, cmd.output())
            .await
            .map_err(|_| JournalError::Timeout(PAGE_TIMEOUT))?
            .map_err(JournalError::Spawn)?;
        let mut lines: Vec<String> = parse_lines(&out.stdout)
            .into_iter()
            .map(|e| e.message)
            .collect();
        if lines.is_empty() && !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.trim().is_empty() && !stderr.contains("No entries") {
                return Err(JournalError::Query(stderr.trim().to_owned()));
            }
        }
        lines.reverse();
        Ok(lines)
    }
}

/// A page's journalctl, and the cursor position its entries must be older than (a page with
/// both `before` and `since`).
struct PageCommand {
    cmd: Command,
    older_than: Option<CursorPosition>,
}

/// A streamed page's journalctl and what it has sent.
struct PageStream {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
    older_than: Option<CursorPosition>,
    /// Entries still wanted.
    left: usize,
    deadline: tokio::time::Instant,
    limit: Duration,
    sent: usize,
    done: bool,
}

impl PageStream {
    async fn next(&mut self) -> Option<Result<LogEntry, JournalError>> {
        let mut buf = Vec::new();
        while !self.done && self.left > 0 {
            buf.clear();
            let read =
                tokio::time::timeout_at(self.deadline, self.stdout.read_until(b'\n', &mut buf));
            match read.await {
                Err(_) => {
                    self.done = true;
                    return Some(Err(JournalError::Timeout(self.limit)));
                }
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.done = true;
                    return self.failure().await.map(Err);
                }
                Ok(Ok(_)) => {
                    let Some(entry) = std::str::from_utf8(&buf).ok().and_then(parse_entry) else {
                        continue;
                    };
                    if self
                        .older_than
                        .as_ref()
                        .is_some_and(|p| !p.entry_is_older(&entry))
                    {
                        continue;
                    }
                    self.left -= 1;
                    self.sent += 1;
                    return Some(Ok(entry));
                }
            }
        }
        None
    }

    /// At the end of the output: journalctl's refusal (a bad query) when it printed nothing and
    /// failed; "-- No entries --" is not one.
    async fn failure(&mut self) -> Option<JournalError> {
        let Ok(status) = tokio::time::timeout_at(self.deadline, self.child.wait()).await else {
            return Some(JournalError::Timeout(self.limit));
        };
        let status = status.ok()?;
        if status.success() || self.sent > 0 {
            return None;
        }
        let mut stderr = Vec::new();
        let _ = tokio::time::timeout_at(
            self.deadline,
            (&mut self.stderr).take(64 * 1024).read_to_end(&mut stderr),
        )
        .await;
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        (!stderr.is_empty() && !stderr.contains("No entries"))
            .then(|| JournalError::Query(stderr.to_owned()))
    }
}

/// A time for journalctl's --since and --until: `@seconds.microseconds`.
fn at_us(us: u64) -> String {
    format!("@{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn parse_lines(out: &[u8]) -> Vec<LogEntry> {
    out.split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter_map(parse_entry)
        .collect()
}

/// The entries journalctl prints, for as long as it runs. `child` lives in the stream's state:
/// dropping the stream (the client went away) kills it at once (`kill_on_drop`).
fn follow_stream(child: Child, stdout: ChildStdout) -> impl Stream<Item = LogEntry> {
    let lines = BufReader::with_capacity(64 * 1024, stdout);
    futures_util::stream::unfold(
        (child, lines, Vec::new()),
        |(child, mut lines, mut buf)| async move {
            loop {
                buf.clear();
                // Lines are read as bytes: journalctl escapes everything in JSON, but a line is never
                // trusted to be UTF-8 until parsed.
                match lines.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {
                        if let Some(entry) = std::str::from_utf8(&buf).ok().and_then(parse_entry) {
                            return Some((entry, (child, lines, buf)));
                        }
                    }
                }
            }
        },
    )
}

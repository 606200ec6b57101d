//! Deterministic log lines: line `k` of an app is written at `origin + k * period`, and its text
//! comes from a small table of realistic lines picked by a hash of `(app, k)`. A page or a
//! follow is computed from the clock; nothing is stored. What a line says depends on the app's
//! state when it was written (errors while failed, none while stopped).

use std::sync::Arc;
use std::time::Duration;

use fleetdeck_proto::{AppKind, AppState, LogEntry, LogPage, LogStream};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use crate::host::{now_ms, state_in, Host};
use crate::noise::hash;

/// Entries in a page unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 200;
/// At most this many entries in one page.
pub(crate) const MAX_LIMIT: usize = 1_000;
/// A page looks at most this many lines (a grep that matches nothing stops here).
const SCAN_LIMIT: u64 = 200_000;

/// Where an app's lines come from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogSource {
    pub(crate) name: &'static str,
    pub(crate) kind: AppKind,
    pub(crate) seed: u64,
    /// When line 0 was written.
    pub(crate) origin_ms: u64,
    pub(crate) period_ms: u64,
}

impl LogSource {
    /// When line `k` is written.
    pub(crate) fn time_of(&self, k: u64) -> u64 {
        self.origin_ms + k * self.period_ms
    }

    /// The newest line written by `now`, if any.
    pub(crate) fn newest(&self, now: u64) -> Option<u64> {
        now.checked_sub(self.origin_ms).map(|d| d / self.period_ms)
    }
}

/// What `GET .../logs` asks for, validated.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogQuery {
    pub(crate) limit: usize,
    /// Only lines older than this one.
    pub(crate) before: Option<u64>,
    /// Case-insensitive substring.
    pub(crate) grep: Option<String>,
    /// Only lines at least this important (at most this number).
    pub(crate) priority: Option<u8>,
    /// Only lines written at or after this time (Unix ms).
    pub(crate) since_ms: Option<u64>,
    /// Only lines written before this time (Unix ms).
    pub(crate) until_ms: Option<u64>,
}

/// The cursor of line `k`: opaque to clients.
pub(crate) fn cursor(k: u64) -> String {
    format!("s{k}")
}

/// The line number in a cursor made by [`cursor`].
pub(crate) fn parse_cursor(cursor: &str) -> Option<u64> {
    cursor.strip_prefix('s')?.parse().ok()
}

/// A priority as the agent takes it: 0–7 or a syslog name.
pub(crate) fn parse_priority(p: &str) -> Result<u8, String> {
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

/// Line `k` of the app, written while it was in `state`; `None` when a stopped app wrote nothing.
pub(crate) fn line(src: &LogSource, k: u64, state: AppState) -> Option<LogEntry> {
    let h = hash(src.seed, k);
    let (priority, message) = match state {
        AppState::Stopped | AppState::NotFound | AppState::Unknown => return None,
        AppState::Failed => failed_line(src, h),
        AppState::CrashLooping => crash_line(src, h),
        AppState::Running | AppState::Starting | AppState::Stopping => running_line(src, h),
    };
    Some(LogEntry {
        cursor: cursor(k),
        unix_us: src.time_of(k) * 1_000 + h % 1_000,
        priority: Some(priority),
        stream: (src.kind == AppKind::Docker).then_some(if priority <= 4 {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        }),
        message,
        truncated: false,
    })
}

fn pick<'a>(h: u64, items: &[&'a str]) -> &'a str {
    items[((h >> 8) % items.len() as u64) as usize]
}

fn running_line(src: &LogSource, h: u64) -> (u8, String) {
    let n = (h >> 20) % 10_000;
    let ms = 2 + (h >> 34) % 400;
    match h % 100 {
        0 => (
            3,
            pick(
                h,
                &[
                    "upstream timed out (110: Connection timed out) while reading response header",
                    "payment provider returned 502 Bad Gateway",
                    "failed to send mail: 421 service not available",
                ],
            )
            .to_owned(),
        ),
        1..=7 => (
            4,
            match (h >> 8) % 4 {
                0 => format!("slow request: GET /api/orders took {}ms", 900 + ms * 5),
                1 => format!(
                    "retrying connection to db.internal:5432 (attempt {})",
                    2 + n % 3
                ),
                2 => "connection pool exhausted, waiting for a free connection".to_owned(),
                _ => format!("cache miss rate high: {}%", 30 + n % 40),
            },
        ),
        8..=12 => (7, format!("cache hit ratio 0.{:02}", n % 100)),
        _ => (6, info_line(src.name, h, n, ms)),
    }
}

fn info_line(name: &str, h: u64, n: u64, ms: u64) -> String {
    match name {
        "worker" | "scheduler" | "mailer" | "billing" => match (h >> 8) % 3 {
            0 => format!("{name}: job {n} done in {ms}ms"),
            1 => format!("{name}: picked up job {n} from queue default"),
            _ => format!("{name}: {} jobs waiting", n % 40),
        },
        "postgres" => match (h >> 8) % 3 {
            0 => format!(
                "checkpoint complete: wrote {} buffers ({}.{}%)",
                n % 900,
                n % 9,
                n % 10
            ),
            1 => "connection authorized: user=app database=app".to_owned(),
            _ => "automatic vacuum of table \"app.public.orders\": index scans: 1".to_owned(),
        },
        "redis" => match (h >> 8) % 3 {
            0 => format!("{} changes in 60 seconds. Saving...", 10 + n % 1_000),
            1 => "Background saving terminated with success".to_owned(),
            _ => "DB saved on disk".to_owned(),
        },
        "metrics" => format!("scrape of {} targets took {ms}ms", 10 + n % 90),
        _ => {
            let method = pick(h >> 4, &["GET", "GET", "GET", "POST", "PUT", "DELETE"]);
            let path = pick(
                h >> 12,
                &[
                    "/api/orders",
                    "/api/orders/4411",
                    "/api/users/me",
                    "/api/cart",
                    "/healthz",
                    "/login",
                    "/static/app.js",
                    "/api/search?q=lamp",
                ],
            );
            let status = pick(
                h >> 16,
                &["200", "200", "200", "200", "201", "204", "304", "404"],
            );
            format!("{method} {path} {status} {ms}ms")
        }
    }
}

fn failed_line(src: &LogSource, h: u64) -> (u8, String) {
    let text = match (h >> 8) % 3 {
        0 => "fatal: could not connect to postgres at db.internal:5432: connection refused"
            .to_owned(),
        1 => format!("{}: error: exiting with status 1", src.name),
        _ => {
            "health check failed: GET http://127.0.0.1:8080/healthz: connection refused".to_owned()
        }
    };
    (3, text)
}

fn crash_line(src: &LogSource, h: u64) -> (u8, String) {
    let target = match src.kind {
        AppKind::Systemd => format!("{}.service", src.name),
        AppKind::Docker => src.name.to_owned(),
    };
    match (h >> 8) % 4 {
        0 => (
            3,
            format!("{target}: Main process exited, code=exited, status=1/FAILURE"),
        ),
        1 => (
            5,
            format!(
                "{target}: Scheduled restart job, restart counter is at {}.",
                1 + (h >> 20) % 50
            ),
        ),
        2 => (
            2,
            "panic: runtime error: invalid memory address or nil pointer dereference".to_owned(),
        ),
        _ => (6, format!("Started {target}.")),
    }
}

/// A page of lines, newest first, filtered by `query`.
pub(crate) fn page(
    src: &LogSource,
    history: &[(u64, AppState)],
    now: u64,
    query: &LogQuery,
) -> LogPage {
    let mut entries = Vec::new();
    // Lines before `until` are those written by `until - 1`.
    let end = query.until_ms.map_or(now, |u| u.saturating_sub(1).min(now));
    let Some(newest) = src.newest(end) else {
        return LogPage { entries };
    };
    let start = match query.before {
        None => newest,
        Some(before) => match before.checked_sub(1) {
            Some(k) => k.min(newest),
            None => return LogPage { entries },
        },
    };
    let grep = query.grep.as_deref().map(str::to_lowercase);
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let mut k = start;
    for _ in 0..SCAN_LIMIT {
        if query.since_ms.is_some_and(|since| src.time_of(k) < since) {
            break;
        }
        let entry = line(src, k, state_in(history, src.time_of(k)));
        if let Some(e) = entry {
            let important = query
                .priority
                .is_none_or(|max| e.priority.is_some_and(|p| p <= max));
            let matches = grep
                .as_deref()
                .is_none_or(|g| e.message.to_lowercase().contains(g));
            if important && matches {
                entries.push(e);
                if entries.len() == limit {
                    break;
                }
            }
        }
        match k.checked_sub(1) {
            Some(prev) => k = prev,
            None => break,
        }
    }
    LogPage { entries }
}

/// The app's lines after line `after` (after the newest one when `None`), each as its time comes;
/// ends when the host becomes unreachable.
pub(crate) fn follow(
    host: Arc<Host>,
    app: usize,
    src: LogSource,
    after: Option<u64>,
) -> impl Stream<Item = LogEntry> + Send + 'static {
    let next = match after {
        Some(k) => k.saturating_add(1),
        None => src.newest(now_ms()).map_or(0, |k| k + 1),
    };
    let reachable = host.watch_reachable();
    stream::unfold(
        (host, reachable, next),
        move |(host, mut reachable, mut k)| async move {
            loop {
                if !*reachable.borrow() {
                    return None;
                }
                let t = src.time_of(k);
                let now = now_ms();
                if t > now {
                    let wake = tokio::time::Instant::now() + Duration::from_millis(t - now);
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        () = until_unreachable(&mut reachable) => return None,
                    }
                    continue;
                }
                let entry = line(&src, k, host.state_at(app, t));
                k += 1;
                if let Some(entry) = entry {
                    return Some((entry, (host, reachable, k)));
                }
            }
        },
    )
}

/// Resolves when the host becomes unreachable (or the simulator is gone).
pub(crate) async fn until_unreachable(reachable: &mut watch::Receiver<bool>) {
    let _ = reachable.wait_for(|r| !*r).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> LogSource {
        LogSource {
            name: "web",
            kind: AppKind::Docker,
            seed: 5,
            origin_ms: 1_000_000,
            period_ms: 1_500,
        }
    }

    fn query(limit: usize, before: Option<u64>) -> LogQuery {
        LogQuery {
            limit,
            before,
            ..LogQuery::default()
        }
    }

    fn ks(page: &LogPage) -> Vec<u64> {
        page.entries
            .iter()
            .filter_map(|e| parse_cursor(&e.cursor))
            .collect()
    }

    #[test]
    fn priorities() {
        for (p, want) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("err", Some(3)),
            ("WARNING", Some(4)),
        ] {
            assert_eq!(parse_priority(p).ok(), want, "{p}");
        }
        for bad in ["8", "-1", "loud", ""] {
            assert!(parse_priority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor(&cursor(0)), Some(0));
        assert_eq!(parse_cursor(&cursor(123_456)), Some(123_456));
        assert_eq!(parse_cursor("123"), None);
        assert_eq!(parse_cursor("sx"), None);
    }

    #[test]
    fn pages_go_back_without_overlap() {
        let s = src();
        let now = s.time_of(1_000) + 10;
        let hist = [(0, AppState::Running)];
        let first = page(&s, &hist, now, &query(300, None));
        assert_eq!(ks(&first), (701..=1_000).rev().collect::<Vec<_>>());
        let second = page(&s, &hist, now, &query(300, Some(701)));
        assert_eq!(ks(&second), (401..=700).rev().collect::<Vec<_>>());
        let last = page(&s, &hist, now, &query(1_000, Some(3)));
        assert_eq!(ks(&last), [2, 1, 0]);
        assert!(page(&s, &hist, now, &query(10, Some(0))).entries.is_empty());
        // The same line reads the same each time.
        assert_eq!(
            first.entries[5],
            page(&s, &hist, now, &query(300, None)).entries[5]
        );
    }

    #[test]
    fn a_time_range_keeps_the_lines_written_inside_it() {
        let s = src();
        let now = s.time_of(1_000) + 10;
        let hist = [(0, AppState::Running)];
        let range = LogQuery {
            limit: 1_000,
            since_ms: Some(s.time_of(100)),
            until_ms: Some(s.time_of(110)),
            ..LogQuery::default()
        };
        // [since, until): line 100 is in, line 110 is not.
        assert_eq!(
            ks(&page(&s, &hist, now, &range)),
            (100..110).rev().collect::<Vec<_>>()
        );
        let future = LogQuery {
            limit: 5,
            until_ms: Some(now + 3_600_000),
            ..LogQuery::default()
        };
        assert_eq!(
            ks(&page(&s, &hist, now, &future)),
            [1_000, 999, 998, 997, 996]
        );
    }

    #[test]
    fn filters() {
        let s = src();
        let now = s.time_of(5_000);
        let hist = [(0, AppState::Running)];
        let warn = page(
            &s,
            &hist,
            now,
            &LogQuery {
                limit: 50,
                priority: Some(4),
                ..LogQuery::default()
            },
        );
        assert!(!warn.entries.is_empty());
        assert!(warn
            .entries
            .iter()
            .all(|e| e.priority.is_some_and(|p| p <= 4)));
        assert!(warn
            .entries
            .iter()
            .all(|e| e.stream == Some(LogStream::Stderr)));
        let grep = page(
            &s,
            &hist,
            now,
            &LogQuery {
                limit: 50,
                grep: Some("api/ORDERS".into()),
                ..LogQuery::default()
            },
        );
        assert!(!grep.entries.is_empty());
        assert!(grep
            .entries
            .iter()
            .all(|e| e.message.to_lowercase().contains("api/orders")));
    }

    #[test]
    fn states_shape_the_lines() {
        let s = src();
        let now = s.time_of(300);
        // Failed from line 100 to 199, stopped from 200 on.
        let hist = [
            (0, AppState::Running),
            (s.time_of(100), AppState::Failed),
            (s.time_of(200), AppState::Stopped),
        ];
        let p = page(&s, &hist, now, &query(150, None));
        let got = ks(&p);
        assert_eq!(got.first(), Some(&199), "a stopped app writes nothing");
        assert!(p.entries[..100].iter().all(|e| e.priority == Some(3)));
        assert_eq!(got.len(), 150);
    }
}

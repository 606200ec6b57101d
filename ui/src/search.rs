//! A log search's results as they arrive from many apps: merged newest first with host and app
//! on each line, each app's progress, paging back and following. Pure Rust, tested natively; the
//! view is `views::search`.

use std::collections::{BTreeMap, HashSet};

use fleetdeck_proto::{LogEntry, LogSearchEvent, LogTarget};

/// Lines held at most; past it the oldest go.
pub const SEARCH_CAP: usize = 5_000;

/// Where one app's search stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    Searching,
    /// Answered with this many lines; `more` when older ones may match.
    Done {
        lines: usize,
        more: bool,
    },
    Failed(String),
}

/// A matching line and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLine {
    pub host: String,
    pub app: String,
    pub entry: LogEntry,
}

/// The time range a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The last this many minutes.
    Last(u64),
    /// From, to (Unix ms).
    Between(u64, u64),
}

impl Range {
    pub const PRESETS: [(u64, &'static str); 6] = [
        (15, "Last 15 min"),
        (60, "Last hour"),
        (360, "Last 6 hours"),
        (1_440, "Last 24 hours"),
        (4_320, "Last 3 days"),
        (10_080, "Last 7 days"),
    ];

    /// `[since, until)` in Unix ms at `now_ms` (`until` is `None` for "up to now").
    pub fn bounds(self, now_ms: u64) -> (u64, Option<u64>) {
        match self {
            Self::Last(minutes) => (now_ms.saturating_sub(minutes * 60_000), None),
            Self::Between(from, to) => (from, Some(to)),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResults {
    pub targets: BTreeMap<(String, String), TargetState>,
    /// Lines found per app over every page and follow look of this search.
    found: BTreeMap<(String, String), usize>,
    /// Newest first.
    lines: Vec<FoundLine>,
    seen: HashSet<(String, String, String)>,
    /// The search (or its latest page) finished.
    pub done: bool,
    /// Lines dropped past [`SEARCH_CAP`] (the oldest).
    pub dropped: usize,
}

impl SearchResults {
    pub fn lines(&self) -> &[FoundLine] {
        &self.lines
    }

    /// Takes one event of a search: the first page, an older page or a follow's new lines alike
    /// (a line already held is not added twice).
    pub fn apply(&mut self, event: LogSearchEvent) {
        match event {
            LogSearchEvent::Started { targets } => {
                self.done = false;
                for LogTarget { host, app } in targets {
                    self.targets.insert((host, app), TargetState::Searching);
                }
            }
            LogSearchEvent::Result {
                host,
                app,
                entries,
                more,
                partial,
            } => {
                let mut added = 0;
                for entry in entries {
                    let key = (host.clone(), app.clone(), entry.cursor.clone());
                    if self.seen.insert(key) {
                        added += 1;
                        self.lines.push(FoundLine {
                            host: host.clone(),
                            app: app.clone(),
                            entry,
                        });
                    }
                }
                let found = self.found.entry((host.clone(), app.clone())).or_default();
                *found += added;
                let lines = *found;
                // A first, short page: the same app's older lines are still coming.
                let state = if partial {
                    TargetState::Searching
                } else {
                    TargetState::Done { lines, more }
                };
                self.targets.insert((host, app), state);
                self.sort_and_cap();
            }
            LogSearchEvent::Failed {
                host, app, message, ..
            } => {
                self.targets
                    .insert((host, app), TargetState::Failed(message));
            }
            LogSearchEvent::Done { .. } => self.done = true,
        }
    }

    fn sort_and_cap(&mut self) {
        self.lines.sort_by(|a, b| {
            b.entry
                .unix_us
                .cmp(&a.entry.unix_us)
                .then_with(|| (&a.host, &a.app).cmp(&(&b.host, &b.app)))
        });
        if self.lines.len() > SEARCH_CAP {
            let over = self.lines.len() - SEARCH_CAP;
            for gone in self.lines.drain(SEARCH_CAP..) {
                self.seen.remove(&(gone.host, gone.app, gone.entry.cursor));
            }
            self.dropped += over;
        }
    }

    /// Some app said older lines may match.
    pub fn more(&self) -> bool {
        self.targets
            .values()
            .any(|t| matches!(t, TargetState::Done { more: true, .. }))
    }

    /// The `until` of the next older page: just after the oldest line held (lines at its very
    /// millisecond are asked for again and not shown twice), so none is skipped.
    pub fn older_until_ms(&self) -> Option<u64> {
        self.lines.last().map(|l| l.entry.unix_us / 1_000 + 1)
    }

    /// The `since` of a follow's next look: the newest line's millisecond (its repeats are dropped).
    pub fn newer_since_ms(&self) -> Option<u64> {
        self.lines.first().map(|l| l.entry.unix_us / 1_000)
    }

    pub fn failed(&self) -> usize {
        self.targets
            .values()
            .filter(|t| matches!(t, TargetState::Failed(_)))
            .count()
    }

    pub fn searching(&self) -> usize {
        self.targets
            .values()
            .filter(|t| matches!(t, TargetState::Searching))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cursor: &str, ms: u64) -> LogEntry {
        LogEntry {
            cursor: cursor.into(),
            unix_us: ms * 1_000,
            priority: Some(6),
            stream: None,
            message: format!("line {cursor}"),
            truncated: false,
        }
    }

    fn result(host: &str, app: &str, entries: Vec<LogEntry>, more: bool) -> LogSearchEvent {
        LogSearchEvent::Result {
            host: host.into(),
            app: app.into(),
            entries,
            more,
            partial: false,
        }
    }

    fn started(targets: &[(&str, &str)]) -> LogSearchEvent {
        LogSearchEvent::Started {
            targets: targets
                .iter()
                .map(|(h, a)| LogTarget {
                    host: (*h).into(),
                    app: (*a).into(),
                })
                .collect(),
        }
    }

    fn order(r: &SearchResults) -> Vec<String> {
        r.lines()
            .iter()
            .map(|l| format!("{}/{}:{}", l.host, l.app, l.entry.cursor))
            .collect()
    }

    #[test]
    fn answers_merge_newest_first_whatever_order_they_come_in() {
        let mut r = SearchResults::default();
        r.apply(started(&[("web-1", "api"), ("web-2", "api"), ("db", "pg")]));
        assert_eq!(r.searching(), 3);
        r.apply(result(
            "web-2",
            "api",
            vec![entry("b3", 30), entry("b1", 10)],
            false,
        ));
        r.apply(result(
            "web-1",
            "api",
            vec![entry("a4", 40), entry("a2", 20)],
            true,
        ));
        r.apply(LogSearchEvent::Failed {
            host: "db".into(),
            app: "pg".into(),
            status: 502,
            message: "the agent is unreachable".into(),
        });
        assert_eq!(
            order(&r),
            [
                "web-1/api:a4",
                "web-2/api:b3",
                "web-1/api:a2",
                "web-2/api:b1"
            ]
        );
        assert_eq!((r.searching(), r.failed(), r.more()), (0, 1, true));
        assert!(!r.done);
        r.apply(LogSearchEvent::Done {
            searched: 2,
            failed: 1,
            took_ms: 9,
        });
        assert!(r.done);
        assert_eq!(r.older_until_ms(), Some(11));
        assert_eq!(r.newer_since_ms(), Some(40));
    }

    #[test]
    fn an_older_page_or_a_follow_adds_only_lines_not_held() {
        let mut r = SearchResults::default();
        r.apply(started(&[("h", "a")]));
        r.apply(result("h", "a", vec![entry("3", 30), entry("2", 20)], true));
        // The next older page repeats the line at the boundary millisecond.
        r.apply(started(&[("h", "a")]));
        r.apply(result(
            "h",
            "a",
            vec![entry("2", 20), entry("1", 10)],
            false,
        ));
        // A follow's look repeats the newest.
        r.apply(started(&[("h", "a")]));
        r.apply(result(
            "h",
            "a",
            vec![entry("4", 40), entry("3", 30)],
            false,
        ));
        assert_eq!(order(&r), ["h/a:4", "h/a:3", "h/a:2", "h/a:1"]);
        assert_eq!(
            r.targets[&("h".to_owned(), "a".to_owned())],
            TargetState::Done {
                lines: 4,
                more: false
            }
        );
    }

    #[test]
    fn an_apps_first_short_page_shows_at_once_and_it_stays_searching_until_the_rest() {
        let mut r = SearchResults::default();
        r.apply(started(&[("h", "a"), ("g", "b")]));
        r.apply(LogSearchEvent::Result {
            host: "h".into(),
            app: "a".into(),
            entries: vec![entry("9", 90), entry("8", 80)],
            more: true,
            partial: true,
        });
        assert_eq!(order(&r), ["h/a:9", "h/a:8"]);
        assert_eq!(r.searching(), 2, "the app's older lines are still coming");
        r.apply(result("g", "b", vec![entry("g5", 50)], false));
        r.apply(result(
            "h",
            "a",
            vec![entry("7", 70), entry("1", 10)],
            false,
        ));
        assert_eq!(order(&r), ["h/a:9", "h/a:8", "h/a:7", "g/b:g5", "h/a:1"]);
        assert_eq!(r.searching(), 0);
        assert_eq!(
            r.targets[&("h".to_owned(), "a".to_owned())],
            TargetState::Done {
                lines: 4,
                more: false
            }
        );
    }

    #[test]
    fn past_the_cap_the_oldest_lines_go() {
        let mut r = SearchResults::default();
        let many: Vec<LogEntry> = (0..SEARCH_CAP as u64 + 10)
            .map(|i| entry(&i.to_string(), i))
            .collect();
        r.apply(result("h", "a", many, false));
        assert_eq!(r.lines().len(), SEARCH_CAP);
        assert_eq!(r.dropped, 10);
        assert_eq!(
            r.lines().last().map(|l| l.entry.cursor.as_str()),
            Some("10")
        );
    }

    #[test]
    fn ranges() {
        let now = 10_000_000;
        assert_eq!(Range::Last(15).bounds(now), (now - 900_000, None));
        assert_eq!(Range::Between(5, 9).bounds(now), (5, Some(9)));
    }
}

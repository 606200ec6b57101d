//! The log view's buffer: bounded, followed or paused, filtered on the client. Pure Rust, so it
//! is tested natively.
//!
//! Policy (kept simple so the buffer is always one contiguous run of lines, never with a gap):
//! - At most [`LOG_CAP`] lines are held. Live lines are always appended and, over the cap, the
//!   oldest are dropped, whether following or paused.
//! - "Load older" pauses the follow (the operator is reading history) and prepends the page. Over
//!   the cap only the part of the page next to the current oldest line is kept, and the buffer is
//!   marked full: nothing newer is ever thrown away for history, so resuming never shows a gap.
//! - Paused: the view keeps ending at the line that was newest when the pause began; newer lines
//!   are kept and counted as "N new". Resuming jumps to the newest line.
//! - The view renders at most [`LOG_WINDOW`] matching lines (the newest ones up to the view's end)
//!   so the DOM stays small whatever the buffer holds.

use std::collections::VecDeque;
use std::rc::Rc;

use fleetdeck_proto::{LogEntry, LogStream};

/// Lines held per app view.
pub const LOG_CAP: usize = 10_000;
/// Matching lines rendered at most.
pub const LOG_WINDOW: usize = 300;
/// Lines asked for when the view opens and per "load older".
pub const LOG_PAGE: u32 = 200;
/// How far back a live line is looked for among the newest lines, to drop repeats.
const DEDUPE_WINDOW: usize = LOG_PAGE as usize + 56;

/// Which lines the level filter lets through, by syslog priority (0 emerg .. 7 debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LevelFilter {
    /// Every line.
    #[default]
    All,
    /// Priority 6 (info) or more urgent; lines without a priority are shown.
    Info,
    /// Priority 4 (warning) or more urgent; lines without a priority are shown.
    Warning,
    /// Priority 3 (err) or more urgent. Lines without a priority are shown only when they came on
    /// stderr, which is how containers report errors.
    Errors,
}

impl LevelFilter {
    pub const ALL: [Self; 4] = [Self::All, Self::Info, Self::Warning, Self::Errors];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Errors => "err",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::All => "All levels",
            Self::Info => "Info and above",
            Self::Warning => "Warnings and errors",
            Self::Errors => "Errors only",
        }
    }

    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .unwrap_or_default()
    }

    fn max_priority(self) -> Option<u8> {
        match self {
            Self::All => None,
            Self::Info => Some(6),
            Self::Warning => Some(4),
            Self::Errors => Some(3),
        }
    }

    pub fn admits(self, entry: &LogEntry) -> bool {
        let Some(max) = self.max_priority() else {
            return true;
        };
        match entry.priority {
            Some(p) => p <= max,
            None => self != Self::Errors || entry.stream == Some(LogStream::Stderr),
        }
    }
}

/// A line as held: the entry, its place in the buffer's history and its lowercased text for the
/// case-insensitive search (computed once, not per render).
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Increases by one per line appended; lines loaded as older get numbers below the oldest.
    pub seq: i64,
    pub entry: LogEntry,
    lower: String,
}

impl LogLine {
    fn new(seq: i64, entry: LogEntry) -> Self {
        let lower = entry.message.to_lowercase();
        Self { seq, entry, lower }
    }

    /// An error line: syslog err or worse, or container stderr.
    pub fn is_error(&self) -> bool {
        matches!(self.entry.priority, Some(p) if p <= 3)
            || self.entry.stream == Some(LogStream::Stderr)
    }

    pub fn is_warning(&self) -> bool {
        self.entry.priority == Some(4)
    }
}

/// Which app's log the buffer holds; lines for another key are stale and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub collector: String,
    pub host: String,
    pub app: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogBuffer {
    pub key: Option<LogKey>,
    /// Oldest first. `Rc` so cloning the state for a reducer step is cheap.
    lines: VecDeque<Rc<LogLine>>,
    cap: usize,
    next_seq: i64,
    /// `None` while following; else the first seq not shown (the view's end).
    paused_at: Option<i64>,
    pub search: String,
    search_lower: String,
    pub level: LevelFilter,
    /// The first page arrived (before it, the view says "Loading").
    pub loaded: bool,
    /// No older lines exist (a page came back shorter than asked).
    pub at_start: bool,
    /// Older lines were refused because the buffer is full.
    pub full: bool,
    /// A "load older" request is in flight.
    pub loading_older: bool,
    /// The follow is interrupted and being retried, with the reason.
    pub interrupted: Option<String>,
    /// The follow ended for good, with the reason.
    pub stopped: Option<String>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::with_cap(LOG_CAP)
    }
}

impl LogBuffer {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            key: None,
            lines: VecDeque::new(),
            cap: cap.max(1),
            next_seq: 0,
            paused_at: None,
            search: String::new(),
            search_lower: String::new(),
            level: LevelFilter::All,
            loaded: false,
            at_start: false,
            full: false,
            loading_older: false,
            interrupted: None,
            stopped: None,
        }
    }

    /// Empties the buffer for another app (filters are kept, follow resumes).
    pub fn reset(&mut self, key: LogKey) {
        let (search, level) = (std::mem::take(&mut self.search), self.level);
        *self = Self::with_cap(self.cap);
        self.key = Some(key);
        self.set_search(search);
        self.level = level;
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn following(&self) -> bool {
        self.paused_at.is_none()
    }

    /// The cursor of the oldest line held, for "load older".
    pub fn oldest_cursor(&self) -> Option<&str> {
        self.lines.front().map(|l| l.entry.cursor.as_str())
    }

    /// The first page (newest first, as `logs_page` answers): replaces what is held.
    pub fn load_initial(&mut self, newest_first: Vec<LogEntry>, asked: u32) {
        self.lines.clear();
        self.next_seq = 0;
        self.paused_at = None;
        self.full = false;
        self.at_start = newest_first.len() < asked as usize;
        self.loaded = true;
        self.append(newest_first.into_iter().rev().collect());
    }

    /// Live lines, oldest first; drops the oldest lines over the cap.
    pub fn append(&mut self, oldest_first: Vec<LogEntry>) {
        for entry in oldest_first {
            // The follow resumes after the page's newest cursor, but a line the view already has
            // (a source with coarse cursors, a resumed follow) is kept once all the same.
            if self
                .lines
                .iter()
                .rev()
                .take(DEDUPE_WINDOW)
                .any(|l| l.entry.cursor == entry.cursor)
            {
                continue;
            }
            self.lines
                .push_back(Rc::new(LogLine::new(self.next_seq, entry)));
            self.next_seq += 1;
        }
        let over = self.lines.len().saturating_sub(self.cap);
        if over > 0 {
            self.lines.drain(..over);
            self.at_start = false;
        }
    }

    /// An older page (newest first, as `logs_page` answers): pauses, and prepends what fits.
    pub fn prepend_older(&mut self, newest_first: Vec<LogEntry>, asked: u32) {
        self.loading_older = false;
        self.pause();
        if newest_first.len() < asked as usize {
            self.at_start = true;
        }
        let room = self.cap.saturating_sub(self.lines.len());
        if newest_first.len() > room {
            self.full = true;
            self.at_start = false;
        }
        let mut seq = self.lines.front().map_or(self.next_seq, |l| l.seq);
        for entry in newest_first.into_iter().take(room) {
            if self
                .lines
                .front()
                .is_some_and(|l| l.entry.cursor == entry.cursor)
            {
                continue;
            }
            seq -= 1;
            self.lines.push_front(Rc::new(LogLine::new(seq, entry)));
        }
    }

    pub fn pause(&mut self) {
        if self.paused_at.is_none() {
            self.paused_at = Some(self.next_seq);
        }
    }

    pub fn resume(&mut self) {
        self.paused_at = None;
    }

    pub fn toggle_follow(&mut self) {
        if self.following() {
            self.pause();
        } else {
            self.resume();
        }
    }

    /// Lines that arrived since the pause (0 while following).
    pub fn new_since_pause(&self) -> usize {
        match self.paused_at {
            None => 0,
            Some(at) => self.lines.iter().rev().take_while(|l| l.seq >= at).count(),
        }
    }

    pub fn set_search(&mut self, search: String) {
        self.search_lower = search.trim().to_lowercase();
        self.search = search;
    }

    pub fn set_level(&mut self, level: LevelFilter) {
        self.level = level;
    }

    pub fn matches(&self, line: &LogLine) -> bool {
        self.level.admits(&line.entry)
            && (self.search_lower.is_empty() || line.lower.contains(&self.search_lower))
    }

    /// How many held lines match the filters and are within the view's end.
    pub fn matching_count(&self) -> usize {
        self.in_view().filter(|l| self.matches(l)).count()
    }

    fn in_view(&self) -> impl DoubleEndedIterator<Item = &Rc<LogLine>> {
        let end = self.paused_at;
        self.lines
            .iter()
            .filter(move |l| end.is_none_or(|end| l.seq < end))
    }

    /// The lines to render, oldest first: the newest `window` matching lines up to the view's end.
    pub fn window(&self, window: usize) -> Vec<Rc<LogLine>> {
        let mut out: Vec<Rc<LogLine>> = self
            .in_view()
            .rev()
            .filter(|l| self.matches(l))
            .take(window)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> LogEntry {
        LogEntry {
            cursor: format!("c{n}"),
            unix_us: u64::from(n) * 1_000_000,
            priority: Some(6),
            stream: None,
            message: format!("line {n}"),
            truncated: false,
        }
    }

    fn with(n: u32, priority: Option<u8>, stream: Option<LogStream>, msg: &str) -> LogEntry {
        LogEntry {
            priority,
            stream,
            message: msg.to_owned(),
            ..entry(n)
        }
    }

    fn messages(buf: &LogBuffer, window: usize) -> Vec<String> {
        buf.window(window)
            .iter()
            .map(|l| l.entry.message.clone())
            .collect()
    }

    fn range(from: u32, to: u32) -> Vec<LogEntry> {
        (from..to).map(entry).collect()
    }

    #[test]
    fn initial_page_is_reversed_to_oldest_first() {
        let mut buf = LogBuffer::default();
        buf.load_initial(vec![entry(3), entry(2), entry(1)], 200);
        assert_eq!(messages(&buf, 10), ["line 1", "line 2", "line 3"]);
        assert!(buf.at_start, "a short page means nothing older exists");
        assert_eq!(buf.oldest_cursor(), Some("c1"));
    }

    #[test]
    fn following_drops_oldest_over_the_cap() {
        let mut buf = LogBuffer::with_cap(5);
        buf.append(range(0, 4));
        buf.append(range(4, 8));
        assert_eq!(buf.len(), 5);
        assert_eq!(buf.oldest_cursor(), Some("c3"));
        assert_eq!(
            messages(&buf, 10).last().map(String::as_str),
            Some("line 7")
        );
    }

    #[test]
    fn real_cap_is_ten_thousand() {
        let mut buf = LogBuffer::default();
        buf.append(range(0, 10_050));
        assert_eq!(buf.len(), LOG_CAP);
        assert_eq!(buf.oldest_cursor(), Some("c50"));
        assert_eq!(buf.window(LOG_WINDOW).len(), LOG_WINDOW);
    }

    #[test]
    fn window_is_the_newest_matching_lines() {
        let mut buf = LogBuffer::default();
        buf.append(range(0, 1000));
        let w = buf.window(LOG_WINDOW);
        assert_eq!(w.len(), LOG_WINDOW);
        assert_eq!(w[0].entry.message, format!("line {}", 1000 - LOG_WINDOW));
        assert_eq!(w[LOG_WINDOW - 1].entry.message, "line 999");
    }

    #[test]
    fn lines_repeated_at_the_seam_are_skipped() {
        let mut buf = LogBuffer::default();
        buf.load_initial(vec![entry(3), entry(2), entry(1)], 3);
        buf.append(vec![entry(2), entry(3), entry(4)]);
        assert_eq!(messages(&buf, 10), ["line 1", "line 2", "line 3", "line 4"]);
    }

    #[test]
    fn paused_view_stays_and_counts_new_lines() {
        let mut buf = LogBuffer::default();
        buf.append(range(0, 3));
        buf.pause();
        buf.append(range(3, 7));
        assert!(!buf.following());
        assert_eq!(buf.new_since_pause(), 4);
        assert_eq!(messages(&buf, 10), ["line 0", "line 1", "line 2"]);
        assert_eq!(buf.len(), 7, "lines are kept while paused");
        buf.toggle_follow();
        assert!(buf.following());
        assert_eq!(buf.new_since_pause(), 0);
        assert_eq!(messages(&buf, 10).len(), 7);
    }

    #[test]
    fn paused_view_survives_drops_of_oldest() {
        let mut buf = LogBuffer::with_cap(4);
        buf.append(range(0, 4));
        buf.pause();
        buf.append(range(4, 6));
        assert_eq!(messages(&buf, 10), ["line 2", "line 3"]);
        assert_eq!(buf.new_since_pause(), 2);
    }

    #[test]
    fn load_older_prepends_and_pauses() {
        let mut buf = LogBuffer::default();
        buf.load_initial(vec![entry(12), entry(11), entry(10)], 3);
        assert!(!buf.at_start);
        buf.prepend_older(vec![entry(9), entry(8)], 3);
        assert!(!buf.following());
        assert!(buf.at_start);
        assert_eq!(buf.oldest_cursor(), Some("c8"));
        assert_eq!(
            messages(&buf, 10),
            ["line 8", "line 9", "line 10", "line 11", "line 12"]
        );
        buf.append(vec![entry(13)]);
        assert_eq!(
            messages(&buf, 10).len(),
            5,
            "paused: the new line is not shown"
        );
        assert_eq!(buf.new_since_pause(), 1);
    }

    #[test]
    fn load_older_over_the_cap_keeps_the_newest_and_marks_full() {
        let mut buf = LogBuffer::with_cap(5);
        buf.append(range(10, 13));
        buf.prepend_older(vec![entry(9), entry(8), entry(7), entry(6)], 4);
        assert_eq!(buf.len(), 5);
        assert!(buf.full);
        assert_eq!(buf.oldest_cursor(), Some("c8"));
        assert_eq!(
            messages(&buf, 10),
            ["line 8", "line 9", "line 10", "line 11", "line 12"]
        );
    }

    #[test]
    fn search_is_case_insensitive_substring() {
        let mut buf = LogBuffer::default();
        buf.append(vec![
            with(1, Some(6), None, "GET /health 200"),
            with(2, Some(3), None, "Database Timeout"),
            with(3, Some(6), None, "timeout=30s configured"),
        ]);
        buf.set_search("TIMEOUT".into());
        assert_eq!(
            messages(&buf, 10),
            ["Database Timeout", "timeout=30s configured"]
        );
        assert_eq!(buf.matching_count(), 2);
        buf.set_search("  ".into());
        assert_eq!(buf.matching_count(), 3);
    }

    #[test]
    fn level_filter_by_priority_and_stream() {
        let mut buf = LogBuffer::default();
        buf.append(vec![
            with(1, Some(7), None, "debug"),
            with(2, Some(6), None, "info"),
            with(3, Some(4), None, "warning"),
            with(4, Some(3), None, "err"),
            with(5, None, Some(LogStream::Stdout), "plain stdout"),
            with(6, None, Some(LogStream::Stderr), "plain stderr"),
        ]);
        buf.set_level(LevelFilter::Info);
        assert_eq!(
            messages(&buf, 10),
            ["info", "warning", "err", "plain stdout", "plain stderr"]
        );
        buf.set_level(LevelFilter::Warning);
        assert_eq!(
            messages(&buf, 10),
            ["warning", "err", "plain stdout", "plain stderr"]
        );
        buf.set_level(LevelFilter::Errors);
        assert_eq!(messages(&buf, 10), ["err", "plain stderr"]);
        buf.set_level(LevelFilter::All);
        assert_eq!(messages(&buf, 10).len(), 6);
    }

    #[test]
    fn filters_combine_and_window_counts_only_matches() {
        let mut buf = LogBuffer::default();
        buf.append(
            (0..2000)
                .map(|n| with(n, Some(if n % 2 == 0 { 3 } else { 6 }), None, "x"))
                .collect(),
        );
        buf.set_level(LevelFilter::Errors);
        let w = buf.window(LOG_WINDOW);
        assert_eq!(w.len(), LOG_WINDOW);
        assert!(w.iter().all(|l| l.is_error()));
        assert_eq!(w[LOG_WINDOW - 1].entry.cursor, "c1998");
    }

    #[test]
    fn reset_keeps_filters_and_clears_lines() {
        let mut buf = LogBuffer::default();
        buf.append(range(0, 3));
        buf.pause();
        buf.set_search("x".into());
        buf.set_level(LevelFilter::Warning);
        let key = LogKey {
            collector: "c".into(),
            host: "h".into(),
            app: "a".into(),
        };
        buf.reset(key.clone());
        assert!(buf.is_empty());
        assert!(buf.following());
        assert_eq!(buf.search, "x");
        assert_eq!(buf.level, LevelFilter::Warning);
        assert_eq!(buf.key, Some(key));
    }

    #[test]
    fn level_filter_round_trips_through_its_select_value() {
        for l in LevelFilter::ALL {
            assert_eq!(LevelFilter::parse(l.as_str()), l);
        }
        assert_eq!(LevelFilter::parse("nonsense"), LevelFilter::All);
    }
}

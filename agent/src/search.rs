//! Log searches a client asks for (`grep`): a pattern is bounded before anything runs (length,
//! compiled size, nesting), the agent's own matching runs on a blocking thread against a
//! deadline, and only [`MAX_SEARCHES`] searches run at once (journalctl's `--grep` included), so
//! no search can hold up the agent's single async thread: health, snapshots, events, sampling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 512;
/// The largest compiled program a pattern may have (the regex crate's `size_limit`). Short
/// patterns with a huge automaton (`\w{1000}{1000}`, wide Unicode classes repeated) stop here.
const MAX_PROGRAM_BYTES: usize = 1024 * 1024;
/// The lazy DFA's cache; past it the regex crate falls back to slower engines, never to more
/// memory.
const MAX_DFA_BYTES: usize = 1024 * 1024;
/// Deepest nesting of groups and repetitions.
const MAX_NEST: u32 = 32;
/// How many searches (pages with `grep`) run at once on one agent.
pub const MAX_SEARCHES: usize = 2;
/// How long one search may match lines, in the agent or in journalctl.
pub const SEARCH_DEADLINE: Duration = Duration::from_secs(5);

/// Why a search was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("grep is {0} bytes long; at most {MAX_PATTERN_BYTES} are accepted: search for a shorter pattern")]
    TooLong(usize),
    #[error("grep is too costly to run: its automaton is over the agent's limit of {} KiB (large repetition counts and repeated Unicode classes such as \\w{{100}} grow it; [A-Za-z0-9_] is far smaller than \\w); use a simpler pattern", MAX_PROGRAM_BYTES / 1024)]
    TooComplex,
    #[error("grep {pattern:?} is not a regular expression the agent accepts: {reason}")]
    Invalid { pattern: String, reason: String },
    #[error(
        "{MAX_SEARCHES} log searches are already running on this agent; retry in a few seconds"
    )]
    Busy,
    #[error("the search was stopped after its limit of {} s; use a more specific pattern", SEARCH_DEADLINE.as_secs())]
    Deadline,
    #[error("the client read the matches too slowly: the search was stopped after {} s with lines not sent; search again", SEARCH_DEADLINE.as_secs())]
    SlowReader,
}

/// A bounded, compiled `grep`: case-insensitive unless it has capitals (as journalctl does).
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    regex: regex::Regex,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Self, SearchError> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(SearchError::TooLong(pattern.len()));
        }
        let regex = regex::RegexBuilder::new(pattern)
            .case_insensitive(!pattern.chars().any(char::is_uppercase))
            .size_limit(MAX_PROGRAM_BYTES)
            .dfa_size_limit(MAX_DFA_BYTES)
            .nest_limit(MAX_NEST)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => SearchError::TooComplex,
                e => SearchError::Invalid {
                    pattern: pattern.to_owned(),
                    // The syntax error's own text spans lines (it draws the pattern); one line.
                    reason: e.to_string().lines().last().unwrap_or("").trim().to_owned(),
                },
            })?;
        Ok(Self {
            text: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as the client wrote it (for journalctl's `--grep`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// Filters `items` on a blocking thread, in order, keeping those `keep` accepts; stops with
/// [`SearchError::Deadline`] once `deadline` passes. The caller's async thread only waits.
pub async fn filter_blocking<T, F>(
    items: Vec<T>,
    deadline: Instant,
    keep: F,
) -> Result<Vec<T>, SearchError>
where
    T: Send + 'static,
    F: Fn(&T) -> bool + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut kept = Vec::new();
        for item in items {
            if Instant::now() >= deadline {
                return Err(SearchError::Deadline);
            }
            if keep(&item) {
                kept.push(item);
            }
        }
        Ok(kept)
    })
    .await
    .unwrap_or(Err(SearchError::Deadline))
}

/// The agent's search slots.
#[derive(Debug, Clone)]
pub struct Searches {
    slots: Arc<Semaphore>,
}

impl Default for Searches {
    fn default() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(MAX_SEARCHES)),
        }
    }
}

impl Searches {
    /// A slot for one search, held until the permit is dropped; [`SearchError::Busy`] when all
    /// are taken (the client is told to retry rather than queued behind a costly search).
    pub fn begin(&self) -> Result<OwnedSemaphorePermit, SearchError> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| SearchError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costly_or_long_patterns_are_refused_before_they_run() {
        assert!(matches!(
            Pattern::new(&"a".repeat(MAX_PATTERN_BYTES + 1)),
            Err(SearchError::TooLong(_))
        ));
        for costly in [r"\w{1000}{1000}", r"(\w{200}){50}", r"[\p{L}\p{N}]{5000}"] {
            assert!(
                matches!(Pattern::new(costly), Err(SearchError::TooComplex)),
                "{costly}"
            );
        }
        let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(matches!(
            Pattern::new(&nested),
            Err(SearchError::Invalid { .. })
        ));
        let Err(SearchError::Invalid { reason, .. }) = Pattern::new("(unclosed") else {
            panic!("an unclosed group is invalid");
        };
        assert!(!reason.contains('\n') && !reason.is_empty(), "{reason}");
    }

    #[test]
    fn case_follows_journalctl() {
        let lower = Pattern::new("error").expect("valid");
        assert!(lower.is_match("An ERROR here"));
        let upper = Pattern::new("Error").expect("valid");
        assert!(!upper.is_match("an error here"));
        assert!(upper.is_match("an Error here"));
        assert_eq!(upper.as_str(), "Error");
    }

    #[tokio::test]
    async fn filtering_stops_at_its_deadline() {
        let past = Instant::now() - Duration::from_millis(1);
        let err = filter_blocking(vec![1, 2, 3], past, |_| true).await;
        assert!(matches!(err, Err(SearchError::Deadline)));
        let later = Instant::now() + Duration::from_secs(60);
        let kept = filter_blocking(vec![1, 2, 3, 4], later, |n| n % 2 == 0).await;
        assert_eq!(kept.expect("within the deadline"), [2, 4]);
    }

    #[test]
    fn slots_are_bounded_and_freed() {
        let s = Searches::default();
        let held: Vec<_> = (0..MAX_SEARCHES)
            .map(|_| s.begin().expect("a free slot"))
            .collect();
        assert!(matches!(s.begin(), Err(SearchError::Busy)));
        drop(held);
        assert!(s.begin().is_ok());
    }
}

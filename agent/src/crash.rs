//! Crash context: the last log lines of a dead process, read on a task of their own within a
//! deadline, with a bound on how many reads run (and wait) at once, so a crash storm cannot start
//! hundreds of journalctl children or hold events back.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Lines kept per crash, and bytes per line (cut at a character boundary).
pub const MAX_LINES: usize = 20;
pub const MAX_LINE_BYTES: usize = 500;
/// How long an event may wait for its lines.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// Reads running at once, and reads running or waiting before further crashes go without lines.
const CONCURRENT: usize = 4;
const MAX_QUEUED: usize = 16;

#[derive(Debug)]
pub struct CrashLines {
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
}

impl Default for CrashLines {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(CONCURRENT)),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Counts one read as queued until it ends, however it ends.
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CrashLines {
    /// Runs `read` on a task of its own and returns its lines (the last [`MAX_LINES`], oldest
    /// first, each cut to [`MAX_LINE_BYTES`]), or why there are none, within [`DEADLINE`].
    pub async fn read<F>(&self, read: F) -> (Vec<String>, Option<String>)
    where
        F: Future<Output = Result<Vec<String>, String>> + Send + 'static,
    {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return (Vec::new(), Some("too many crashes at once".to_owned()));
        }
        let queued = Queued(self.queued.clone());
        let permits = self.permits.clone();
        let task = tokio::spawn(async move {
            let _queued = queued;
            let _permit = permits.acquire_owned().await;
            read.await
        });
        let abort = task.abort_handle();
        match tokio::time::timeout(DEADLINE, task).await {
            Ok(Ok(Ok(lines))) => (tidy(lines), None),
            Ok(Ok(Err(e))) => (Vec::new(), Some(e)),
            Ok(Err(e)) => (Vec::new(), Some(format!("reading the log failed: {e}"))),
            Err(_) => {
                // The read's child process dies with it (kill_on_drop).
                abort.abort();
                (
                    Vec::new(),
                    Some(format!("the log did not answer within {DEADLINE:?}")),
                )
            }
        }
    }
}

/// The last [`MAX_LINES`] lines, each cut to [`MAX_LINE_BYTES`] at a character boundary.
pub fn tidy(mut lines: Vec<String>) -> Vec<String> {
    let skip = lines.len().saturating_sub(MAX_LINES);
    lines.drain(..skip);
    for line in &mut lines {
        if line.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cut_at_characters() {
        let mut lines: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
        lines.push("é".repeat(300));
        let t = tidy(lines);
        assert_eq!(t.len(), MAX_LINES);
        assert_eq!(t[0], "line 11");
        assert_eq!(t[19].len(), 500);
        assert!(t[19].chars().all(|c| c == 'é'));
    }

    #[tokio::test]
    async fn a_storm_is_bounded_and_a_slow_read_times_out() {
        let lines = Arc::new(CrashLines::default());
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut reads = Vec::new();
        for _ in 0..(MAX_QUEUED + 3) {
            let (lines, gate) = (lines.clone(), gate.clone());
            reads.push(tokio::spawn(async move {
                lines
                    .read(async move {
                        gate.notified().await;
                        Ok(vec!["x".to_owned()])
                    })
                    .await
            }));
        }
        let mut too_many = 0;
        let mut timed_out = 0;
        for r in reads {
            let (l, e) = r.await.expect("the read task ends");
            assert!(l.is_empty());
            match e.as_deref() {
                Some("too many crashes at once") => too_many += 1,
                Some(e) if e.contains("did not answer") => timed_out += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((too_many, timed_out), (3, MAX_QUEUED));
        // The aborted reads have left the queue: a new one goes through.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lines.queued.load(Ordering::SeqCst) > 0 {
            assert!(std::time::Instant::now() < deadline, "queue not emptied");
            tokio::task::yield_now().await;
        }
        let (l, e) = lines.read(async { Ok(vec!["ok".to_owned()]) }).await;
        assert_eq!((l, e), (vec!["ok".to_owned()], None));
    }
}

//! Native notifications (freedesktop, through notify-rust). The core crate decides which events
//! deserve one; this shows it and opens the app when it is clicked.
//!
//! Two rules keep what a collector or an agent says from hurting the desktop:
//! - The body is markup to daemons that announce `body-markup` (dunst renders `<b>` as bold and
//!   decodes `&amp;`), and it carries host and app names: it is escaped ([`escape_markup`]). The
//!   summary is plain text by the specification and dunst shows it as sent (escaping it would
//!   show `&lt;b&gt;` to the operator): it goes as it is.
//! - Showing one blocks on D-Bus and waiting for its click holds a thread until it closes (a
//!   crash's stays until dismissed): a fixed [`Pool`] does both, one thread showing from a
//!   bounded queue and [`WAITERS`] threads waiting for clicks, however many are raised.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};

use fleetdeck_desktop_core::notice::{missed_notice, Notice};
use notify_rust::{Notification, NotificationHandle, Timeout, Urgency};
use tauri::{AppHandle, Manager};

use crate::window;

/// How many notifications at most wait for a click at once. Past that, a notification is still
/// shown but clicking it does nothing (the window and the tray show the same); a waiter is freed
/// when the notification it waits on is clicked, dismissed or expires (a crash's stays until
/// dismissed, others expire after 10 s), and then takes the next one shown.
pub const WAITERS: usize = 4;

/// How many notices at most wait to be shown. Showing takes a D-Bus round trip (about a
/// millisecond with dunst), so a burst (200 crashes at once) waits here; past this many, notices
/// are counted instead, and one notice saying how many were not shown follows once the queue has
/// drained ([`missed_notice`]).
pub const QUEUE: usize = 256;

/// Escapes the five characters that are markup in a notification body: `&`, `<`, `>` and both
/// quotes, so that the daemon shows the text as it was written.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// What a [`Pool`] has done, for logs and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Shown, with a waiter for its click.
    pub waited: AtomicU64,
    /// Shown, but every waiter was busy.
    pub unwaited: AtomicU64,
    /// Could not be shown (the daemon refused or was absent).
    pub failed: AtomicU64,
    /// Dropped because the queue was full (in all).
    pub dropped: AtomicU64,
    /// Dropped and not yet told about in an overflow notice.
    missed: AtomicU64,
    /// Shown and waited on now (at most [`WAITERS`]).
    pub waiting: AtomicUsize,
}

/// A fixed set of threads that show notices and wait for clicks: one shows them in order from a
/// queue of at most [`QUEUE`], and [`WAITERS`] wait for clicks. It is generic over what it shows so
/// that it is tested without a notification daemon.
pub struct Pool<N> {
    queue: SyncSender<N>,
    stats: Arc<PoolStats>,
}

impl<N: Send + 'static> Pool<N> {
    /// Starts the pool's threads (named `{name}-show` and `{name}-wait{i}`). `show` shows one
    /// notice and returns what to wait on (or `None` when it could not be shown); `wait` blocks
    /// until that notification is clicked or closed; `overflow` makes the notice that stands for
    /// that many dropped ones.
    pub fn start<W, S, F, O>(name: &str, show: S, wait: F, overflow: O) -> std::io::Result<Self>
    where
        W: Send + 'static,
        S: FnMut(N) -> Option<W> + Send + 'static,
        F: Fn(W) + Send + Sync + 'static,
        O: Fn(u64) -> N + Send + 'static,
    {
        let stats = Arc::new(PoolStats::default());
        // At most WAITERS shown notifications are handed over at once (`stats.waiting` counts
        // them), so this send never blocks and each one handed over has a thread to wait on it.
        let (handoff, shown) = mpsc::sync_channel::<W>(WAITERS);
        let shown = Arc::new(Mutex::new(shown));
        let wait = Arc::new(wait);
        for i in 0..WAITERS {
            let shown = Arc::clone(&shown);
            let wait = Arc::clone(&wait);
            let stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name(format!("{name}-wait{i}"))
                .spawn(move || waiter(&shown, &*wait, &stats))?;
        }
        let (queue, notices) = mpsc::sync_channel::<N>(QUEUE);
        let shower_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name(format!("{name}-show"))
            .spawn(move || shower(&notices, show, overflow, &handoff, &shower_stats))?;
        Ok(Self { queue, stats })
    }

    /// Queues `notice` to be shown; never blocks. A full queue drops it (and says so).
    pub fn submit(&self, notice: N) {
        match self.queue.try_send(notice) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                // Once per burst: the notice that follows it gives the count.
                if self.stats.missed.fetch_add(1, Ordering::AcqRel) == 0 {
                    tracing::warn!(
                        queued = QUEUE,
                        "the notification daemon is not keeping up: further notifications are \
                         counted and summed up in one when it catches up"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("the notification thread has stopped: a notification was dropped");
            }
        }
    }

    #[cfg(test)]
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }
}

fn shower<N, W>(
    notices: &Receiver<N>,
    mut show: impl FnMut(N) -> Option<W>,
    overflow: impl Fn(u64) -> N,
    handoff: &SyncSender<W>,
    stats: &PoolStats,
) {
    loop {
        let notice = match notices.try_recv() {
            Ok(notice) => notice,
            Err(TryRecvError::Disconnected) => return, // the pool is gone
            Err(TryRecvError::Empty) => match stats.missed.swap(0, Ordering::AcqRel) {
                // The queue has drained: say how many did not fit in it.
                0 => match notices.recv() {
                    Ok(notice) => notice,
                    Err(_) => return,
                },
                missed => overflow(missed),
            },
        };
        let Some(shown) = show(notice) else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        // Only the shower adds to `waiting`, so the check and the add cannot race each other.
        if stats.waiting.load(Ordering::Acquire) < WAITERS {
            stats.waiting.fetch_add(1, Ordering::AcqRel);
            if handoff.send(shown).is_ok() {
                stats.waited.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            // Every waiter is busy: the notification stays on screen, unclickable.
            stats.unwaited.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn waiter<W>(shown: &Mutex<Receiver<W>>, wait: &dyn Fn(W), stats: &PoolStats) {
    loop {
        // One idle waiter at a time holds the lock while it waits in `recv`; the others queue on
        // the lock. A poisoned lock only means another waiter panicked: the receiver is intact.
        let next = shown.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match next {
            Ok(w) => {
                // A panic in one wait must neither end the waiter nor keep its place taken.
                let waited = std::panic::catch_unwind(AssertUnwindSafe(|| wait(w)));
                stats.waiting.fetch_sub(1, Ordering::AcqRel);
                if waited.is_err() {
                    tracing::warn!("waiting for a notification's click panicked");
                }
            }
            Err(_) => return, // the pool is gone
        }
    }
}

/// The app's notifications: a [`Pool`] showing [`Notice`]s with notify-rust.
pub struct Notifications {
    pool: Pool<Notice>,
}

impl Notifications {
    pub fn start(app: AppHandle) -> std::io::Result<Self> {
        let pool = Pool::start(
            "notify",
            show_one,
            move |(handle, target): Shown| {
                handle.wait_for_action(|action| match action {
                    "default" => open(&app, &target),
                    SILENCE_ACTION => silence_for_an_hour(&app, target.clone()),
                    _ => {}
                });
            },
            missed_notice,
        )?;
        Ok(Self { pool })
    }

    pub fn show(&self, notice: Notice) {
        self.pool.submit(notice);
    }
}

type Shown = (NotificationHandle, fleetdeck_proto::desktop::AppRef);

/// The action that silences what a notice is about for an hour (where the server shows actions).
const SILENCE_ACTION: &str = "silence-1h";

fn show_one(notice: Notice) -> Option<Shown> {
    let mut n = Notification::new();
    n.appname("Fleetdeck")
        .summary(&notice.summary)
        .body(&escape_markup(&notice.body))
        .action("default", "Open");
    if !notice.target.host.is_empty() {
        n.action(SILENCE_ACTION, "Silence 1 h");
    }
    n.urgency(if notice.critical {
        Urgency::Critical
    } else {
        Urgency::Normal
    })
    .timeout(Timeout::Milliseconds(if notice.critical {
        0
    } else {
        10_000
    }));
    match n.show() {
        Ok(handle) => Some((handle, notice.target)),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot show a notification; is a notification daemon running on the session bus?"
            );
            None
        }
    }
}

/// Silences the host (or app) a notice was about for an hour, through its collector; further
/// notices of it stop at once.
fn silence_for_an_hour(app: &AppHandle, target: fleetdeck_proto::desktop::AppRef) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let backend = app.state::<crate::backend::Backend>();
        let what = match &target.app {
            Some(a) => format!("{a} on {}", target.host),
            None => target.host.clone(),
        };
        let new = fleetdeck_proto::NewSilence {
            hosts: Some(target.host.clone()),
            apps: target.app.clone(),
            duration: Some("1h".to_owned()),
            reason: format!("silenced from a notification ({what})"),
            ..fleetdeck_proto::NewSilence::default()
        };
        let client = match backend.client(&target.collector) {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(collector = %target.collector, error = %e.message, "cannot silence from a notification");
                return;
            }
        };
        match client.silence(&new).await {
            Ok(silence) => {
                tracing::info!(collector = %target.collector, silence = silence.id, "silenced from a notification");
                backend
                    .notifier
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add_silence(&target.collector, silence);
            }
            Err(e) => {
                tracing::warn!(collector = %target.collector, error = %e.message, "cannot silence from a notification")
            }
        }
    });
}

fn open(app: &AppHandle, target: &fleetdeck_proto::desktop::AppRef) {
    if target.host.is_empty() {
        window::show(app); // about a whole collector
    } else {
        window::open(app, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The threads a [`Pool`] runs: one shower and the waiters.
    const POOL_THREADS: usize = 1 + WAITERS;

    #[test]
    fn markup_is_escaped() {
        for (input, escaped) in [
            ("api", "api"),
            ("", ""),
            ("<b>x</b>&amp;", "&lt;b&gt;x&lt;/b&gt;&amp;amp;"),
            ("a & b", "a &amp; b"),
            (
                "<a href=\"x\">y</a>",
                "&lt;a href=&quot;x&quot;&gt;y&lt;/a&gt;",
            ),
            ("it's", "it&apos;s"),
            ("&lt;", "&amp;lt;"),
            ("web-1: exit code 1.", "web-1: exit code 1."),
            ("ünïcödé ✓", "ünïcödé ✓"),
            ("<<>>", "&lt;&lt;&gt;&gt;"),
        ] {
            assert_eq!(escape_markup(input), escaped, "{input:?}");
        }
    }

    #[test]
    fn escaped_text_holds_no_markup() {
        let nasty = "<i>\"'&<>;&#60;</i>";
        let out = escape_markup(nasty);
        assert!(!out.contains(['<', '>', '"', '\'']), "{out}");
        // Every `&` left starts one of the escapes.
        for (i, _) in out.match_indices('&') {
            let rest = &out[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "{rest}"
            );
        }
    }

    fn wait_until(what: &str, deadline: Duration, check: impl Fn() -> bool) {
        let end = Instant::now() + deadline;
        while !check() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    /// The threads of the pool named `name`, counted from /proc: the process's other threads
    /// (other tests) do not matter.
    fn pool_threads(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| {
                let t = t.ok()?;
                std::fs::read_to_string(t.path().join("comm")).ok()
            })
            .filter(|comm| comm.starts_with(&format!("{name}-")))
            .count()
    }

    #[test]
    fn a_thousand_notices_use_a_fixed_number_of_threads() {
        // Each "notification" stays open until the test closes it, like a crash's that is never
        // dismissed: only WAITERS of them can be waited on.
        let (close_tx, close_rx) = mpsc::channel::<()>();
        let close_rx = Arc::new(Mutex::new(close_rx));
        let shown = Arc::new(AtomicU64::new(0));
        let shown_in = Arc::clone(&shown);
        let pool = Pool::start(
            "thousand",
            move |n: u32| {
                shown_in.fetch_add(1, Ordering::Relaxed);
                Some(n)
            },
            move |_n: u32| {
                let _ = close_rx.lock().expect("not poisoned").recv();
            },
            |_missed| u32::MAX,
        )
        .expect("threads");
        let mut most = 0;
        for i in 0..1_000 {
            pool.submit(i);
            most = most.max(pool_threads("thousand"));
            if i % 50 == 0 {
                // Let the shower drain, so the queue limit is not what is tested here.
                wait_until("the queue to drain", Duration::from_secs(10), || {
                    shown.load(Ordering::Relaxed) == u64::from(i) + 1
                });
            }
        }
        let stats = pool.stats();
        wait_until("every notice handled", Duration::from_secs(10), || {
            stats.waited.load(Ordering::Relaxed)
                + stats.unwaited.load(Ordering::Relaxed)
                + stats.dropped.load(Ordering::Relaxed)
                == 1_000
        });
        assert!(most <= POOL_THREADS, "{most} notification threads");
        assert_eq!(stats.waited.load(Ordering::Relaxed), WAITERS as u64);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);

        // Closing the waited ones frees the waiters for the next notices.
        for _ in 0..WAITERS {
            close_tx.send(()).expect("the waiters listen");
        }
        wait_until("the waiters freed", Duration::from_secs(10), || {
            stats.waiting.load(Ordering::Relaxed) == 0
        });
        pool.submit(1_000);
        wait_until(
            "a freed waiter takes the next one",
            Duration::from_secs(10),
            || stats.waited.load(Ordering::Relaxed) == WAITERS as u64 + 1,
        );
        assert!(pool_threads("thousand") <= POOL_THREADS);
    }

    #[test]
    fn a_stalled_daemon_gets_what_fits_in_the_queue_then_one_notice_for_the_rest() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let shown_in = Arc::clone(&shown);
        let pool = Pool::start(
            "stalled",
            move |n: u32| {
                // The daemon does not answer until released.
                let _ = release_rx.recv();
                shown_in.lock().expect("not poisoned").push(n);
                Some(())
            },
            |()| {},
            |missed| 1_000_000 + u32::try_from(missed).expect("small"),
        )
        .expect("threads");
        let sent = QUEUE as u32 + 100;
        for i in 0..sent {
            pool.submit(i);
        }
        // The shower may hold one; the queue holds QUEUE; the rest are counted.
        let dropped = pool.stats().dropped.load(Ordering::Relaxed);
        assert!((99..=100).contains(&dropped), "{dropped} dropped");
        drop(release_tx);
        let expected = sent as usize - dropped as usize + 1;
        wait_until("the queue drained", Duration::from_secs(10), || {
            shown.lock().expect("not poisoned").len() == expected
        });
        let shown = shown.lock().expect("not poisoned");
        // In order, then the one that stands for the dropped ones.
        let kept: Vec<u32> = (0..sent - u32::try_from(dropped).expect("small")).collect();
        assert_eq!(shown[..expected - 1], kept[..]);
        assert_eq!(
            shown[expected - 1],
            1_000_000 + u32::try_from(dropped).expect("small")
        );
    }
}

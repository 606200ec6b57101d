//! The collector's own health, as `GET /metrics` shows it: how long polls take and how they end,
//! how deep the database writer's queue is and how long its transactions take. Cheap to record
//! (atomics), shared by clones.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Turns on jemalloc's background thread, which returns unused pages to the system on its own
/// (without it, only further allocations do). Called once at start; a failure is logged.
pub fn tune_allocator() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "cannot start the allocator's background thread: memory freed may be returned later");
    }
}

/// What the allocator holds: (allocated, resident) bytes.
fn heap() -> Option<(u64, u64)> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().ok()?;
    let resident = tikv_jemalloc_ctl::stats::resident::read().ok()?;
    Some((allocated as u64, resident as u64))
}

/// How a poll of one agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollResult {
    Ok,
    Failed,
    /// The agent's previous poll was still running.
    Skipped,
}

impl PollResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// Seconds: 1 ms to about 16 s, doubling.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 15).expect("fixed, valid buckets")
}

#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    poll_duration: Histogram,
    polls: IntCounterVec,
    write_duration: Histogram,
    write_jobs: IntCounter,
    queued: AtomicI64,
}

impl Default for Telemetry {
    fn default() -> Self {
        // Fixed names and buckets: these cannot fail.
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(latency_buckets()))
                .expect("a valid histogram")
        };
        Self {
            inner: Arc::new(Inner {
                poll_duration: histogram(
                    "fleetdeck_collector_poll_duration_seconds",
                    "Time to poll one agent: its snapshot, samples and their storing.",
                ),
                polls: IntCounterVec::new(
                    Opts::new(
                        "fleetdeck_collector_polls_total",
                        "Polls of agents by how they ended (failed: no answer, or not stored; skipped: the previous poll still ran).",
                    ),
                    &["result"],
                )
                .expect("a valid counter"),
                write_duration: histogram(
                    "fleetdeck_collector_db_write_duration_seconds",
                    "Time of one database write transaction (a batch of queued writes).",
                ),
                write_jobs: IntCounter::new(
                    "fleetdeck_collector_db_writes_total",
                    "Queued writes the database writer has run.",
                )
                .expect("a valid counter"),
                queued: AtomicI64::new(0),
            }),
        }
    }
}

impl Telemetry {
    /// One agent's poll ended after `took` (a skipped one took nothing and is only counted).
    pub fn poll(&self, result: PollResult, took: Duration) {
        self.inner.polls.with_label_values(&[result.as_str()]).inc();
        if result != PollResult::Skipped {
            self.inner.poll_duration.observe(took.as_secs_f64());
        }
    }

    /// A write is about to be queued for the writer thread.
    pub fn queued(&self) {
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes counted as queued that never reached the writer (it had stopped).
    pub fn lost(&self, jobs: usize) {
        self.inner.queued.fetch_sub(jobs as i64, Ordering::Relaxed);
    }

    /// The writer committed (or failed) a transaction of `jobs` queued writes in `took`.
    pub fn batch(&self, jobs: usize, took: Duration) {
        self.inner.queued.fetch_sub(jobs as i64, Ordering::Relaxed);
        self.inner.write_jobs.inc_by(jobs as u64);
        self.inner.write_duration.observe(took.as_secs_f64());
    }

    /// Writes queued and not yet taken into a transaction.
    pub fn queue_depth(&self) -> i64 {
        self.inner.queued.load(Ordering::Relaxed).max(0)
    }

    /// Adds the collector's own metrics (`fleetdeck_collector_*`) to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        let inner = &self.inner;
        for s in [PollResult::Ok, PollResult::Failed, PollResult::Skipped] {
            // Every result is shown from the start, at 0.
            inner.polls.with_label_values(&[s.as_str()]);
        }
        registry.register(Box::new(inner.poll_duration.clone()))?;
        registry.register(Box::new(inner.polls.clone()))?;
        registry.register(Box::new(inner.write_duration.clone()))?;
        registry.register(Box::new(inner.write_jobs.clone()))?;
        let depth = IntGauge::new(
            "fleetdeck_collector_db_write_queue_depth",
            "Writes queued for the database writer, not yet in a transaction.",
        )?;
        depth.set(self.queue_depth());
        registry.register(Box::new(depth))?;
        if let Some((allocated, resident)) = heap() {
            let gauge = |name: &str, help: &str, value: u64| -> prometheus::Result<IntGauge> {
                let g = IntGauge::new(name, help)?;
                g.set(i64::try_from(value).unwrap_or(i64::MAX));
                Ok(g)
            };
            registry.register(Box::new(gauge(
                "fleetdeck_collector_heap_allocated_bytes",
                "Memory the collector has allocated and not freed (its live data).",
                allocated,
            )?))?;
            registry.register(Box::new(gauge(
                "fleetdeck_collector_heap_resident_bytes",
                "Memory the allocator holds in RAM: live data, and freed pages not yet returned.",
                resident,
            )?))?;
        }
        Ok(())
    }
}

//! Polling: every agent each interval, at most `poll_concurrency` at once, each with a timeout and
//! a small delay of its own (the same every cycle) so a large fleet is not asked in one burst. A poll reads the snapshot, then
//! backfills the agent's samples after the last one stored for that agent instance (a new instance
//! starts afresh), so a collector restart or a partition shorter than the agent's buffer leaves no
//! gap. A failed poll counts towards the host being down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fleetdeck_daemon::caps::StreamCaps;
use tokio::task::JoinSet;

use crate::agent_client::{AgentClient, AgentError};
use crate::store::ingest::{self, HostCursor, Polled, SampleCursor};
use crate::store::{now_ms, Store, StoreError};
use crate::telemetry::PollResult;

/// Says so when the agent's buffer dropped samples before the collector fetched them (a
/// partition longer than the agent's retention).
fn warn_if_lost(agent: &Agent, after: u64, oldest: Option<u64>) {
    if let Some(oldest) = oldest {
        if after > 0 && oldest > after + 1 {
            tracing::warn!(
                host = %agent.name,
                lost = oldest - after - 1,
                "samples were dropped from the agent's buffer before the collector fetched them"
            );
        }
    }
}

/// One agent as the poller, the subscriber and the API's proxy use it.
#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub host_id: i64,
    pub client: AgentClient,
    cursor: Mutex<Option<SampleCursor>>,
    /// The newest event id applied from the agent's stream.
    pub last_event_id: Mutex<Option<String>>,
    busy: AtomicBool,
    /// The agent instance whose `/v1/info` (its version) is stored: read again when it changes.
    info_of: Mutex<Option<String>>,
    /// Proxied log follows of this host held open: the agent's own cap for the collector (16)
    /// is never the one a client meets.
    pub follows: StreamCaps,
}

/// Proxied log follows open at once per host.
pub const MAX_FOLLOWS_PER_HOST: usize = 16;

/// The agents the collector polls, streams from and proxies to. A reload of collector.toml
/// replaces the list whole; whoever holds the old list finishes with it.
#[derive(Debug, Clone, Default)]
pub struct Roster(Arc<RwLock<Arc<Vec<Arc<Agent>>>>>);

impl Roster {
    pub fn new(agents: Vec<Arc<Agent>>) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(agents))))
    }

    /// The agents now.
    pub fn all(&self) -> Arc<Vec<Arc<Agent>>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The agent of `host`, if it is one of them now.
    pub fn get(&self, host: &str) -> Option<Arc<Agent>> {
        self.all().iter().find(|a| a.name == host).cloned()
    }

    pub fn replace(&self, agents: Vec<Arc<Agent>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(agents);
    }
}

impl Agent {
    pub fn new(client: AgentClient, host: HostCursor) -> Self {
        let cursor = host.instance_id.map(|instance_id| SampleCursor {
            instance_id,
            last_seq: host.last_seq,
        });
        Self {
            name: host.name,
            host_id: host.id,
            client,
            cursor: Mutex::new(cursor),
            last_event_id: Mutex::new(host.last_event_id),
            busy: AtomicBool::new(false),
            info_of: Mutex::new(None),
            follows: StreamCaps::new("log follows of this host", MAX_FOLLOWS_PER_HOST, usize::MAX),
        }
    }

    fn cursor(&self) -> Option<SampleCursor> {
        self.cursor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("cannot store the poll: {0}")]
    Store(#[from] StoreError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// What one cycle over the fleet did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    pub ok: usize,
    pub failed: usize,
    /// Agents whose previous poll was still running.
    pub skipped: usize,
    pub samples: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct Poller {
    pub agents: Roster,
    pub store: Store,
    pub concurrency: usize,
    pub timeout: Duration,
    pub down_after: u32,
    /// Each agent's poll starts after a delay up to this: its [`phase`], the same every cycle.
    pub jitter: Duration,
    /// Starts a cycle now (a reload added agents), not at the next tick.
    pub wake: Arc<tokio::sync::Notify>,
}

enum Outcome {
    Ok(usize),
    Failed,
    Skipped,
}

/// Where in `jitter` an agent's poll starts: spread by a hash of its name, and the same every
/// cycle (as Prometheus spreads its targets). Permits are taken in arrival order, so each agent
/// keeps its place in every cycle and the time between its polls stays near the interval even
/// when a cycle takes most of it; a random delay each cycle let an agent polled early in one
/// cycle come late in the next (gaps of the interval plus a whole cycle, docs/benchmarks.md).
pub fn phase(name: &str, jitter: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    name.hash(&mut hasher);
    let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    jitter.mul_f64(fraction)
}

impl Poller {
    /// Polls every agent once and waits for all of them.
    pub async fn poll_all(&self) -> CycleReport {
        let started = Instant::now();
        let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        for agent in self.agents.all().iter() {
            let agent = agent.clone();
            let poller = self.clone();
            let permits = permits.clone();
            let delay = phase(&agent.name, self.jitter);
            tasks.spawn(async move {
                if agent.busy.swap(true, Ordering::AcqRel) {
                    poller
                        .store
                        .telemetry()
                        .poll(PollResult::Skipped, Duration::ZERO);
                    return Outcome::Skipped;
                }
                tokio::time::sleep(delay).await;
                let outcome = match permits.acquire().await {
                    Ok(_permit) => {
                        let began = Instant::now();
                        let outcome = poller.poll_agent(&agent).await;
                        let result = match outcome {
                            Outcome::Ok(_) => PollResult::Ok,
                            Outcome::Failed => PollResult::Failed,
                            Outcome::Skipped => PollResult::Skipped,
                        };
                        poller.store.telemetry().poll(result, began.elapsed());
                        outcome
                    }
                    Err(_) => Outcome::Failed,
                };
                agent.busy.store(false, Ordering::Release);
                outcome
            });
        }
        let mut report = CycleReport::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Outcome::Ok(samples)) => {
                    report.ok += 1;
                    report.samples += samples;
                }
                Ok(Outcome::Skipped) => report.skipped += 1,
                Ok(Outcome::Failed) | Err(_) => report.failed += 1,
            }
        }
        report.elapsed = started.elapsed();
        report
    }

    async fn poll_agent(&self, agent: &Agent) -> Outcome {
        // Each request has its own timeout; the whole poll is bounded too (pages stop at 3×).
        let limit = self.timeout * 5;
        let result = match tokio::time::timeout(limit, self.fetch_and_store(agent)).await {
            Ok(r) => r,
            Err(_) => Err(PollError::Timeout(limit)),
        };
        match result {
            Ok(samples) => Outcome::Ok(samples),
            Err(PollError::Store(e)) => {
                // The agent answered; the database did not take it. The cursor did not move, so
                // the next poll brings the same samples again.
                tracing::error!(host = %agent.name, error = %e, "cannot store a poll");
                Outcome::Failed
            }
            Err(e) => {
                tracing::debug!(host = %agent.name, error = %e, "poll failed");
                let (host_id, name, error, down_after) = (
                    agent.host_id,
                    agent.name.clone(),
                    e.to_string(),
                    self.down_after,
                );
                let stored = self
                    .store
                    .write(move |ctx| {
                        ingest::apply_poll_failure(
                            ctx,
                            host_id,
                            &name,
                            &error,
                            down_after,
                            now_ms(),
                        )
                    })
                    .await;
                if let Err(e) = stored {
                    tracing::error!(host = %agent.name, error = %e, "cannot record a failed poll");
                }
                Outcome::Failed
            }
        }
    }

    /// Reads the snapshot and the first page of samples after the stored cursor and writes them
    /// together; further pages (a long backfill) are written as they come, each moving the cursor,
    /// until the poll's time is up: the next poll goes on from there. Only a snapshot the agent
    /// does not answer counts as a missed poll.
    async fn fetch_and_store(&self, agent: &Agent) -> Result<usize, PollError> {
        let started = std::time::Instant::now();
        let sent_ms = now_ms();
        let snapshot = agent.client.snapshot().await?;
        // The snapshot's own time (the agent stamps it when its reads begin) against the
        // collector's clock around the request.
        let skew_ms = ingest::clock_skew_ms(snapshot.taken_unix_ms, sent_ms, now_ms());
        let (after, instance) = match agent.cursor() {
            Some(c) if c.instance_id == snapshot.instance_id => (c.last_seq, c.instance_id),
            _ => (0, snapshot.instance_id.clone()),
        };
        let page = match agent.client.samples(after).await {
            Ok(page) if page.instance_id == instance => Some(page),
            // The agent restarted between the two calls: the next poll starts afresh.
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(host = %agent.name, error = %e, "cannot read samples; the next poll retries");
                None
            }
        };
        if let Some(p) = &page {
            warn_if_lost(agent, after, p.oldest_seq);
        }
        let mut more = page.as_ref().is_some_and(|p| p.more);
        let first = page.map(|p| p.samples).unwrap_or_default();
        let mut count = first.len();
        // What the agent says of itself, once per instance (an upgrade is a new instance).
        let known = agent
            .info_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(snapshot.instance_id.as_str());
        let info = if known {
            None
        } else {
            match agent.client.info().await {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::debug!(host = %agent.name, error = %e, "cannot read the agent's info; the next poll retries");
                    None
                }
            }
        };
        let info_instance = info.as_ref().map(|_| snapshot.instance_id.clone());
        let (host_id, name) = (agent.host_id, agent.name.clone());
        let polled = Polled {
            snapshot,
            samples_instance: instance.clone(),
            samples: first,
            info,
        };
        let mut cursor = self
            .store
            .write(move |ctx| {
                let now = now_ms();
                let cursor = ingest::apply_poll(ctx, host_id, &name, polled, now)?;
                ingest::apply_clock(ctx, host_id, &name, skew_ms, now)?;
                Ok(cursor)
            })
            .await?;
        self.set_cursor(agent, &cursor);
        if let Some(instance) = info_instance {
            *agent.info_of.lock().unwrap_or_else(|e| e.into_inner()) = Some(instance);
        }
        let budget = self.timeout * 3;
        while more && started.elapsed() < budget {
            let next = match agent.client.samples(cursor.last_seq).await {
                Ok(next) if next.instance_id == instance && !next.samples.is_empty() => next,
                _ => break,
            };
            count += next.samples.len();
            more = next.more;
            let samples = next.samples;
            let instance = instance.clone();
            let host = agent.name.clone();
            cursor = self
                .store
                .write(move |ctx| {
                    ingest::apply_samples(ctx, &host, host_id, &instance, &samples, now_ms())
                })
                .await?;
            self.set_cursor(agent, &cursor);
        }
        Ok(count)
    }

    fn set_cursor(&self, agent: &Agent, cursor: &SampleCursor) {
        *agent.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(cursor.clone());
    }

    /// Polls every `interval` until `shutdown` resolves. A cycle that takes longer than the
    /// interval delays the next one rather than overlapping it.
    pub async fn run(self, interval: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            let report = self.poll_all().await;
            tracing::debug!(?report, "poll cycle");
            if report.elapsed > interval {
                tracing::warn!(
                    elapsed = ?report.elapsed,
                    agents = self.agents.all().len(),
                    "a poll cycle took longer than poll_interval: raise poll_concurrency or poll_interval"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_keeps_its_phase_and_the_fleet_is_spread() {
        let jitter = Duration::from_secs(3);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| phase(&format!("web-{i}"), jitter))
            .collect();
        for (i, p) in phases.iter().enumerate() {
            assert!(*p < jitter);
            assert_eq!(
                *p,
                phase(&format!("web-{i}"), jitter),
                "the same every cycle"
            );
        }
        // Spread: every tenth of the window holds some agents, none most of them.
        let mut tenths = [0usize; 10];
        for p in &phases {
            tenths[(p.as_secs_f64() / 0.3) as usize] += 1;
        }
        assert!(tenths.iter().all(|n| (50..=150).contains(n)), "{tenths:?}");
        assert_eq!(phase("web-1", Duration::ZERO), Duration::ZERO);
    }
}

//! Each agent's `/v1/events` held open: transitions, check results and source changes (SSE
//! events `transition`, `check`, `source`; other names are skipped) reach the store (and so the
//! desktop's stream and the alerter) within milliseconds instead of at the next poll. A dropped or silent stream is
//! reopened with backoff and `Last-Event-ID`, so the agent replays what was missed; what a poll has
//! already recorded is not recorded again (see [`crate::store::ingest`]). An event over
//! [`MAX_SSE_EVENT`] ends the stream (then it is reopened with backoff), so an agent cannot make
//! the collector hold an endless line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use fleetdeck_proto::{AgentEvent, AppEvent, CheckEvent, SourceEvent};
use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::watch;

use crate::bounded::{BoundedEvents, MAX_SSE_EVENT};
use crate::poll::Agent;
use crate::store::{ingest, now_ms, Store};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The agent sends a keep-alive every 15 s: a stream silent for longer is dead (e.g. a partition
/// that drops packets without a reset).
const SILENCE_LIMIT: Duration = Duration::from_secs(40);

/// Follows one agent's events until `shutdown` changes.
pub async fn follow(agent: Arc<Agent>, store: Store, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let last = agent
            .last_event_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let opened = tokio::select! {
            r = agent.client.events(last.as_deref()) => r,
            _ = shutdown.changed() => return,
        };
        match opened {
            Ok(resp) => {
                tracing::debug!(host = %agent.name, "event stream open");
                backoff = FIRST_BACKOFF;
                let heard = Arc::new(AtomicU64::new(now_ms()));
                let heard_in = heard.clone();
                let bytes = resp
                    .bytes_stream()
                    .inspect(move |_| heard_in.store(now_ms(), Ordering::Relaxed));
                let mut events = BoundedEvents::new(bytes, MAX_SSE_EVENT).eventsource();
                let mut check = tokio::time::interval(Duration::from_secs(5));
                // Unreadable events are warned of once per connection: an agent sending
                // thousands cannot flood the log.
                let mut unreadable = 0u64;
                loop {
                    tokio::select! {
                        next = events.next() => match next {
                            Some(Ok(event)) if KINDS.contains(&event.event.as_str()) => {
                                if !apply(&agent, &store, &event.event, &event.data, &mut unreadable).await {
                                    // Reconnect after the last stored event: the agent replays
                                    // this one, so it is not lost.
                                    break;
                                }
                            }
                            // A kind this collector does not know (a newer agent): skipped.
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::debug!(host = %agent.name, error = %e, "event stream broke");
                                break;
                            }
                            None => break,
                        },
                        _ = check.tick() => {
                            let silent = now_ms().saturating_sub(heard.load(Ordering::Relaxed));
                            if silent > SILENCE_LIMIT.as_millis() as u64 {
                                tracing::debug!(host = %agent.name, "event stream silent; reopening");
                                break;
                            }
                        }
                        _ = shutdown.changed() => return,
                    }
                }
            }
            Err(e) => {
                tracing::debug!(host = %agent.name, error = %e, "cannot open the event stream")
            }
        }
        let wait = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The SSE event names this collector reads (`AgentEvent::name`); others are skipped.
const KINDS: [&str; 3] = ["transition", "check", "source"];

/// Reads one event's data by its SSE name: the data is the inner struct, untagged.
fn parse(name: &str, data: &str) -> Result<AgentEvent, serde_json::Error> {
    Ok(match name {
        "check" => AgentEvent::Check(serde_json::from_str::<CheckEvent>(data)?),
        "source" => AgentEvent::Source(serde_json::from_str::<SourceEvent>(data)?),
        _ => AgentEvent::Transition(serde_json::from_str::<AppEvent>(data)?),
    })
}

/// Stores one event; false when the store did not take it. An event that cannot be read is
/// skipped and counted in `unreadable`.
async fn apply(
    agent: &Arc<Agent>,
    store: &Store,
    name: &str,
    data: &str,
    unreadable: &mut u64,
) -> bool {
    let event = match parse(name, data) {
        Ok(e) => e,
        Err(e) => {
            *unreadable += 1;
            if *unreadable == 1 {
                tracing::warn!(host = %agent.name, kind = name, error = %e, "the agent sent an event this collector cannot read (further ones on this connection are not logged)");
            }
            return true;
        }
    };
    let id = event.sse_id();
    let (host_id, name) = (agent.host_id, agent.name.clone());
    match store
        .write(move |ctx| ingest::apply_stream_event(ctx, host_id, &name, &event))
        .await
    {
        Ok(()) => {
            *agent
                .last_event_id
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(id);
            true
        }
        Err(e) => {
            tracing::error!(host = %agent.name, error = %e, "cannot store an agent event; reconnecting to have it again");
            false
        }
    }
}

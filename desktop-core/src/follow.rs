//! A collector's event log followed live (`GET /v1/events/stream`): reopened with jittered
//! backoff when it breaks or falls silent, resuming with `Last-Event-ID`, so no event is missed
//! and none is delivered twice.

use std::time::Duration;

use fleetdeck_proto::desktop::{CommandError, EventFilter};
use fleetdeck_proto::FleetEvent;
use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use crate::client::CollectorClient;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A stream that stayed open this long was healthy: the next reconnect starts from the first
/// backoff again.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// What [`follow_events`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamUpdate {
    /// A stream opened (after a start or a reconnect).
    Connected,
    /// A new event, in id order.
    Event(Box<FleetEvent>),
    /// The stream broke or could not be opened; it is retried.
    Disconnected(CommandError),
}

/// Follows the collector's events after `last_id` into `tx`, until `tx` is closed. With `None`,
/// it starts after the newest event the collector has when it first answers (so nothing older is
/// replayed, and a reconnect before the first new event still gets what happened meanwhile). A silent stream (no keep-alive for [`crate::client::SILENCE_LIMIT`]) counts as
/// broken. Events with an id at most the last one delivered are skipped.
pub async fn follow_events(
    client: CollectorClient,
    mut last_id: Option<i64>,
    tx: Sender<StreamUpdate>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let opened = tokio::select! {
            opened = open(&client, &mut last_id) => opened,
            () = tx.closed() => return,
        };
        let error = match opened {
            Ok(stream) => {
                let opened_at = Instant::now();
                tracing::debug!(collector = %client.url(), ?last_id, "event stream open");
                if tx.send(StreamUpdate::Connected).await.is_err() {
                    return;
                }
                let mut stream = std::pin::pin!(stream);
                let error = loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        () = tx.closed() => return,
                    };
                    match next {
                        Some(Ok(event)) => {
                            if last_id.is_some_and(|last| event.id <= last) {
                                continue;
                            }
                            last_id = Some(event.id);
                            if tx.send(StreamUpdate::Event(Box::new(event))).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => break e,
                        None => {
                            break CommandError::new(
                                "unreachable",
                                format!(
                                    "The collector at {} closed the event stream; reconnecting.",
                                    client.url()
                                ),
                            )
                        }
                    }
                };
                if opened_at.elapsed() >= HEALTHY_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                error
            }
            Err(e) => e,
        };
        tracing::debug!(collector = %client.url(), code = %error.code, error = %error.message, "event stream down");
        if tx.send(StreamUpdate::Disconnected(error)).await.is_err() {
            return;
        }
        // Jitter spreads the reconnects of many desktops after a collector restart.
        let wait = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens the stream after `last_id`, first reading the newest event's id when there is none yet.
async fn open(
    client: &CollectorClient,
    last_id: &mut Option<i64>,
) -> Result<
    impl futures_util::Stream<Item = Result<FleetEvent, CommandError>> + Send + 'static,
    CommandError,
> {
    if last_id.is_none() {
        let newest = client
            .events(&EventFilter {
                limit: Some(1),
                ..EventFilter::default()
            })
            .await?;
        *last_id = Some(newest.events.first().map_or(0, |e| e.id));
    }
    client.events_stream(*last_id).await
}

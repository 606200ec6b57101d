use std::collections::VecDeque;
use std::convert::Infallible;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use fleetdeck_proto::{AppEvent, ErrorBody};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::{client_key, ApiError, AppState};

/// Status transitions as Server-Sent Events (`event: transition`, `id: INSTANCE:ID`, data an
/// AppEvent). `Last-Event-ID` replays the buffered events after it; without it the stream is live.
#[utoipa::path(
    get,
    path = "/v1/events",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses(
        (status = 200, description = "an SSE stream of transitions", content_type = "text/event-stream", body = AppEvent),
        (status = 401, body = ErrorBody),
        (status = 429, description = "this client holds as many event streams as one may (4); Retry-After says when to retry", body = ErrorBody),
        (status = 503, description = "the agent holds as many event streams as it serves (16); Retry-After says when to retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.event_streams.take(&client_key(&peer))?;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (replay, rx, after) = state.agent.events().subscribe(last);
    let agent = state.agent.clone();
    let start = (VecDeque::from(replay), rx, after);
    let stream = stream::unfold(start, move |(mut queue, mut rx, mut last_sent)| {
        // The slot lives as long as the stream.
        let _slot = &slot;
        let agent = agent.clone();
        async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    if event.id <= last_sent {
                        continue;
                    }
                    last_sent = event.id;
                    return Some((Ok(sse_event(&event)), (queue, rx, last_sent)));
                }
                match rx.recv().await {
                    Ok(event) => queue.push_back(event),
                    // This stream fell behind the live feed: catch up from the buffer.
                    Err(RecvError::Lagged(_)) => queue.extend(agent.events().since(last_sent)),
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_event(event: &AppEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|e| {
        // AppEvent holds only strings, numbers and enums: serializing it cannot fail.
        tracing::error!(error = %e, "cannot serialize an event");
        String::from("{}")
    });
    Event::default()
        .event("transition")
        .id(event.sse_id())
        .data(data)
}

use std::collections::VecDeque;
use std::convert::Infallible;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use fleetdeck_proto::{AgentEvent, AppEvent, ErrorBody};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::{client_key, ApiError, AppState};

/// The agent's events as Server-Sent Events, in one id sequence (`id: INSTANCE:ID`) shared by
/// three kinds: `event: transition` (data an AppEvent: a status change), `event: check` (data a
/// CheckEvent: a check passed after failing or failed after passing) and `event: source` (data a
/// SourceEvent: systemd or Docker stopped or started answering). The data is the JSON of that
/// type, without a type tag; a client that knows only `transition` skips the others.
/// `Last-Event-ID` replays the buffered events of every kind after it; without it the stream is
/// live.
#[utoipa::path(
    get,
    path = "/v1/events",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event id (events of every kind)")),
    responses(
        (status = 200, description = "an SSE stream of events: `transition` (data: AppEvent, the schema below), `check` (data: CheckEvent) and `source` (data: SourceEvent), one id sequence", content_type = "text/event-stream", body = AppEvent),
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
                    if event.id() <= last_sent {
                        continue;
                    }
                    last_sent = event.id();
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

/// The event's name and id, and as data the JSON of the inner struct (no `type` tag), so a
/// client that reads `transition` data as an AppEvent keeps working.
fn sse_event(event: &AgentEvent) -> Event {
    let data = match event {
        AgentEvent::Transition(e) => serde_json::to_string(e),
        AgentEvent::Check(e) => serde_json::to_string(e),
        AgentEvent::Source(e) => serde_json::to_string(e),
    };
    let data = data.unwrap_or_else(|e| {
        // The events hold only strings, numbers and enums: serializing one cannot fail.
        tracing::error!(error = %e, "cannot serialize an event");
        String::from("{}")
    });
    Event::default()
        .event(event.name())
        .id(event.sse_id())
        .data(data)
}

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use axum::Json;
use fleetdeck_proto::{ErrorBody, EventsPage, FleetEvent, FleetEventKind, Severity};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, AppState};
use crate::store::db::params;
use crate::store::keys::Caller;
use crate::store::query::{self, EventFilter};
use crate::store::Store;

/// The event kinds a `kind` filter takes, for its error message.
const EVENT_KINDS: &str = "transition, restarted, host-down, host-up, check-failed, \
    check-passed, source-down, source-up, threshold-fired, threshold-cleared, clock-skew, clock-ok, cert-expiring, cert-renewed";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    host: Option<String>,
    app: Option<String>,
    /// `info`, `warning` or `critical`.
    severity: Option<String>,
    /// `transition`, `restarted`, `host-down`, `host-up`, `check-failed`, `check-passed`,
    /// `source-down`, `source-up`, `threshold-fired`, `threshold-cleared`, `clock-skew`,
    /// `clock-ok`, `cert-expiring` or `cert-renewed`.
    kind: Option<String>,
    /// RFC 3339: only events at or after.
    since: Option<String>,
    /// RFC 3339: only events before.
    until: Option<String>,
    /// Only events older than this id (the previous page's `next_before`).
    before: Option<i64>,
    /// Events per page (default 100, at most 1000).
    limit: Option<usize>,
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    name: &str,
    v: &str,
    allowed: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|_| ApiError::BadRequest(format!("`{name}` = {v:?}: use one of {allowed}")))
}

pub(super) fn parse_time(name: &str, s: &str) -> Result<u64, ApiError> {
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| ApiError::BadRequest(format!("`{name}` = {s:?} is not an RFC 3339 time")))
}

/// The event log, newest first, with filters and paging.
#[utoipa::path(
    get,
    path = "/v1/events",
    params(EventsParams),
    responses((status = 200, body = EventsPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = EventFilter {
        host: p.host,
        app: p.app,
        severity: p
            .severity
            .as_deref()
            .map(|s| parse_enum::<Severity>("severity", s, "info, warning, critical"))
            .transpose()?,
        kind: p
            .kind
            .as_deref()
            .map(|s| parse_enum::<FleetEventKind>("kind", s, EVENT_KINDS))
            .transpose()?,
        since_ms: p
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until_ms: p
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        before: p.before,
        after: None,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let page = state
        .store
        .with_conn(move |conn| query::events(conn, &filter))
        .await?;
    Ok(Json(page))
}

/// The most events a reconnecting stream replays.
const MAX_REPLAY: i64 = 10_000;

/// The event log live, as Server-Sent Events (`event: fleet`, id = the event's id, data a
/// FleetEvent). `Last-Event-ID` first replays every event after it, none twice. The stream ends
/// when its key is deleted.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses(
        (status = 200, description = "an SSE stream of fleet events", content_type = "text/event-stream", body = FleetEvent),
        (status = 401, body = ErrorBody),
        (status = 429, description = "this key holds as many event streams as one key may (32); Retry-After says when to retry", body = ErrorBody),
        (status = 503, description = "the collector serves as many event streams as it will (1024); Retry-After says when to retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.event_streams.take(&caller.id.to_string())?;
    // Subscribe before reading the replay, so nothing committed in between is missed.
    let rx = state.store.subscribe();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let newest = state
        .store
        .with_conn(|conn| {
            conn.query_row("SELECT coalesce(max(id), 0) FROM events", params![], |r| {
                r.get::<i64>(0)
            })
        })
        .await?;
    let (replay, last_sent) = match last {
        // An id above the newest is from another database (recreated): start live from here.
        Some(after) if after <= newest => {
            // Replay at most the newest MAX_REPLAY events; older ones are in GET /v1/events.
            let after = after.max(newest - MAX_REPLAY);
            (after_id(&state.store, after).await?, after)
        }
        _ => (Vec::new(), newest),
    };
    let store = state.store.clone();
    let start = (VecDeque::from(replay), rx, last_sent);
    let events = stream::unfold(start, move |(mut queue, mut rx, mut last_sent)| {
        // The slot lives as long as the stream.
        let _slot = &slot;
        let store = store.clone();
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
                    // This stream fell behind the live feed: catch up from the database.
                    Err(RecvError::Lagged(_)) => match after_id(&store, last_sent).await {
                        Ok(missed) => queue.extend(missed),
                        Err(_) => return None,
                    },
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let events = state
        .revocations
        .until_revoked(events, state.store.clone(), caller.id);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Every event after `id`, oldest first.
async fn after_id(store: &Store, id: i64) -> Result<Vec<FleetEvent>, ApiError> {
    let mut out = Vec::new();
    let mut after = id;
    loop {
        let filter = EventFilter {
            after: Some(after),
            limit: 1000,
            ..EventFilter::default()
        };
        let page = store
            .with_conn(move |conn| query::events(conn, &filter))
            .await?;
        let n = page.events.len();
        after = page.events.last().map_or(after, |e| e.id);
        out.extend(page.events);
        if n < 1000 {
            return Ok(out);
        }
    }
}

fn sse_event(event: &FleetEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|e| {
        // FleetEvent holds only strings, numbers and enums: serializing it cannot fail.
        tracing::error!(error = %e, "cannot serialize an event");
        String::from("{}")
    });
    Event::default()
        .event("fleet")
        .id(event.id.to_string())
        .data(data)
}

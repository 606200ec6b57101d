use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fleetdeck_proto::{ErrorBody, LogEntry, LogPage};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::{client_key, ApiError, AppState};
use crate::agent::LogError;
use crate::journal::LogQuery;
use crate::search::Pattern;

/// At most this many entries in one page (a page is held in memory whole).
pub const MAX_LIMIT: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Entries per page (default 200, at most 1000).
    limit: Option<usize>,
    /// Only entries older than this cursor.
    before: Option<String>,
    /// Only messages matching this regular expression (case-insensitive unless it has capitals;
    /// at most 512 bytes, and refused when its automaton is too large). Two searches run at once
    /// on an agent; a third is refused with 429, and a search stops after 5 s.
    grep: Option<String>,
    /// Only entries at least this important: 0–7 or emerg, alert, crit, err, warning, notice, info, debug.
    priority: Option<String>,
    /// Only entries written at or after this time, in Unix milliseconds.
    since: Option<u64>,
    /// Only entries written before this time, in Unix milliseconds.
    until: Option<u64>,
}

fn parse_priority(p: &str) -> Result<u8, ApiError> {
    fleetdeck_proto::parse_log_priority(p).map_err(ApiError::BadRequest)
}

/// A page of the app's logs, newest first; pass the last entry's `cursor` as `before` for the next.
/// With `Accept: application/x-ndjson` the page comes as one JSON entry a line, each as it is
/// found (a unit's search sends its newest matches before journalctl has read every entry); an
/// error after the first line ends the answer with one `{"error": …}` line.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/logs",
    params(("app" = String, Path, description = "the app's name"), LogsParams),
    responses(
        (status = 200, description = "a page; with Accept: application/x-ndjson, one entry a line as it is found, an error ending it with a line {\"error\": …}", content(
            (LogPage = "application/json"),
            (LogEntry = "application/x-ndjson")
        )),
        (status = 400, description = "a bad cursor, priority or grep; a grep too long or too complex, or a search that ran past its deadline", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "the agent's search slots are all taken; retry after Retry-After seconds", body = ErrorBody),
        (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn page(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    params: Result<Query<LogsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = LogQuery {
        limit: p.limit.unwrap_or(200).clamp(1, MAX_LIMIT),
        before: p.before,
        grep: p
            .grep
            .filter(|g| !g.is_empty())
            .map(|g| Pattern::new(&g))
            .transpose()
            .map_err(LogError::from)?,
        priority: p.priority.as_deref().map(parse_priority).transpose()?,
        since_ms: p.since,
        until_ms: p.until,
    };
    fleetdeck_proto::check_log_range(p.since, p.until).map_err(ApiError::BadRequest)?;
    let lines = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON));
    if !lines {
        return Ok(Json(state.agent.log_page(&app, &query).await?).into_response());
    }
    let mut entries = state.agent.log_page_stream(&app, query).await?;
    // The answer starts with the first entry: an error before it (a pattern journalctl refuses,
    // the deadline with nothing found) is an HTTP error like any page's.
    let first = match entries.next().await {
        Some(Err(e)) => return Err(e.into()),
        first => first,
    };
    // (With no match, `first` is None and the chain polls the ended stream again: it is fused.)
    let body = futures_util::stream::iter(first)
        .chain(entries)
        .map(|entry| {
            let mut line = match entry {
                Ok(entry) => serde_json::to_vec(&entry),
                Err(e) => {
                    // After the first line the status is sent: the error's code says what it was.
                    let e = ApiError::from(e);
                    serde_json::to_vec(&ErrorBody::new(e.status_and_code().1, e.to_string()))
                }
            }
            .unwrap_or_else(|_| b"{}".to_vec());
            line.push(b'\n');
            Ok::<_, Infallible>(Bytes::from(line))
        });
    let mut response = Body::from_stream(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(response)
}

/// The media type of a page streamed one entry a line.
const NDJSON: &str = "application/x-ndjson";

/// Follows the app's logs as Server-Sent Events (`event: log`, id = the entry's cursor, data a
/// LogEntry). Reconnecting with `Last-Event-ID` gets every entry after it, none twice.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/logs/stream",
    params(
        ("app" = String, Path, description = "the app's name"),
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this cursor")
    ),
    responses(
        (status = 200, description = "an SSE stream of log entries", content_type = "text/event-stream", body = LogEntry),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "this client holds as many log follows as one may (16); Retry-After says when to retry", body = ErrorBody),
        (status = 502, description = "journald or Docker failed", body = ErrorBody),
        (status = 503, description = "the agent holds as many log follows as it serves (32); Retry-After says when to retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(state): State<AppState>,
    Path(app): Path<String>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = state.follows.take(&client_key(&peer))?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let entries = state.agent.log_follow(&app, after).await?;
    let events = entries.map(move |entry| {
        // The slot lives as long as the stream.
        let _slot = &slot;
        let data = serde_json::to_string(&entry).unwrap_or_else(|_| String::from("{}"));
        Ok(Event::default().event("log").id(entry.cursor).data(data))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

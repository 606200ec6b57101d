//! The HTTP API: every virtual agent's routes under `/agents/{index}`, the same paths, shapes,
//! status codes and SSE framing as the real agent (`agent/src/api/`). A gate in front of them
//! finds the host, answers 503 for an unreachable one, and checks the bearer token. Handlers are
//! adapters of a few lines over [`crate::host::Host`], [`crate::logs`] and [`crate::env`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use fleetdeck_proto::{
    ActionOutcome, AgentEvent, AppAction, AppState, AppStatus, EnvFile, EnvUpdate, EnvWritten,
    ErrorBody, Info, LogPage, SamplesPage, Snapshot,
};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use crate::env::{self, EnvError};
use crate::host::{now_ms, Host, Process, SAMPLES_DEFAULT_LIMIT};
use crate::logs::{self, until_unreachable, LogQuery};
use crate::Sim;

/// Every error the API answers with, mapped to a status code in exactly one place.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("no virtual agent {index}: this simulator serves /agents/0 to /agents/{last}")]
    HostNotFound { index: String, last: usize },
    #[error("host {0} is unreachable (simulated)")]
    Unreachable(String),
    #[error("no app named {0:?} is configured on this agent; GET /v1/apps lists them")]
    AppNotFound(String),
    #[error("no action {0:?}: use start, stop, restart or apply")]
    UnknownAction(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("bad cursor {0:?}: pass a cursor from a log entry")]
    BadCursor(String),
    #[error("If-Match is required: send the etag from GET .../env, so a change made meanwhile is not overwritten")]
    PreconditionRequired,
    #[error("{0}")]
    Env(#[from] EnvError),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request could not be served: {0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::HostNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::Unreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unreachable"),
            Self::AppNotFound(_) => (StatusCode::NOT_FOUND, "app_not_found"),
            Self::UnknownAction(_) => (StatusCode::NOT_FOUND, "unknown_action"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::BadCursor(_) => (StatusCode::BAD_REQUEST, "bad_cursor"),
            Self::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, "if_match_required"),
            Self::Env(EnvError::NoFile) => (StatusCode::NOT_FOUND, "no_env_file"),
            Self::Env(EnvError::Stale { .. }) => (StatusCode::PRECONDITION_FAILED, "stale_etag"),
            Self::Env(EnvError::Invalid(_)) | Self::Unprocessable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_env")
            }
            Self::Env(EnvError::Read { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "env_read_failed")
            }
            Self::Env(EnvError::Write { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "env_write_failed")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, Json(ErrorBody::new(code, self.to_string()))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/agents/{index}/healthz", get(healthz))
        .route("/agents/{index}/v1/info", get(info))
        .route("/agents/{index}/v1/snapshot", get(snapshot))
        .route("/agents/{index}/v1/apps", get(apps))
        .route("/agents/{index}/v1/apps/{app}", get(app))
        .route("/agents/{index}/v1/samples", get(samples))
        .route("/agents/{index}/v1/events", get(events))
        .route("/agents/{index}/v1/apps/{app}/actions/{action}", post(act))
        .route(
            "/agents/{index}/v1/apps/{app}/env",
            get(env_get).put(env_put),
        )
        .route("/agents/{index}/v1/apps/{app}/logs", get(log_page))
        .route("/agents/{index}/v1/apps/{app}/logs/stream", get(log_stream))
        .route_layer(middleware::from_fn_with_state(sim.clone(), gate))
        .fallback(not_found)
        .with_state(sim)
}

/// Finds the host of `/agents/{index}/...`, answers for an unreachable one, checks the token
/// (all routes but `healthz`), and hands the host to the handler.
async fn gate(State(sim): State<Arc<Sim>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let (index, rest) = path
        .strip_prefix("/agents/")
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", ""));
    let Some(host) = index.parse::<usize>().ok().and_then(|i| sim.hosts.get(i)) else {
        return ApiError::HostNotFound {
            index: index.to_owned(),
            last: sim.hosts.len().saturating_sub(1),
        }
        .into_response();
    };
    if !host.is_reachable() {
        return ApiError::Unreachable(host.name.clone()).into_response();
    }
    if rest != "healthz" && !sim.token_ok(request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    let host = host.clone();
    request.extensions_mut().insert(host);
    next.run(request).await
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody::new(
            "not_found",
            "no such route; virtual agents are served under /agents/{index}/",
        )),
    )
        .into_response()
}

type HostExt = Extension<Arc<Host>>;

#[derive(Debug, Deserialize)]
struct AppPath {
    app: String,
}

#[derive(Debug, Deserialize)]
struct ActionPath {
    app: String,
    action: String,
}

fn app_index(host: &Host, app: &str) -> Result<usize, ApiError> {
    host.app_index(app)
        .ok_or_else(|| ApiError::AppNotFound(app.to_owned()))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn info(Extension(host): HostExt) -> Json<Info> {
    Json(host.info())
}

async fn snapshot(Extension(host): HostExt) -> Json<Snapshot> {
    Json(host.snapshot())
}

async fn apps(Extension(host): HostExt) -> Json<Vec<AppStatus>> {
    Json(host.statuses())
}

async fn app(
    Extension(host): HostExt,
    Path(p): Path<AppPath>,
) -> Result<Json<AppStatus>, ApiError> {
    let i = app_index(&host, &p.app)?;
    host.status(i).map(Json).ok_or(ApiError::AppNotFound(p.app))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplesQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn samples(
    Extension(host): HostExt,
    query: Result<Query<SamplesQuery>, QueryRejection>,
) -> Result<Json<SamplesPage>, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::BadRequest(format!("{}; use ?after=SEQ&limit=N", e.body_text())))?;
    Ok(Json(host.samples_after(
        q.after,
        q.limit.unwrap_or(SAMPLES_DEFAULT_LIMIT),
    )))
}

fn last_event_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("last-event-id").and_then(|v| v.to_str().ok())
}

/// Status transitions, check results and source changes as SSE (`event: transition|check|source`,
/// `id: INSTANCE:ID`, data the inner struct without a tag), as the agent serves them; the stream
/// ends when the host becomes unreachable.
async fn events(
    Extension(host): HostExt,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let after = host.events_start(last_event_id(&headers));
    let reachable = host.watch_reachable();
    let start = (host, reachable, after, VecDeque::<AgentEvent>::new());
    let stream = stream::unfold(
        start,
        |(host, mut reachable, mut last, mut queue)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    last = event.id();
                    let sse = agent_event(&event);
                    return Some((Ok(sse), (host, reachable, last, queue)));
                }
                if !*reachable.borrow() {
                    return None;
                }
                // Listen before looking, so an event pushed in between still wakes this stream.
                let notified = host.events_changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                queue.extend(host.events_after(last));
                if !queue.is_empty() {
                    continue;
                }
                tokio::select! {
                    () = &mut notified => {}
                    () = until_unreachable(&mut reachable) => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn agent_event(event: &AgentEvent) -> Event {
    let data = match event {
        AgentEvent::Transition(e) => serde_json::to_string(e),
        AgentEvent::Check(e) => serde_json::to_string(e),
        AgentEvent::Source(e) => serde_json::to_string(e),
    }
    .unwrap_or_else(|e| {
        // The events hold only strings, numbers and enums: serializing them cannot fail.
        tracing::error!(error = %e, "cannot serialize an event");
        String::from("{}")
    });
    Event::default()
        .event(event.name())
        .id(event.sse_id())
        .data(data)
}

async fn act(
    Extension(host): HostExt,
    Path(p): Path<ActionPath>,
) -> Result<Json<ActionOutcome>, ApiError> {
    let action = match p.action.as_str() {
        "start" => AppAction::Start,
        "stop" => AppAction::Stop,
        "restart" => AppAction::Restart,
        "apply" => AppAction::Apply,
        _ => return Err(ApiError::UnknownAction(p.action)),
    };
    let i = app_index(&host, &p.app)?;
    match action {
        AppAction::Start => {
            if host.state(i) != Some(AppState::Running) {
                host.change_with(
                    i,
                    AppState::Running,
                    None,
                    Process::New { counted: false },
                    true,
                    None,
                );
            }
        }
        AppAction::Stop => {
            // Asked for through Fleetdeck: no alert follows.
            host.change_with(i, AppState::Stopped, None, Process::Same, true, None);
        }
        AppAction::Restart | AppAction::Apply => {
            host.change(i, AppState::Running, None, Process::New { counted: false });
        }
    }
    let status = host.status(i).ok_or(ApiError::AppNotFound(p.app.clone()))?;
    Ok(Json(ActionOutcome {
        app: p.app,
        action,
        result: "done".to_owned(),
        status,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsParams {
    limit: Option<usize>,
    before: Option<String>,
    grep: Option<String>,
    priority: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
}

async fn log_page(
    Extension(host): HostExt,
    Path(p): Path<AppPath>,
    params: Result<Query<LogsParams>, QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let Query(q) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let i = app_index(&host, &p.app)?;
    let before = q
        .before
        .map(|c| logs::parse_cursor(&c).ok_or(ApiError::BadCursor(c)))
        .transpose()?;
    let query = LogQuery {
        limit: q.limit.unwrap_or(logs::DEFAULT_LIMIT),
        before,
        grep: q.grep.filter(|g| !g.is_empty()),
        priority: q
            .priority
            .as_deref()
            .map(logs::parse_priority)
            .transpose()
            .map_err(ApiError::BadRequest)?,
        since_ms: q.since,
        until_ms: q.until,
    };
    let src = host
        .log_source(i)
        .ok_or_else(|| ApiError::AppNotFound(p.app.clone()))?;
    let history = host.history(i);
    Ok(Json(logs::page(&src, &history, now_ms(), &query)))
}

/// Follows the app's logs as SSE (`event: log`, id = the entry's cursor, data a `LogEntry`);
/// `Last-Event-ID` resumes right after that cursor.
async fn log_stream(
    Extension(host): HostExt,
    Path(p): Path<AppPath>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let i = app_index(&host, &p.app)?;
    let after = last_event_id(&headers)
        .map(|c| logs::parse_cursor(c).ok_or_else(|| ApiError::BadCursor(c.to_owned())))
        .transpose()?;
    let src = host
        .log_source(i)
        .ok_or_else(|| ApiError::AppNotFound(p.app.clone()))?;
    let entries = logs::follow(host, i, src, after).map(|entry| {
        let data = serde_json::to_string(&entry).unwrap_or_else(|_| String::from("{}"));
        Ok(Event::default().event("log").id(entry.cursor).data(data))
    });
    Ok(Sse::new(entries).keep_alive(KeepAlive::default()))
}

fn env_path(host: &Host, app: &str) -> Result<PathBuf, ApiError> {
    app_index(host, app)?;
    host.env_dir
        .as_ref()
        .map(|dir| dir.join(format!("{app}.env")))
        .ok_or(ApiError::Env(EnvError::NoFile))
}

async fn env_get(
    Extension(host): HostExt,
    Path(p): Path<AppPath>,
) -> Result<Json<EnvFile>, ApiError> {
    let path = env_path(&host, &p.app)?;
    let file = tokio::task::spawn_blocking(move || env::read(&path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(file))
}

async fn env_put(
    Extension(host): HostExt,
    Path(p): Path<AppPath>,
    headers: HeaderMap,
    body: Result<Json<EnvUpdate>, JsonRejection>,
) -> Result<Json<EnvWritten>, ApiError> {
    let path = env_path(&host, &p.app)?;
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::PreconditionRequired)?;
    let Json(update) = body.map_err(|e| {
        ApiError::Unprocessable(format!(
            "{}; send {{\"set\": {{...}}, \"unset\": [...]}} or {{\"raw\": \"...\"}}",
            e.body_text()
        ))
    })?;
    let written = tokio::task::spawn_blocking(move || {
        // One write at a time per host, so the etag check and the rename are one step.
        let _guard = host.env_lock.lock().unwrap_or_else(|p| p.into_inner());
        env::write(&path, &if_match, &update)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    tracing::info!(app = %p.app, path = %written.path, "sim: .env written");
    Ok(Json(written))
}

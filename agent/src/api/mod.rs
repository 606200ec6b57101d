//! The agent's HTTP API (wire contract v1): routing, bearer auth, the one error shape and the
//! OpenAPI document. Handlers are thin adapters over [`crate::agent::Agent`].

mod actions;
mod apps;
mod env;
mod events;
mod info;
mod logs;
mod samples;
mod snapshot;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetdeck_daemon::caps::{CapError, StreamCaps};
use fleetdeck_daemon::http::{not_found, BearerAuth, SseEvents};
use fleetdeck_proto::ErrorBody;
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

use crate::agent::Agent;

/// The largest request body read: an `.env` edit (the file itself is at most 1 MiB) with room
/// for JSON escaping. Larger bodies are refused with 413 before they are read whole.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What every handler gets: the agent (which also knows the tokens requests are checked
/// against) and the stream caps.
#[derive(Debug, Clone)]
pub struct AppState {
    pub agent: Arc<Agent>,
    /// Log follows (each a journalctl process or a Docker stream) held open.
    follows: StreamCaps,
    /// Event streams held open.
    event_streams: StreamCaps,
}

/// Log follows open at once, in all and per client address: each is a journalctl process or
/// a Docker stream, and the shipped unit's TasksMax (64) must keep room for the agent's own.
pub const MAX_FOLLOWS: usize = 32;
pub const MAX_FOLLOWS_PER_CLIENT: usize = 16;
/// Event streams open at once, in all and per client address (a collector needs one).
pub const MAX_EVENT_STREAMS: usize = 16;
pub const MAX_EVENT_STREAMS_PER_CLIENT: usize = 4;

impl AppState {
    pub fn new(agent: Arc<Agent>) -> Self {
        Self {
            agent,
            follows: StreamCaps::new("log follows", MAX_FOLLOWS, MAX_FOLLOWS_PER_CLIENT),
            event_streams: StreamCaps::new(
                "event streams",
                MAX_EVENT_STREAMS,
                MAX_EVENT_STREAMS_PER_CLIENT,
            ),
        }
    }
}

/// Every error the API answers with, mapped to a status code in exactly one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("no app named {0:?} is configured on this agent; GET /v1/apps lists them")]
    AppNotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no action {0:?}: use start, stop, restart or apply")]
    UnknownAction(String),
    #[error(transparent)]
    Action(#[from] crate::agent::ActionError),
    #[error(transparent)]
    Logs(#[from] crate::agent::LogError),
    #[error(transparent)]
    Env(#[from] crate::agent::EnvAccessError),
    #[error("If-Match is required: send the etag from GET .../env, so a change made meanwhile is not overwritten")]
    PreconditionRequired,
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request body is over the agent's limit of {} KiB", MAX_BODY_BYTES / 1024)]
    TooLarge,
    #[error(transparent)]
    Busy(#[from] CapError),
    #[error("cannot read host metrics: {0}")]
    Host(#[from] crate::host::HostError),
}

impl ApiError {
    /// The HTTP status and the stable code of the error body.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::AppNotFound(_) => (StatusCode::NOT_FOUND, "app_not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::UnknownAction(_) => (StatusCode::NOT_FOUND, "unknown_action"),
            Self::Action(crate::agent::ActionError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "app_not_found")
            }
            Self::Action(crate::agent::ActionError::NotAllowed(_)) => {
                (StatusCode::FORBIDDEN, "actions_not_allowed")
            }
            Self::Action(crate::agent::ActionError::TargetMissing(_)) => {
                (StatusCode::NOT_FOUND, "target_not_found")
            }
            Self::Action(crate::agent::ActionError::CannotApply(_)) => {
                (StatusCode::CONFLICT, "cannot_apply")
            }
            Self::Action(crate::agent::ActionError::Source(_)) => {
                (StatusCode::BAD_GATEWAY, "source_failed")
            }
            Self::Logs(crate::agent::LogError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "app_not_found")
            }
            Self::Logs(crate::agent::LogError::BadCursor(_)) => {
                (StatusCode::BAD_REQUEST, "bad_cursor")
            }
            Self::Logs(crate::agent::LogError::BadQuery(_)) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            Self::Logs(crate::agent::LogError::Search(e)) => {
                use crate::search::SearchError as S;
                match e {
                    S::Invalid { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
                    S::TooLong(_) | S::TooComplex => (StatusCode::BAD_REQUEST, "grep_too_costly"),
                    S::Deadline => (StatusCode::BAD_REQUEST, "search_too_costly"),
                    S::Busy => (StatusCode::TOO_MANY_REQUESTS, "too_many_searches"),
                    S::SlowReader => (StatusCode::REQUEST_TIMEOUT, "client_too_slow"),
                }
            }
            Self::Logs(crate::agent::LogError::Source(_)) => {
                (StatusCode::BAD_GATEWAY, "source_failed")
            }
            Self::Env(e) => {
                use crate::agent::EnvAccessError as E;
                use crate::env_file::EnvError as F;
                match e {
                    E::NotFound(_) => (StatusCode::NOT_FOUND, "app_not_found"),
                    E::NoEnvFile(_) => (StatusCode::NOT_FOUND, "no_env_file"),
                    E::NoBackup { .. } => (StatusCode::NOT_FOUND, "no_backup"),
                    E::File(F::Stale { .. }) => (StatusCode::PRECONDITION_FAILED, "stale_etag"),
                    E::File(F::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_env"),
                    E::File(F::Read { .. }) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "env_read_failed")
                    }
                    E::File(F::Write { .. }) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "env_write_failed")
                    }
                    E::File(F::DiskFull { .. }) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
                    E::File(F::ReadOnly { .. }) => (StatusCode::CONFLICT, "read_only_directory"),
                    E::File(F::Unsafe { rule, .. }) => (StatusCode::CONFLICT, rule.code()),
                }
            }
            Self::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, "if_match_required"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_env"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Busy(CapError::Client { .. }) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_streams")
            }
            Self::Busy(CapError::Global { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams")
            }
            Self::Host(_) => (StatusCode::INTERNAL_SERVER_ERROR, "host_metrics_failed"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, Json(ErrorBody::new(code, self.to_string()))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        let retry_after = match &self {
            Self::Busy(_) => Some("5"),
            Self::Logs(crate::agent::LogError::Search(crate::search::SearchError::Busy)) => {
                Some("2")
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static(secs));
        }
        response
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Fleetdeck agent", description = "Wire contract v1 of fleetdeck-agent."),
    paths(
        healthz,
        openapi_json,
        info::info,
        snapshot::snapshot,
        apps::list,
        apps::one,
        samples::samples,
        events::events,
        actions::act,
        logs::page,
        logs::stream,
        env::get,
        env::put,
        env::backups,
        env::backup,
    ),
    components(schemas(
        fleetdeck_proto::ErrorBody,
        fleetdeck_proto::CheckEvent,
        fleetdeck_proto::SourceEvent
    )),
    modifiers(&BearerAuth, &SseEvents)
)]
#[derive(Debug)]
pub struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let authed = Router::new()
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/info", get(info::info))
        .route("/v1/snapshot", get(snapshot::snapshot))
        .route("/v1/apps", get(apps::list))
        .route("/v1/apps/{app}", get(apps::one))
        .route("/v1/samples", get(samples::samples))
        .route("/v1/events", get(events::events))
        .route("/v1/apps/{app}/actions/{action}", post(actions::act))
        .route("/v1/apps/{app}/env", get(env::get).put(env::put))
        .route("/v1/apps/{app}/env/backups", get(env::backups))
        .route("/v1/apps/{app}/env/backups/{n}", get(env::backup))
        .route("/v1/apps/{app}/logs", get(logs::page))
        .route("/v1/apps/{app}/logs/stream", get(logs::stream))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(authed)
        .fallback(not_found)
        .with_state(state)
}

/// Checks `Authorization: Bearer <token>` in constant time (digests of equal length are compared,
/// so neither the token's content nor its length leaks through timing) against each accepted
/// token: `token_file`'s, and `next_token_file`'s during a rotation.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented =
        fleetdeck_daemon::http::bearer(request.headers()).map(|t| Sha256::digest(t.as_bytes()));
    match presented {
        Some(digest) if state.agent.token_accepted(digest.as_slice()) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// The key a client's streams are counted under: its address.
fn client_key(peer: &ConnectInfo<SocketAddr>) -> String {
    peer.0.ip().to_string()
}

/// Liveness: `ok`, without auth.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the agent runs", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI document"), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

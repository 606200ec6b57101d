//! The collector's HTTP API: routing, API-key auth with roles, the one error shape and the OpenAPI
//! document. Handlers are adapters over [`crate::store`] and the agents' clients; one file per
//! resource: [`fleet`] (fleet, hosts, metrics, uptime), [`events`], [`proxy`] (logs, `.env`,
//! actions, passed to the agent), [`search`] (one log search over many apps' agents) and
//! [`admin`] (keys, audit). [`revoke`] ends a deleted key's open streams.

mod admin;
mod alerts;
pub mod cluster;
mod events;
mod fleet;
pub mod metrics;
mod proxy;
pub mod revoke;
mod search;

use fleetdeck_daemon::caps::{CapError, StreamCaps};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetdeck_daemon::http::{not_found, BearerAuth, SseEvents};
use fleetdeck_proto::{ErrorBody, Role};
use utoipa::OpenApi;

use crate::bounded::human;
use crate::config::Retention;
use crate::poll::{Agent, Roster};
use crate::store::keys::{self, Caller};
use crate::store::{now_ms, Store, StoreError};

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub agents: Roster,
    /// Which history tables still hold a time range.
    pub retention: Retention,
    /// Deleted keys: their open streams end.
    pub revocations: revoke::Revocations,
    /// Event streams held open, in all and per key.
    event_streams: StreamCaps,
    /// Proxied log follows held open, in all and per key.
    follows: StreamCaps,
    /// The alerting task's open problems (`Fleet::problems`).
    pub problems: crate::alerting::SharedProblems,
    /// The threshold rules firing now (`Fleet::problems` of kind `threshold`).
    pub thresholds: crate::alerting::thresholds::OpenThresholds,
    /// Where alerts go, for listing and testing; and the client that posts to them.
    pub channels: Arc<std::sync::RwLock<Vec<crate::alerting::route::Channel>>>,
    pub http: reqwest::Client,
    /// The alert policy in force (replaced on reload): the fleet tells the desktop.
    pub alert_policy: Arc<std::sync::RwLock<crate::alerting::AlertPolicy>>,
    /// `GET /metrics`'s token (`[metrics] token_file`; replaced on reload); none: metrics off.
    pub scrape_token: metrics::ScrapeToken,
    /// This collector's role on its database (`GET /v1/cluster`).
    pub cluster: cluster::ClusterView,
}

/// How often open streams check that their key still exists, whoever deleted it (a key deleted
/// through the API ends its streams at once; one deleted at the command line within this).
pub const KEY_RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// Event streams open at once, in all and per API key (a desktop holds one per collector).
pub const MAX_EVENT_STREAMS: usize = 1024;
pub const MAX_EVENT_STREAMS_PER_KEY: usize = 32;
/// Proxied log follows open at once: in all, per API key, and per host.
pub const MAX_FOLLOWS: usize = 256;
pub const MAX_FOLLOWS_PER_KEY: usize = 16;
pub use crate::poll::MAX_FOLLOWS_PER_HOST;

impl AppState {
    pub fn new(store: Store, agents: Roster, retention: Retention) -> Self {
        Self {
            store,
            agents,
            retention,
            revocations: revoke::Revocations::default(),
            event_streams: StreamCaps::new(
                "event streams",
                MAX_EVENT_STREAMS,
                MAX_EVENT_STREAMS_PER_KEY,
            ),
            follows: StreamCaps::new("log follows", MAX_FOLLOWS, MAX_FOLLOWS_PER_KEY),
            problems: crate::alerting::problems::shared(),
            thresholds: Default::default(),
            channels: Arc::default(),
            http: reqwest::Client::new(),
            alert_policy: Arc::default(),
            scrape_token: metrics::ScrapeToken::default(),
            cluster: cluster::ClusterView::default(),
        }
    }

    pub fn policy(&self) -> crate::alerting::AlertPolicy {
        self.alert_policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells the desktop this alert policy (the one the alerting task runs).
    pub fn with_policy(mut self, policy: crate::alerting::AlertPolicy) -> Self {
        self.alert_policy = Arc::new(std::sync::RwLock::new(policy));
        self
    }

    /// Lists and tests these channels, posting with `http`.
    pub fn with_channels(
        mut self,
        channels: Vec<crate::alerting::route::Channel>,
        http: reqwest::Client,
    ) -> Self {
        self.channels = Arc::new(std::sync::RwLock::new(channels));
        self.http = http;
        self
    }

    /// Lists the open problems of this map (the alerting task's) in `GET /v1/fleet`.
    pub fn with_problems(
        mut self,
        problems: crate::alerting::SharedProblems,
        thresholds: crate::alerting::thresholds::OpenThresholds,
    ) -> Self {
        self.problems = problems;
        self.thresholds = thresholds;
        self
    }

    fn agent(&self, host: &str) -> Result<Arc<Agent>, ApiError> {
        self.agents
            .get(host)
            .ok_or_else(|| ApiError::HostNotFound(host.to_owned()))
    }
}

/// Every error the API answers with, mapped to a status code in exactly one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("this needs the {needed} role; your key {key:?} is {has}")]
    Forbidden {
        key: String,
        has: &'static str,
        needed: &'static str,
    },
    #[error("no host named {0:?}; GET /v1/fleet lists them")]
    HostNotFound(String),
    #[error("host {host:?} has no app named {app:?}; GET /v1/hosts/{host} lists them")]
    AppNotFound { host: String, app: String },
    #[error("no key named {0:?}")]
    KeyNotFound(String),
    #[error("no alert with id {0}; GET /v1/alerts lists them")]
    AlertNotFound(i64),
    #[error("no silence with id {0} in force or to come; GET /v1/silences lists them")]
    SilenceNotFound(i64),
    #[error("no channel named {0:?}; GET /v1/channels lists them")]
    ChannelNotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the agent of {host:?} did not answer: {error}")]
    AgentUnreachable { host: String, error: String },
    #[error("the agent of {0:?} refused the collector's token: check that host's token_file in collector.toml")]
    AgentAuth(String),
    #[error("the agent of {host:?} sent an answer the collector refuses: {error}")]
    AgentBadAnswer { host: String, error: String },
    #[error("the request body is larger than {}, this route's limit: send less", human(*.0))]
    BodyTooLarge(usize),
    #[error("metrics are off: set [metrics] token_file in collector.toml (a 0600 file holding the token your Prometheus presents) and reload")]
    MetricsOff,
    #[error("{0}")]
    Internal(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Busy(#[from] CapError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::HostNotFound(_) => (StatusCode::NOT_FOUND, "host_not_found"),
            Self::AppNotFound { .. } => (StatusCode::NOT_FOUND, "app_not_found"),
            Self::KeyNotFound(_) => (StatusCode::NOT_FOUND, "key_not_found"),
            Self::AlertNotFound(_) => (StatusCode::NOT_FOUND, "alert_not_found"),
            Self::SilenceNotFound(_) => (StatusCode::NOT_FOUND, "silence_not_found"),
            Self::ChannelNotFound(_) => (StatusCode::NOT_FOUND, "channel_not_found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::AgentUnreachable { .. } => (StatusCode::BAD_GATEWAY, "agent_unreachable"),
            Self::AgentAuth(_) => (StatusCode::BAD_GATEWAY, "agent_auth_failed"),
            Self::AgentBadAnswer { .. } => (StatusCode::BAD_GATEWAY, "agent_bad_answer"),
            Self::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::MetricsOff => (StatusCode::NOT_FOUND, "metrics_off"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Store(StoreError::Invalid(_)) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Store(StoreError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Self::Store(StoreError::NotLeader) => (StatusCode::SERVICE_UNAVAILABLE, "not_leader"),
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "database_failed"),
            Self::Busy(CapError::Client { .. }) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_streams")
            }
            Self::Busy(CapError::Global { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams")
            }
        };
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
        if matches!(self, Self::Busy(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

/// The most a request body may hold, but on `PUT .../env` ([`proxy::MAX_ENV_BODY`]).
pub const MAX_BODY: usize = 64 * 1024;

/// A body the handler could not take: too large (413, naming `limit`), or not what the route
/// reads (400, with the extractor's reason and `hint`).
fn body_rejected(status: StatusCode, text: String, limit: usize, hint: &str) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge(limit)
    } else {
        ApiError::BadRequest(format!("{text}{hint}"))
    }
}

/// The caller must hold at least `role`.
fn require(caller: &Caller, role: Role) -> Result<(), ApiError> {
    if caller.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            key: caller.name.clone(),
            has: caller.role.as_str(),
            needed: role.as_str(),
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Fleetdeck collector", description = "The API of fleetdeck-collector: the fleet, history, uptime, events, and logs, .env and actions proxied to agents."),
    paths(
        healthz,
        openapi_json,
        metrics::metrics,
        fleet::fleet,
        fleet::host,
        fleet::metrics,
        fleet::app_metrics,
        fleet::uptime,
        events::list,
        events::stream,
        proxy::logs,
        proxy::logs_stream,
        search::search,
        proxy::env_backups,
        proxy::env_backup,
        proxy::env_get,
        proxy::env_put,
        proxy::action,
        admin::audit,
        admin::keys,
        admin::create_key,
        admin::delete_key,
        alerts::list,
        alerts::ack,
        alerts::silences,
        alerts::create_silence,
        alerts::delete_silence,
        alerts::channels,
        alerts::test_channel,
        cluster::cluster,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth, &SseEvents)
)]
#[derive(Debug)]
pub struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let authed = Router::new()
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/fleet", get(fleet::fleet))
        .route("/v1/hosts/{host}", get(fleet::host))
        .route("/v1/hosts/{host}/metrics", get(fleet::metrics))
        .route(
            "/v1/hosts/{host}/apps/{app}/metrics",
            get(fleet::app_metrics),
        )
        .route("/v1/hosts/{host}/apps/{app}/uptime", get(fleet::uptime))
        .route("/v1/hosts/{host}/apps/{app}/logs", get(proxy::logs))
        .route(
            "/v1/hosts/{host}/apps/{app}/logs/stream",
            get(proxy::logs_stream),
        )
        .route(
            "/v1/hosts/{host}/apps/{app}/env",
            get(proxy::env_get)
                .put(proxy::env_put)
                .layer(DefaultBodyLimit::max(proxy::MAX_ENV_BODY)),
        )
        .route(
            "/v1/hosts/{host}/apps/{app}/env/backups",
            get(proxy::env_backups),
        )
        .route(
            "/v1/hosts/{host}/apps/{app}/env/backups/{n}",
            get(proxy::env_backup),
        )
        .route(
            "/v1/hosts/{host}/apps/{app}/actions/{action}",
            post(proxy::action),
        )
        .route("/v1/logs/search", get(search::search))
        .route("/v1/events", get(events::list))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/audit", get(admin::audit))
        .route("/v1/keys", get(admin::keys).post(admin::create_key))
        .route("/v1/keys/{name}", axum::routing::delete(admin::delete_key))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/{id}/ack", post(alerts::ack))
        .route(
            "/v1/silences",
            get(alerts::silences).post(alerts::create_silence),
        )
        .route(
            "/v1/silences/{id}",
            axum::routing::delete(alerts::delete_silence),
        )
        .route("/v1/channels", get(alerts::channels))
        .route("/v1/channels/{name}/test", post(alerts::test_channel))
        .route("/v1/cluster", get(cluster::cluster))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .route("/healthz", get(healthz))
        // Its own token, not an API key: outside `require_key`.
        .route("/metrics", get(metrics::metrics))
        .merge(authed)
        .fallback(not_found)
        .with_state(state)
}

/// Finds the key of `Authorization: Bearer KEY` (by its digest) and hands the caller to the handler.
async fn require_key(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let presented = fleetdeck_daemon::http::bearer(request.headers()).map(str::to_owned);
    let Some(key) = presented else {
        return ApiError::Unauthorized.into_response();
    };
    let found = state
        .store
        .with_conn(move |conn| keys::lookup(conn, &key, now_ms()))
        .await;
    match found {
        Ok(Some(caller)) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(e) => ApiError::Store(e).into_response(),
    }
}

/// Liveness: `ok`, without a key.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the collector runs", body = String)))]
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

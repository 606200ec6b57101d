//! Logs, `.env` and actions, passed through to the host's agent: the desktop only ever talks to
//! the collector. The agent's answer (status, body, error shape) is returned as it is; a mutation
//! is audited with the caller's key name, the target and the result, never a value.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use fleetdeck_proto::{
    ActionOutcome, AppAction, EnvFile, EnvUpdate, EnvWritten, ErrorBody, LogEntry, LogPage, Role,
};
use reqwest::Method;
use std::time::Duration;

use super::{require, ApiError, AppState};
use crate::agent_client::describe;
use crate::store::keys::Caller;
use crate::store::{audit, now_ms};

/// The largest `.env` write passed on (the agent refuses files over 1 MiB).
const MAX_ENV_BODY: usize = 2 * 1024 * 1024;

fn app_path(app: &str, rest: &str) -> Result<String, ApiError> {
    // Host and app names reach the agent's URL: keep them to the names the agents allow.
    if !crate::config::valid_name(app) {
        return Err(ApiError::BadRequest(format!("{app:?} is not an app name")));
    }
    Ok(format!("/v1/apps/{app}{rest}"))
}

/// How long a proxied request may take: actions wait for systemd's job (up to 90 s on the agent).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const ACTION_TIMEOUT: Duration = Duration::from_secs(100);
/// How long a stream may take to answer with its headers (then it runs as long as it lives).
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How a proxied request is bounded.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Request(Duration),
    Stream,
}

/// Sends a request to the host's agent and turns its answer into ours.
async fn pass(
    state: &AppState,
    host: &str,
    request: impl FnOnce(&crate::agent_client::AgentClient) -> reqwest::RequestBuilder,
    kind: Kind,
) -> Result<Response, ApiError> {
    let agent = state.agent(host)?;
    let unreachable = |error: String| ApiError::AgentUnreachable {
        host: host.to_owned(),
        error,
    };
    let request = request(&agent.client);
    let resp = match kind {
        Kind::Request(limit) => request.timeout(limit).send().await,
        Kind::Stream => tokio::time::timeout(STREAM_OPEN_TIMEOUT, request.send())
            .await
            .map_err(|_| unreachable("timed out".into()))?,
    }
    .map_err(|e| unreachable(describe(&e)))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        // The collector's token for this agent is wrong: not the caller's key.
        return Err(ApiError::AgentAuth(host.to_owned()));
    }
    let stream = matches!(kind, Kind::Stream);
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let etag = resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let body = if stream && status.is_success() {
        // The agent's stream lives inside ours: a client that leaves drops it, and the agent frees
        // its follower at once.
        Body::from_stream(resp.bytes_stream())
    } else {
        Body::from(resp.bytes().await.map_err(|e| ApiError::AgentUnreachable {
            host: host.to_owned(),
            error: describe(&e),
        })?)
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if stream {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(response)
}

async fn record(state: &AppState, caller: &Caller, action: String, target: String, result: String) {
    let key = caller.name.clone();
    let stored = state
        .store
        .with_conn(move |conn| audit::record(conn, &key, &action, &target, &result, now_ms()))
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

fn outcome(result: &Result<Response, ApiError>) -> String {
    match result {
        Ok(r) if r.status().is_success() => format!("ok ({})", r.status().as_u16()),
        Ok(r) => format!("refused by the agent ({})", r.status().as_u16()),
        Err(e) => format!("failed: {e}"),
    }
}

/// A page of the app's logs from its agent (same parameters as the agent's).
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/logs",
    params(
        ("host" = String, Path), ("app" = String, Path),
        ("limit" = Option<usize>, Query), ("before" = Option<String>, Query),
        ("grep" = Option<String>, Query), ("priority" = Option<String>, Query)
    ),
    responses(
        (status = 200, body = LogPage),
        (status = 400, description = "not an app name, or a parameter the agent refuses", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn logs(
    State(state): State<AppState>,
    Path((host, app)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut path = app_path(&app, "/logs")?;
    if let Some(q) = query {
        path.push('?');
        path.push_str(&q);
    }
    pass(
        &state,
        &host,
        |c| c.request(Method::GET, &path),
        Kind::Request(REQUEST_TIMEOUT),
    )
    .await
}

/// Follows the app's logs (SSE from the agent, passed through; `Last-Event-ID` resumes).
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/logs/stream",
    params(("host" = String, Path), ("app" = String, Path), ("Last-Event-ID" = Option<String>, Header)),
    responses(
        (status = 200, description = "an SSE stream of log entries", content_type = "text/event-stream", body = LogEntry),
        (status = 400, description = "not an app name", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn logs_stream(
    State(state): State<AppState>,
    Path((host, app)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = app_path(&app, "/logs/stream")?;
    let last = headers.get("last-event-id").cloned();
    pass(
        &state,
        &host,
        |c| {
            let req = c.request(Method::GET, &path);
            match last {
                Some(id) => req.header("last-event-id", id.as_bytes()),
                None => req,
            }
        },
        Kind::Stream,
    )
    .await
}

/// The agent's 409 on its `.env` routes, passed through.
const AGENT_ENV_CONFLICT: &str = "the agent refused: where the file lies breaks a rule named by the code (env_file_symlink, env_file_link_outside, env_file_dir_writable); nothing was read or written";

/// The app's `.env` (operator or admin: a viewer never reads values).
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/env",
    params(("host" = String, Path), ("app" = String, Path)),
    responses(
        (status = 200, body = EnvFile), (status = 400, description = "not an app name", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = AGENT_ENV_CONFLICT, body = ErrorBody),
        (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn env_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require(&caller, Role::Operator)?;
    let path = app_path(&app, "/env")?;
    pass(
        &state,
        &host,
        |c| c.request(Method::GET, &path),
        Kind::Request(REQUEST_TIMEOUT),
    )
    .await
}

/// Edits the app's `.env` through its agent; `If-Match` passes through (428 without, 412 stale).
#[utoipa::path(
    put,
    path = "/v1/hosts/{host}/apps/{app}/env",
    params(("host" = String, Path), ("app" = String, Path), ("If-Match" = String, Header)),
    request_body = EnvUpdate,
    responses(
        (status = 200, body = EnvWritten),
        (status = 409, description = AGENT_ENV_CONFLICT, body = ErrorBody),
        (status = 400, description = "not an app name, or an update over 2 MiB", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 428, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 507, description = "the agent's disk is full; the file is unchanged", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn env_put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = format!("{host}/{app}");
    // Which keys an edit touches is audited; their values never are.
    let what = match serde_json::from_slice::<EnvUpdate>(&body) {
        Ok(u) if u.raw.is_some() => "env.write (whole file)".to_owned(),
        Ok(u) => {
            let keys: Vec<String> = u
                .set
                .keys()
                .map(|k| format!("set {k}"))
                .chain(u.unset.iter().map(|k| format!("unset {k}")))
                .collect();
            format!("env.write ({})", keys.join(", "))
        }
        Err(_) => "env.write (unreadable body)".to_owned(),
    };
    if let Err(e) = require(&caller, Role::Operator) {
        record(&state, &caller, what, target, "denied".into()).await;
        return Err(e);
    }
    if body.len() > MAX_ENV_BODY {
        return Err(ApiError::BadRequest("the .env update is over 2 MiB".into()));
    }
    let path = app_path(&app, "/env")?;
    let if_match = headers.get(header::IF_MATCH).cloned();
    let result = pass(
        &state,
        &host,
        |c| {
            let req = c
                .request(Method::PUT, &path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            match if_match {
                Some(v) => req.header(reqwest::header::IF_MATCH, v.as_bytes()),
                None => req,
            }
        },
        Kind::Request(REQUEST_TIMEOUT),
    )
    .await;
    record(&state, &caller, what, target, outcome(&result)).await;
    result
}

/// Starts, stops or restarts the app through its agent.
#[utoipa::path(
    post,
    path = "/v1/hosts/{host}/apps/{app}/actions/{action}",
    params(("host" = String, Path), ("app" = String, Path), ("action" = AppAction, Path, description = "start, stop or restart")),
    responses(
        (status = 200, body = ActionOutcome),
        (status = 400, description = "not an app name, or not start, stop or restart", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn action(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app, action)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let target = format!("{host}/{app}");
    let what = format!("app.{action}");
    if let Err(e) = require(&caller, Role::Operator) {
        record(&state, &caller, what, target, "denied".into()).await;
        return Err(e);
    }
    if !matches!(action.as_str(), "start" | "stop" | "restart") {
        record(&state, &caller, what, target, "invalid action".into()).await;
        return Err(ApiError::BadRequest(format!(
            "no action {action:?}: use start, stop or restart"
        )));
    }
    let path = app_path(&app, &format!("/actions/{action}"))?;
    let result = pass(
        &state,
        &host,
        |c| c.request(Method::POST, &path),
        Kind::Request(ACTION_TIMEOUT),
    )
    .await;
    record(&state, &caller, what, target, outcome(&result)).await;
    result
}

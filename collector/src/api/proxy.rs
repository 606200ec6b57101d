//! Logs, `.env` and actions, passed through to the host's agent: the desktop only ever talks to
//! the collector. The agent's answer (status, body, error shape) is returned as it is, read with a
//! byte cap and a deadline ([`crate::bounded`]); a redirect is refused, never followed. A mutation
//! and a read of `.env` values are audited with the caller's key (id and name), a validated target
//! and the result, never a value; the role is checked before anything from the request is kept.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use fleetdeck_proto::{
    ActionOutcome, AppAction, EnvBackups, EnvFile, EnvUpdate, EnvWritten, ErrorBody, LogEntry,
    LogPage, Role,
};
use reqwest::Method;
use std::time::Duration;

use super::{body_rejected, require, ApiError, AppState};
use crate::agent_client::{describe, location};
use crate::bounded::{
    read_body, BodyError, BoundedEvents, MAX_ERROR_BODY, MAX_PROXIED_BODY, MAX_SSE_EVENT,
};
use crate::config::valid_name;
use crate::store::audit::{self, Who};
use crate::store::keys::Caller;
use crate::store::now_ms;

/// The largest `.env` write passed on (the agent refuses files over 1 MiB).
pub const MAX_ENV_BODY: usize = 2 * 1024 * 1024;
/// The most `.env` keys an audit entry names (the others are counted), and the longest name kept.
const MAX_AUDITED_KEYS: usize = 16;
const MAX_AUDITED_KEY_BYTES: usize = 128;

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
    /// A follow: it runs as long as the client and the caller's key live.
    Stream {
        key_id: i64,
    },
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
    let bad_answer = |error: String| ApiError::AgentBadAnswer {
        host: host.to_owned(),
        error,
    };
    let request = request(&agent.client);
    let resp = match kind {
        // reqwest's timeout covers the body: an answer trickling in is cut at the deadline.
        Kind::Request(limit) => request.timeout(limit).send().await,
        Kind::Stream { .. } => tokio::time::timeout(STREAM_OPEN_TIMEOUT, request.send())
            .await
            .map_err(|_| unreachable("timed out".into()))?,
    }
    .map_err(|e| unreachable(describe(&e)))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        // The collector's token for this agent is wrong: not the caller's key.
        return Err(ApiError::AgentAuth(host.to_owned()));
    }
    if resp.status().is_redirection() {
        return Err(bad_answer(format!(
            "a redirect (HTTP {}) to {:?}, which the collector never follows",
            resp.status().as_u16(),
            location(&resp)
        )));
    }
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
    let read = |e: BodyError| match e {
        BodyError::TooLarge(_) => bad_answer(e.to_string()),
        BodyError::Transport(t) => unreachable(t),
    };
    let body = match kind {
        // The agent's stream lives inside ours: a client that leaves drops it, and the agent
        // frees its follower at once. One event over the cap, or the key's deletion, ends it.
        Kind::Stream { key_id } if status.is_success() => {
            Body::from_stream(state.revocations.until_revoked(
                BoundedEvents::new(resp.bytes_stream(), MAX_SSE_EVENT),
                state.store.clone(),
                key_id,
            ))
        }
        // A stream's error answer has no deadline of its own: it gets one.
        Kind::Stream { .. } => Body::from(
            tokio::time::timeout(REQUEST_TIMEOUT, read_body(resp, MAX_ERROR_BODY))
                .await
                .map_err(|_| unreachable("timed out".into()))?
                .map_err(read)?,
        ),
        Kind::Request(_) => Body::from(read_body(resp, MAX_PROXIED_BODY).await.map_err(read)?),
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if matches!(kind, Kind::Stream { .. }) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(response)
}

/// The audit target of a request: `host/app` when both are names, else a mark (nothing unvalidated
/// from a request is kept).
fn audit_target(host: &str, app: &str) -> String {
    if valid_name(host) && valid_name(app) {
        format!("{host}/{app}")
    } else {
        "(not a valid host or app name)".to_owned()
    }
}

/// What an `.env` update touches, for the audit: at most [`MAX_AUDITED_KEYS`] valid key names
/// (each at most [`MAX_AUDITED_KEY_BYTES`]), the rest counted. Never a value.
fn describe_env_update(body: &[u8]) -> String {
    let update = match serde_json::from_slice::<EnvUpdate>(body) {
        Ok(u) if u.raw.is_some() => return "env.write (whole file)".to_owned(),
        Ok(u) => u,
        Err(_) => return "env.write (unreadable body)".to_owned(),
    };
    let touched = update
        .set
        .keys()
        .map(|k| ("set", k))
        .chain(update.unset.iter().map(|k| ("unset", k)));
    let (mut named, mut more, mut invalid) = (Vec::new(), 0usize, 0usize);
    for (verb, key) in touched {
        if !valid_env_key(key) {
            invalid += 1;
        } else if named.len() < MAX_AUDITED_KEYS {
            named.push(format!("{verb} {key}"));
        } else {
            more += 1;
        }
    }
    if more > 0 {
        named.push(format!("{more} more keys"));
    }
    if invalid > 0 {
        named.push(format!("{invalid} invalid key names"));
    }
    format!("env.write ({})", named.join(", "))
}

/// A key name as the agent accepts it (`[A-Za-z_][A-Za-z0-9_.]*`), short enough to audit.
fn valid_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= MAX_AUDITED_KEY_BYTES
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

async fn record(state: &AppState, caller: &Caller, action: String, target: String, result: String) {
    let who = Who::from(caller);
    let stored = state
        .store
        .with_conn(move |conn| audit::record(conn, &who, &action, &target, &result, now_ms()))
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

fn outcome(result: &Result<Response, ApiError>) -> String {
    match result {
        Ok(r) if r.status().is_success() => format!("ok ({})", r.status().as_u16()),
        Ok(r) => format!("refused by the agent ({})", r.status().as_u16()),
        Err(e) => outcome_of(e),
    }
}

fn outcome_of(e: &ApiError) -> String {
    format!("failed: {e}")
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

/// Follows the app's logs (SSE from the agent, passed through; `Last-Event-ID` resumes). It ends
/// when an event is over 1 MiB or the key is deleted.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/logs/stream",
    params(("host" = String, Path), ("app" = String, Path), ("Last-Event-ID" = Option<String>, Header)),
    responses(
        (status = 200, description = "an SSE stream of log entries", content_type = "text/event-stream", body = LogEntry),
        (status = 400, description = "not an app name", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "this key holds as many log follows as one key may (16); Retry-After says when to retry", body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, description = "the collector serves as many log follows as it will, in all (256) or of this host (16); Retry-After says when to retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn logs_stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let path = app_path(&app, "/logs/stream")?;
    let agent = state.agent(&host)?;
    let slots = [
        state.follows.take(&caller.id.to_string())?,
        agent.follows.take("")?,
    ];
    let last = headers.get("last-event-id").cloned();
    let response = pass(
        &state,
        &host,
        |c| {
            let req = c.request(Method::GET, &path);
            match last {
                Some(id) => req.header("last-event-id", id.as_bytes()),
                None => req,
            }
        },
        Kind::Stream { key_id: caller.id },
    )
    .await?;
    // The slots live as long as the body that is passed on.
    Ok(response.map(|body| {
        Body::from_stream(futures_util::StreamExt::map(
            body.into_data_stream(),
            move |chunk| {
                let _slots = &slots;
                chunk
            },
        ))
    }))
}

/// The agent's 409 on its `.env` routes, passed through.
const AGENT_ENV_CONFLICT: &str = "the agent refused: where the file lies breaks a rule named by the code (env_file_symlink, env_file_link_outside, env_file_dir_writable); nothing was read or written";

/// The app's `.env` (operator or admin: a viewer never reads values). Every read is audited
/// (who, which host and app; never a value), refused ones too.
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
    env_read(&state, &caller, &host, &app, "/env", "env.read".to_owned()).await
}

/// Reads what of the app's `.env` `rest` names through its agent (operator or admin: it holds
/// values), audited as `what` whatever the answer, a refusal too.
async fn env_read(
    state: &AppState,
    caller: &Caller,
    host: &str,
    app: &str,
    rest: &str,
    what: String,
) -> Result<Response, ApiError> {
    let target = audit_target(host, app);
    if let Err(e) = require(caller, Role::Operator) {
        record(state, caller, what, target, "denied".into()).await;
        return Err(e);
    }
    let result = match app_path(app, rest) {
        Ok(path) => {
            pass(
                state,
                host,
                |c| c.request(Method::GET, &path),
                Kind::Request(REQUEST_TIMEOUT),
            )
            .await
        }
        Err(e) => Err(e),
    };
    record(state, caller, what, target, outcome(&result)).await;
    result
}

/// Edits the app's `.env` through its agent; `If-Match` passes through (428 without, 412 stale).
#[utoipa::path(
    put,
    path = "/v1/hosts/{host}/apps/{app}/env",
    params(("host" = String, Path), ("app" = String, Path), ("If-Match" = String, Header), EnvPutParams),
    request_body = EnvUpdate,
    responses(
        (status = 200, body = EnvWritten),
        (status = 409, description = AGENT_ENV_CONFLICT, body = ErrorBody),
        (status = 400, description = "not an app name", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 413, description = "the update is over 2 MiB", body = ErrorBody),
        (status = 428, body = ErrorBody), (status = 502, body = ErrorBody),
        (status = 507, description = "the agent's disk is full; the file is unchanged", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn env_put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app)): Path<(String, String)>,
    put: Result<Query<EnvPutParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let target = audit_target(&host, &app);
    let Query(put) = put.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Err(e) = require(&caller, Role::Operator) {
        // Refused: nothing of the body is looked at, let alone kept.
        record(&state, &caller, "env.write".into(), target, "denied".into()).await;
        return Err(e);
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            let e = body_rejected(e.status(), e.body_text(), MAX_ENV_BODY, "");
            record(&state, &caller, "env.write".into(), target, outcome_of(&e)).await;
            return Err(e);
        }
    };
    // Which keys an edit touches is audited (bounded); their values never are.
    let mut what = describe_env_update(&body);
    if let Some(n) = put.restoring.filter(|n| (1..=MAX_BACKUP).contains(n)) {
        what = format!("{what}, restoring backup {n}");
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

/// The highest backup number an agent keeps.
const MAX_BACKUP: u32 = 3;

/// `PUT .../env`'s query: what the audit says of the write.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EnvPutParams {
    /// The write puts back backup N (its `raw`): the audit entry says so.
    restoring: Option<u32>,
}

/// The backups the app's agent keeps of its `.env` (operator or admin), newest first.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/env/backups",
    params(("host" = String, Path), ("app" = String, Path)),
    responses(
        (status = 200, body = EnvBackups), (status = 400, description = "not an app name", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = AGENT_ENV_CONFLICT, body = ErrorBody),
        (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn env_backups(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require(&caller, Role::Operator)?;
    let path = app_path(&app, "/env/backups")?;
    pass(
        &state,
        &host,
        |c| c.request(Method::GET, &path),
        Kind::Request(REQUEST_TIMEOUT),
    )
    .await
}

/// Backup `n` of the app's `.env` (operator or admin: it holds values). Audited as a read.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/env/backups/{n}",
    params(("host" = String, Path), ("app" = String, Path), ("n" = u32, Path, description = "1 is the newest")),
    responses(
        (status = 200, body = EnvFile), (status = 400, description = "not an app name or a backup number", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = AGENT_ENV_CONFLICT, body = ErrorBody),
        (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn env_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app, n)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let n: u32 = n
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("backup {n:?}: a number from 1 (the newest)")))?;
    let (rest, what) = (
        format!("/env/backups/{n}"),
        format!("env.read (backup {n})"),
    );
    env_read(&state, &caller, &host, &app, &rest, what).await
}

/// Starts, stops or restarts the app through its agent.
#[utoipa::path(
    post,
    path = "/v1/hosts/{host}/apps/{app}/actions/{action}",
    params(("host" = String, Path), ("app" = String, Path), ("action" = AppAction, Path, description = "start, stop, restart or apply")),
    responses(
        (status = 200, body = ActionOutcome),
        (status = 400, description = "not an app name, or not start, stop, restart or apply", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "apply: the agent cannot make the app's .env take effect as it reads it", body = ErrorBody),
        (status = 502, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn action(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((host, app, action)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let target = audit_target(&host, &app);
    let known = matches!(action.as_str(), "start" | "stop" | "restart" | "apply");
    let what = if known {
        format!("app.{action}")
    } else {
        "app.(not an action)".to_owned()
    };
    if let Err(e) = require(&caller, Role::Operator) {
        record(&state, &caller, what, target, "denied".into()).await;
        return Err(e);
    }
    if !known {
        record(&state, &caller, what, target, "invalid action".into()).await;
        return Err(ApiError::BadRequest(format!(
            "no action {:?}: use start, stop, restart or apply",
            audit::bounded(&action, 64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_update_is_audited_by_bounded_valid_key_names() {
        let many: serde_json::Map<String, serde_json::Value> = (0..20)
            .map(|i| (format!("K{i:02}"), serde_json::Value::from("v")))
            .collect();
        let many = serde_json::json!({ "set": many }).to_string();
        let long = "A".repeat(MAX_AUDITED_KEY_BYTES + 1);
        let cases: Vec<(String, String)> = vec![
            (
                r#"{"set":{"PORT":"1"},"unset":["OLD"]}"#.into(),
                "env.write (set PORT, unset OLD)".into(),
            ),
            (r#"{"raw":"A=1\n"}"#.into(), "env.write (whole file)".into()),
            ("not json".into(), "env.write (unreadable body)".into()),
            (
                format!(r#"{{"set":{{"{long}":"1","a b":"2","ok.name":"3"}}}}"#),
                "env.write (set ok.name, 2 invalid key names)".into(),
            ),
            (
                many,
                format!(
                    "env.write ({}, 4 more keys)",
                    (0..16)
                        .map(|i| format!("set K{i:02}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(describe_env_update(body.as_bytes()), want, "{body:.80}");
        }
    }

    #[test]
    fn audit_targets_are_names_or_a_mark() {
        assert_eq!(audit_target("vm-1", "web"), "vm-1/web");
        assert_eq!(
            audit_target(&"h".repeat(65), "web"),
            "(not a valid host or app name)"
        );
        assert_eq!(
            audit_target("vm-1", "../x"),
            "(not a valid host or app name)"
        );
    }
}

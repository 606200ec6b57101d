//! The alert history, acknowledgements and silences.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use fleetdeck_proto::{
    AlertAck, AlertPage, AlertRecord, AlertState, ChannelInfo, ChannelTest, ErrorBody, NewSilence,
    Role, Severity, Silence,
};
use serde::Deserialize;

use super::{body_rejected, require, ApiError, AppState, MAX_BODY};
use crate::alerting::silence::{self, MAX_TEXT};
use crate::store::alerts::{self, AckError, Filter};
use crate::store::audit::{self as audit_log, Who};
use crate::store::keys::Caller;
use crate::store::now_ms;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertsParams {
    /// `open`, `acknowledged` or `resolved`; default all, open first.
    state: Option<String>,
    /// A glob over host names.
    host: Option<String>,
    /// A glob over app names.
    app: Option<String>,
    /// `warning` or `critical`.
    severity: Option<String>,
    /// RFC 3339: only alerts that started at or after.
    since: Option<String>,
    /// RFC 3339: only alerts that started before.
    before: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Alerts per page (default 200, at most 1000); a page also stops at 1 MiB.
    limit: Option<usize>,
}

/// The alert history (viewer): each alert with its subject, severity, message and context, when
/// it started, was acknowledged (by whom) and resolved, and its deliveries per channel. Open
/// alerts first, then acknowledged, then resolved; newest first within each.
#[utoipa::path(
    get,
    path = "/v1/alerts",
    params(AlertsParams),
    responses((status = 200, body = AlertPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<AlertsParams>, QueryRejection>,
) -> Result<Json<AlertPage>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = Filter {
        state: p
            .state
            .as_deref()
            .map(|s| {
                AlertState::parse(s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`state` = {s:?}: use open, acknowledged or resolved"
                    ))
                })
            })
            .transpose()?,
        host: p.host.map(|g| glob("host", g)).transpose()?,
        app: p.app.map(|g| glob("app", g)).transpose()?,
        severity: p
            .severity
            .as_deref()
            .map(|s| {
                Severity::parse(s).ok_or_else(|| {
                    ApiError::BadRequest(format!("`severity` = {s:?}: use warning or critical"))
                })
            })
            .transpose()?,
        since_ms: p
            .since
            .as_deref()
            .map(|s| super::events::parse_time("since", s))
            .transpose()?,
        before_ms: p
            .before
            .as_deref()
            .map(|s| super::events::parse_time("before", s))
            .transpose()?,
        cursor: p.cursor,
        limit: p.limit,
    };
    let page = state
        .store
        .with_conn(move |conn| alerts::page(conn, &filter, now_ms()))
        .await?;
    Ok(Json(page))
}

fn glob(field: &str, g: String) -> Result<String, ApiError> {
    let ok = !g.is_empty()
        && g.len() <= silence::MAX_GLOB
        && g.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '*' | '?'));
    if ok {
        Ok(g)
    } else {
        Err(ApiError::BadRequest(format!(
            "`{field}` must be a name or a glob over names (* any run, ? one character), at most {} bytes",
            silence::MAX_GLOB
        )))
    }
}

/// Acknowledges an open alert (operator): "I'm on it", with the key's name and an optional
/// note; audited. Resolution comes by itself when the subject recovers.
#[utoipa::path(
    post,
    path = "/v1/alerts/{id}/ack",
    params(("id" = i64, Path)),
    request_body = AlertAck,
    responses(
        (status = 200, body = AlertRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "resolved, or acknowledged already", body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn ack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AlertRecord>, ApiError> {
    let who = Who::from(&caller);
    let id = parse_id("alert", &id)?;
    let target = format!("alert {id}");
    if let Err(e) = require(&caller, Role::Operator) {
        audit(&state, who, "alert.ack", target, "denied".to_owned()).await?;
        return Err(e);
    }
    let body = body.map_err(|e| body_rejected(e.status(), e.body_text(), MAX_BODY, ""))?;
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<AlertAck>(&body)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "the body is not an acknowledgement ({e}); send {{\"note\": \"...\"}} or no body"
                ))
            })?
            .note
    };
    if let Some(n) = &note {
        if n.len() > MAX_TEXT || n.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ApiError::BadRequest(format!(
                "note must be text of at most {MAX_TEXT} bytes"
            )));
        }
    }
    let result = state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let result = alerts::ack(conn, id, &who.key_name, note.as_deref(), now);
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("failed: {e}"),
            };
            audit_log::record(conn, &who, "alert.ack", &target, &outcome, now)?;
            Ok(result)
        })
        .await?;
    match result {
        Ok(alert) => Ok(Json(alert)),
        Err(AckError::NotFound(id)) => Err(ApiError::AlertNotFound(id)),
        Err(e @ (AckError::Resolved(_) | AckError::Already { .. })) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(AckError::Store(e)) => Err(ApiError::Store(e)),
    }
}

/// The silences in force or to come (viewer), soonest end first.
#[utoipa::path(
    get,
    path = "/v1/silences",
    responses((status = 200, body = Vec<Silence>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn silences(State(state): State<AppState>) -> Result<Json<Vec<Silence>>, ApiError> {
    Ok(Json(
        state
            .store
            .with_conn(|conn| alerts::silences(conn, now_ms()))
            .await?,
    ))
}

/// Silences alerts (operator): matching alerts stay in the history, marked silenced, but reach
/// no channel and raise no desktop notification; a problem still open when the silence ends is
/// delivered then. Audited.
#[utoipa::path(
    post,
    path = "/v1/silences",
    request_body = NewSilence,
    responses(
        (status = 201, body = Silence), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let who = Who::from(&caller);
    if let Err(e) = require(&caller, Role::Operator) {
        audit(
            &state,
            who,
            "silence.add",
            "silence".to_owned(),
            "denied".to_owned(),
        )
        .await?;
        return Err(e);
    }
    let Json(new) = body.map_err(|e| {
        body_rejected(
            e.status(),
            e.body_text(),
            MAX_BODY,
            "; send {\"hosts\": \"db-*\", \"apps\": \"...\", \"duration\": \"2h\", \"reason\": \"...\"}",
        )
    })?;
    let checked = silence::check(&new, now_ms()).map_err(ApiError::BadRequest)?;
    let created = state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let s = alerts::add_silence(conn, &checked, &who.key_name, now)?;
            let target = silence::audit_target(&s);
            audit_log::record(conn, &who, "silence.add", &target, "ok", now)?;
            Ok(s)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Ends a silence now (operator); what it held and is still open is delivered. Audited.
#[utoipa::path(
    delete,
    path = "/v1/silences/{id}",
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = Silence), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn delete_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    let who = Who::from(&caller);
    let id = parse_id("silence", &id)?;
    let target = format!("silence {id}");
    if let Err(e) = require(&caller, Role::Operator) {
        audit(&state, who, "silence.remove", target, "denied".to_owned()).await?;
        return Err(e);
    }
    let removed = state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let removed = alerts::remove_silence(conn, id, &who.key_name, now)?;
            let outcome = if removed.is_some() {
                "ok"
            } else {
                "failed: no such silence in force"
            };
            audit_log::record(conn, &who, "silence.remove", &target, outcome, now)?;
            Ok(removed)
        })
        .await?;
    removed.map(Json).ok_or(ApiError::SilenceNotFound(id))
}

/// An id from a path: a positive integer.
fn parse_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "a {what} id is a positive integer, as listed by GET /v1/{what}s"
        ))
    })
}

async fn audit(
    state: &AppState,
    who: Who,
    action: &'static str,
    target: String,
    outcome: String,
) -> Result<(), ApiError> {
    state
        .store
        .with_conn(move |conn| audit_log::record(conn, &who, action, &target, &outcome, now_ms()))
        .await?;
    Ok(())
}

/// The channels alerts go to (viewer): name, type, format and where (scheme and host only).
#[utoipa::path(
    get,
    path = "/v1/channels",
    responses((status = 200, body = Vec<ChannelInfo>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn channels(State(state): State<AppState>) -> Json<Vec<ChannelInfo>> {
    let channels = state.channels.read().unwrap_or_else(|e| e.into_inner());
    Json(channels.iter().map(|c| c.info()).collect())
}

/// Sends a clearly marked test alert to one channel (admin) and says how it went: the
/// receiver's status or the error, and the time it took. Audited.
#[utoipa::path(
    post,
    path = "/v1/channels/{name}/test",
    params(("name" = String, Path)),
    responses(
        (status = 200, body = ChannelTest), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn test_channel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<ChannelTest>, ApiError> {
    let who = Who::from(&caller);
    let target = if crate::config::valid_name(&name) {
        format!("channel {name}")
    } else {
        "channel (not a valid name)".to_owned()
    };
    if let Err(e) = require(&caller, Role::Admin) {
        audit(&state, who, "channel.test", target, "denied".to_owned()).await?;
        return Err(e);
    }
    let found = state
        .channels
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|c| c.name == name)
        .cloned();
    let Some(channel) = found else {
        audit(
            &state,
            who,
            "channel.test",
            target,
            "failed: no such channel".to_owned(),
        )
        .await?;
        return Err(ApiError::ChannelNotFound(name));
    };
    let result = channel.test(&state.http).await;
    let outcome = match (&result.status, &result.error) {
        (_, None) => format!("ok ({})", result.status.unwrap_or_default()),
        (_, Some(e)) => format!("failed: {}", audit_log::bounded(e, 256)),
    };
    audit(&state, who, "channel.test", target, outcome).await?;
    Ok(Json(result))
}

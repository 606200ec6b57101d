use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use fleetdeck_proto::{AuditPage, ErrorBody, KeyCreated, KeyInfo, NewKey, Role};
use serde::Deserialize;

use super::{body_rejected, require, ApiError, AppState, MAX_BODY};
use crate::config::valid_name;
use crate::store::audit::Who;
use crate::store::keys::{self, Caller};
use crate::store::{audit as audit_log, now_ms};

/// The longest text filter of an audit page.
const MAX_FILTER_BYTES: usize = 256;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries older than this id (the previous page's `next_before`).
    before: Option<i64>,
    /// Entries per page (default 100, at most 1000); a page also stops at 256 KiB of entries.
    limit: Option<usize>,
    /// Only this key's entries (its name).
    key: Option<String>,
    /// Only actions starting with this (`key.` for key.create and key.delete).
    action: Option<String>,
    /// Only targets holding this text, in any case.
    target: Option<String>,
    /// Only entries at or after this time (Unix ms).
    since: Option<u64>,
    /// Only entries before this time (Unix ms).
    until: Option<u64>,
}

/// The audit log, newest first (admin): each entry names the key by id and name.
#[utoipa::path(
    get,
    path = "/v1/audit",
    params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    require(&caller, Role::Admin)?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let text = |v: Option<String>, what: &str| -> Result<Option<String>, ApiError> {
        match v.filter(|v| !v.is_empty()) {
            Some(v) if v.len() > MAX_FILTER_BYTES => Err(ApiError::BadRequest(format!(
                "{what} is {} bytes long; at most {MAX_FILTER_BYTES}",
                v.len()
            ))),
            v => Ok(v),
        }
    };
    let filter = audit_log::AuditFilter {
        key: text(p.key, "key")?,
        action: text(p.action, "action")?,
        target: text(p.target, "target")?,
        since_ms: p.since,
        until_ms: p.until,
    };
    let page = state
        .store
        .with_conn(move |conn| audit_log::page(conn, p.before, p.limit.unwrap_or(100), &filter))
        .await?;
    Ok(Json(page))
}

/// The API keys (admin); never the keys themselves.
#[utoipa::path(
    get,
    path = "/v1/keys",
    responses((status = 200, body = Vec<KeyInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    require(&caller, Role::Admin)?;
    Ok(Json(state.store.with_conn(|conn| keys::list(conn)).await?))
}

/// Creates a key (admin); the answer holds it, the only time it is shown. The role is checked
/// before the body is looked at: a refused request leaves only "denied" in the audit.
#[utoipa::path(
    post,
    path = "/v1/keys",
    request_body = NewKey,
    responses(
        (status = 201, body = KeyCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let who = Who::from(&caller);
    if let Err(e) = require(&caller, Role::Admin) {
        denied(&state, who, "key.create", "key").await?;
        return Err(e);
    }
    let Json(new) = body.map_err(|e| {
        body_rejected(
            e.status(),
            e.body_text(),
            MAX_BODY,
            "; send {\"name\": \"...\", \"role\": \"viewer|operator|admin\"}",
        )
    })?;
    let target = key_target(&new.name);
    let created = state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let result = keys::create(conn, &new.name, new.role, now).map_err(ApiError::from);
            let outcome = match &result {
                Ok(k) => format!("ok (role {})", k.role.as_str()),
                Err(e) => format!("failed: {e}"),
            };
            audit_log::record(conn, &who, "key.create", &target, &outcome, now)?;
            Ok(result)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Deletes a key (admin); its open streams end at once.
#[utoipa::path(
    delete,
    path = "/v1/keys/{name}",
    params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = Who::from(&caller);
    let target = key_target(&name);
    if let Err(e) = require(&caller, Role::Admin) {
        denied(&state, who, "key.delete", &target).await?;
        return Err(e);
    }
    state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let deleted = keys::delete(conn, &name)?;
            let outcome = if deleted { "ok" } else { "failed: no such key" };
            audit_log::record(conn, &who, "key.delete", &target, outcome, now)?;
            Ok(deleted.then_some(()).ok_or(ApiError::KeyNotFound(name)))
        })
        .await??;
    state.revocations.key_deleted();
    Ok(StatusCode::NO_CONTENT)
}

/// The audit target of a key name from a request: the name if it is one (bounded), else a mark.
fn key_target(name: &str) -> String {
    if valid_name(name) {
        format!("key {name}")
    } else {
        "key (not a valid name)".to_owned()
    }
}

/// Audits a refused request: who and what, nothing taken from the request but a validated target.
async fn denied(
    state: &AppState,
    who: Who,
    action: &'static str,
    target: &str,
) -> Result<(), ApiError> {
    let target = target.to_owned();
    state
        .store
        .with_conn(move |conn| audit_log::record(conn, &who, action, &target, "denied", now_ms()))
        .await?;
    Ok(())
}

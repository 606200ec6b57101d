use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use fleetdeck_proto::{AuditPage, ErrorBody, KeyCreated, KeyInfo, NewKey, Role};
use serde::Deserialize;

use super::{require, ApiError, AppState};
use crate::store::keys::{self, Caller};
use crate::store::{audit as audit_log, now_ms};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries older than this id (the previous page's `next_before`).
    before: Option<i64>,
    /// Entries per page (default 100, at most 1000).
    limit: Option<usize>,
}

/// The audit log, newest first (admin).
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
    let page = state
        .store
        .with_conn(move |conn| audit_log::page(conn, p.before, p.limit.unwrap_or(100)))
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

/// Creates a key (admin); the answer holds it, the only time it is shown.
#[utoipa::path(
    post,
    path = "/v1/keys",
    request_body = NewKey,
    responses((status = 201, body = KeyCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let Json(new) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "{}; send {{\"name\": \"...\", \"role\": \"viewer|operator|admin\"}}",
            e.body_text()
        ))
    })?;
    let target = format!("key {}", new.name);
    let by = caller.name.clone();
    let allowed = require(&caller, Role::Admin);
    let created = state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let result = match allowed {
                Ok(()) => keys::create(conn, &new.name, new.role, now).map_err(ApiError::from),
                Err(e) => Err(e),
            };
            let outcome = match &result {
                Ok(k) => format!("ok (role {})", k.role.as_str()),
                Err(ApiError::Forbidden { .. }) => "denied".to_owned(),
                Err(e) => format!("failed: {e}"),
            };
            audit_log::record(conn, &by, "key.create", &target, &outcome, now)?;
            Ok(result)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Deletes a key (admin).
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
    let by = caller.name.clone();
    let allowed = require(&caller, Role::Admin);
    let target = format!("key {name}");
    state
        .store
        .with_conn(move |conn| {
            let now = now_ms();
            let result = match allowed {
                Ok(()) if keys::delete(conn, &name)? => Ok(StatusCode::NO_CONTENT),
                Ok(()) => Err(ApiError::KeyNotFound(name)),
                Err(e) => Err(e),
            };
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(ApiError::Forbidden { .. }) => "denied".to_owned(),
                Err(e) => format!("failed: {e}"),
            };
            audit_log::record(conn, &by, "key.delete", &target, &outcome, now)?;
            Ok(result)
        })
        .await?
}

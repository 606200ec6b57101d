use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use fleetdeck_proto::{ErrorBody, SamplesPage};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::ring::PAGE_LIMIT;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SamplesQuery {
    /// Return samples with a seq greater than this (0: from the oldest held).
    #[serde(default)]
    after: u64,
    /// At most this many (default and maximum 1000).
    limit: Option<usize>,
}

/// The ring buffer after `after`, oldest first, for backfill.
#[utoipa::path(
    get,
    path = "/v1/samples",
    params(SamplesQuery),
    responses((status = 200, body = SamplesPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn samples(
    State(state): State<AppState>,
    query: Result<Query<SamplesQuery>, QueryRejection>,
) -> Result<Json<SamplesPage>, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::BadRequest(format!("{}; use ?after=SEQ&limit=N", e.body_text())))?;
    Ok(Json(
        state
            .agent
            .samples_after(q.after, q.limit.unwrap_or(PAGE_LIMIT)),
    ))
}

use axum::extract::State;
use axum::Json;
use fleetdeck_proto::{ErrorBody, Snapshot};

use super::{ApiError, AppState};

/// One poll: `seq`, host metrics, every app's status and which sources answered.
#[utoipa::path(
    get,
    path = "/v1/snapshot",
    responses((status = 200, body = Snapshot), (status = 401, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn snapshot(State(state): State<AppState>) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(state.agent.snapshot().await?))
}

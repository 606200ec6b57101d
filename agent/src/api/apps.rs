use axum::extract::{Path, State};
use axum::Json;
use fleetdeck_proto::{AppStatus, ErrorBody};

use super::{ApiError, AppState};

/// Every configured app's status.
#[utoipa::path(
    get,
    path = "/v1/apps",
    responses((status = 200, body = Vec<AppStatus>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<AppStatus>> {
    Json(state.agent.apps().await)
}

/// One app's status.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}",
    params(("app" = String, Path, description = "the app's name from the agent's config")),
    responses((status = 200, body = AppStatus), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn one(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<AppStatus>, ApiError> {
    state
        .agent
        .app(&app)
        .await
        .map(Json)
        .ok_or(ApiError::AppNotFound(app))
}

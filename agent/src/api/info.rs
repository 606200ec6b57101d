use axum::extract::State;
use axum::Json;
use fleetdeck_proto::{ErrorBody, Info};

use super::AppState;

/// Agent version, hostname, instance id (new at each start) and capabilities.
#[utoipa::path(
    get,
    path = "/v1/info",
    responses((status = 200, body = Info), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(state.agent.info())
}

use axum::extract::{Path, State};
use axum::Json;
use fleetdeck_proto::{ActionOutcome, AppAction, ErrorBody};

use super::{ApiError, AppState};

/// Starts, stops or restarts an app (only if its `allow_actions = true`); waits for the job and
/// answers with its result and the app's status after it.
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/actions/{action}",
    params(
        ("app" = String, Path, description = "the app's name from the agent's config"),
        ("action" = AppAction, Path, description = "start, stop, restart or apply")
    ),
    responses(
        (status = 200, body = ActionOutcome),
        (status = 401, body = ErrorBody),
        (status = 403, description = "actions are not enabled for this app", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "apply: the app's .env cannot take effect as it reads it (a container made without compose must be recreated)", body = ErrorBody),
        (status = 502, description = "systemd or Docker failed", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn act(
    State(state): State<AppState>,
    Path((app, action)): Path<(String, String)>,
) -> Result<Json<ActionOutcome>, ApiError> {
    let action = match action.as_str() {
        "start" => AppAction::Start,
        "stop" => AppAction::Stop,
        "restart" => AppAction::Restart,
        "apply" => AppAction::Apply,
        _ => return Err(ApiError::UnknownAction(action)),
    };
    Ok(Json(state.agent.act(&app, action).await?))
}

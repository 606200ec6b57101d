use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use fleetdeck_proto::{EnvBackups, EnvFile, EnvUpdate, EnvWritten, ErrorBody};

use super::{ApiError, AppState};

/// What a 409 of the `.env` routes means (in the OpenAPI document).
const CONFLICT: &str = "where the file lies breaks a rule, named by the code: env_file_symlink (a symbolic link on its path, not allowed by the app's config), env_file_link_outside (an allowed link resolving outside env_follow_symlink_within), env_file_dir_writable (a directory on its path that someone other than root and the file's owner can change); nothing was read or written";

/// The app's `.env`: etag, path, entries and raw text.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/env",
    params(("app" = String, Path, description = "the app's name")),
    responses(
        (status = 200, body = EnvFile),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = CONFLICT, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<EnvFile>, ApiError> {
    Ok(Json(state.agent.env_read(&app).await?))
}

/// The backups the agent keeps of the app's `.env` (one per write, the last three), newest first.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/env/backups",
    params(("app" = String, Path, description = "the app's name")),
    responses(
        (status = 200, body = EnvBackups),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = CONFLICT, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn backups(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<EnvBackups>, ApiError> {
    Ok(Json(state.agent.env_backups(&app).await?))
}

/// Backup `n` (1 is the newest) of the app's `.env`, as the file is read: restore it by writing
/// its `raw` with `PUT /v1/apps/{app}/env` and the current etag.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/env/backups/{n}",
    params(("app" = String, Path, description = "the app's name"), ("n" = u32, Path, description = "1 is the newest")),
    responses(
        (status = 200, body = EnvFile),
        (status = 400, description = "n is not a number", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such app, no env_file, or no backup n", body = ErrorBody),
        (status = 409, description = CONFLICT, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn backup(
    State(state): State<AppState>,
    Path((app, n)): Path<(String, String)>,
) -> Result<Json<EnvFile>, ApiError> {
    let n: usize = n
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("backup {n:?}: a number from 1 (the newest)")))?;
    Ok(Json(state.agent.env_backup(&app, n).await?))
}

/// Edits the app's `.env` atomically: `If-Match: ETAG` is required.
#[utoipa::path(
    put,
    path = "/v1/apps/{app}/env",
    params(
        ("app" = String, Path, description = "the app's name"),
        ("If-Match" = String, Header, description = "the etag of the file as read")
    ),
    request_body = EnvUpdate,
    responses(
        (status = 200, body = EnvWritten),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = CONFLICT, body = ErrorBody),
        (status = 412, description = "the file changed since it was read", body = ErrorBody),
        (status = 413, description = "the body is over the agent's limit (4 MiB)", body = ErrorBody),
        (status = 422, description = "invalid key, or the result would not parse or read back", body = ErrorBody),
        (status = 428, description = "If-Match is missing", body = ErrorBody),
        (status = 507, description = "the disk holding the file is full: nothing was changed; free space and retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn put(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Result<Json<EnvUpdate>, JsonRejection>,
) -> Result<Json<EnvWritten>, ApiError> {
    let if_match = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::PreconditionRequired)?;
    let Json(update) = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge;
        }
        ApiError::Unprocessable(format!(
            "{}; send {{\"set\": {{...}}, \"unset\": [...]}} or {{\"raw\": \"...\"}}",
            e.body_text()
        ))
    })?;
    Ok(Json(state.agent.env_write(&app, &if_match, update).await?))
}

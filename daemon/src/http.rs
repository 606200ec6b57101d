//! The pieces of an HTTP API both daemons answer the same way: the bearer scheme in their OpenAPI
//! documents, and the one 404 for a route that does not exist.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fleetdeck_proto::ErrorBody;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::Modify;

/// Adds the `bearer` security scheme that every authenticated route names.
#[derive(Debug)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The fallback: a 404 in the one error shape, pointing at the OpenAPI document.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody::new(
            "not_found",
            "no such route; GET /v1/openapi.json lists them",
        )),
    )
        .into_response()
}

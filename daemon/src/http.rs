//! The pieces of an HTTP API both daemons answer the same way: the bearer scheme and the shape of
//! Server-Sent Events in their OpenAPI documents, and the one 404 for a route that does not exist.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fleetdeck_proto::ErrorBody;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
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

/// Describes each event of a `text/event-stream` response, as OpenAPI reads `schema` there
/// (3.2 and, for earlier documents, schemathesis): an object with `event`, `id` and `data`, where
/// `data` is JSON of the schema the route names as its body (`body = LogEntry`). Without this the
/// document said the event itself was a `LogEntry`, which no event is.
#[derive(Debug)]
pub struct SseEvents;

impl Modify for SseEvents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if let Some(content) = response.content.get_mut("text/event-stream") {
                        if let Some(payload) = content.schema.take() {
                            content.schema = Some(sse_event(payload).into());
                        }
                    }
                }
            }
        }
    }
}

/// One Server-Sent Event whose `data` is the JSON of `payload`.
fn sse_event(payload: RefOr<Schema>) -> Schema {
    let mut data = ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .description(Some("the event's payload: JSON, one line"))
        .build();
    // JSON Schema's `contentSchema` has no field in utoipa's model; extensions are written out as
    // they are, so it goes there.
    let schema = serde_json::to_value(&payload)
        .expect("a schema is plain data: it always serializes to JSON");
    data.extensions = Some(Extensions::from_iter([("contentSchema", schema)]));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            Object::builder()
                .schema_type(Type::String)
                .description(Some("the event's type")),
        )
        .property(
            "id",
            Object::builder()
                .schema_type(Type::String)
                .description(Some(
                    "send it back as `Last-Event-ID` to resume after this event",
                )),
        )
        .property("data", data)
        .required("event")
        .required("id")
        .required("data")
        .build()
        .into()
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

/// The token of `Authorization: Bearer TOKEN`, trimmed; none if the header is absent or not that.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

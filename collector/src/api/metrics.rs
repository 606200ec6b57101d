//! `GET /metrics` for a Prometheus server: off unless `[metrics] token_file` is set, and then only
//! for a scraper presenting that token (API keys neither open it nor does it open the API).

use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fleetdeck_daemon::http::bearer;
use fleetdeck_daemon::secret::Token;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::exposition::{self, Scrape};
use crate::store::{now_ms, query, scrape};

/// The scrape token's SHA-256, if `/metrics` is on; replaced on reload.
#[derive(Debug, Clone, Default)]
pub struct ScrapeToken(Arc<RwLock<Option<[u8; 32]>>>);

impl ScrapeToken {
    pub fn set(&self, token: Option<&Token>) {
        let digest = token.map(|t| Sha256::digest(t.expose().as_bytes()).into());
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = digest;
    }

    fn digest(&self) -> Option<[u8; 32]> {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// An app's latest sample counts if it is at most this old.
const SAMPLE_FRESH_MS: u64 = 2 * 60 * 1000;

/// The fleet and the collector's own health in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "the Prometheus text format (0.0.4)", content_type = "text/plain", body = String),
        (status = 401, description = "no scrape token, or not `[metrics] token_file`'s", body = fleetdeck_proto::ErrorBody),
        (status = 404, description = "metrics are off: `[metrics] token_file` is not set", body = fleetdeck_proto::ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let Some(expected) = state.scrape_token.digest() else {
        return ApiError::MetricsOff.into_response();
    };
    let presented = bearer(request.headers()).map(|t| Sha256::digest(t.as_bytes()));
    let accepted = presented.is_some_and(|d| bool::from(d.as_slice().ct_eq(&expected)));
    if !accepted {
        return ApiError::Unauthorized.into_response();
    }
    match gather(&state).await {
        Ok(text) => ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], text).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn gather(state: &AppState) -> Result<String, ApiError> {
    let now = now_ms();
    let (fleet, app_samples, open_alerts) = state
        .store
        .with_conn(move |conn| {
            Ok((
                query::fleet_with(conn, now, true)?,
                scrape::latest_app_samples(conn, now.saturating_sub(SAMPLE_FRESH_MS))?,
                scrape::open_alerts(conn)?,
            ))
        })
        .await?;
    let mut fleet = fleet;
    fleet.problems = super::fleet::open_problems(state, &fleet);
    let scrape = Scrape {
        fleet,
        app_samples,
        open_alerts,
        agents_configured: state.agents.all().len(),
        cluster: state.cluster.get(),
    };
    let telemetry = state.store.telemetry().clone();
    // Thousands of hosts make a few MiB of text: off the async threads.
    tokio::task::spawn_blocking(move || exposition::render(&scrape, &telemetry))
        .await
        .map_err(|e| ApiError::Internal(format!("the metrics task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("cannot write the metrics: {e}")))
}

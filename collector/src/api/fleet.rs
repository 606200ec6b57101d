use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use fleetdeck_proto::{AppMetrics, ErrorBody, Fleet, HostView, Metrics};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::store::app_metrics;
use crate::store::now_ms;
use crate::store::query::{self, Resolution};
use crate::uptime::{self, Uptime};

/// At most this many points in one metrics answer.
const MAX_POINTS: u64 = 10_000;

/// Every host and its apps, with the summary counts.
#[utoipa::path(
    get,
    path = "/v1/fleet",
    responses((status = 200, body = Fleet), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn fleet(State(state): State<AppState>) -> Result<Json<Fleet>, ApiError> {
    let mut fleet = state
        .store
        .with_conn(|conn| query::fleet(conn, now_ms()))
        .await?;
    let problems = open_problems(&state, &fleet);
    for p in &problems {
        match p.severity {
            fleetdeck_proto::Severity::Critical => fleet.summary.problems_critical += 1,
            _ => fleet.summary.problems_warning += 1,
        }
    }
    fleet.problems = problems;
    fleet.alert_policy = Some(state.policy().view());
    Ok(Json(fleet))
}

/// The alerting task's open problems and the firing threshold rules of the fleet's hosts:
/// critical first, then oldest first.
pub(super) fn open_problems(state: &AppState, fleet: &Fleet) -> Vec<fleetdeck_proto::Problem> {
    let active: std::collections::HashSet<&str> =
        fleet.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut problems = crate::alerting::lock(&state.problems).list();
    problems.extend(state.thresholds.open_problems());
    problems.retain(|p| active.contains(p.host.as_str()));
    // Critical first, then oldest first, across both lists.
    problems.sort_by(|a, b| {
        let rank =
            |s: fleetdeck_proto::Severity| u8::from(s != fleetdeck_proto::Severity::Critical);
        rank(a.severity)
            .cmp(&rank(b.severity))
            .then(a.since_unix_ms.cmp(&b.since_unix_ms))
            .then_with(|| a.host.cmp(&b.host))
            .then_with(|| a.app.cmp(&b.app))
    });
    problems
}

/// One host, its apps and its latest metrics in full.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}",
    params(("host" = String, Path, description = "the host's name in the collector's config")),
    responses((status = 200, body = HostView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn host(
    State(state): State<AppState>,
    Path(host): Path<String>,
) -> Result<Json<HostView>, ApiError> {
    let name = host.clone();
    state
        .store
        .with_conn(move |conn| query::host(conn, &name, now_ms()))
        .await?
        .map(Json)
        .ok_or(ApiError::HostNotFound(host))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// RFC 3339 start (default: an hour before `to`).
    from: Option<String>,
    /// RFC 3339 end (default: now).
    to: Option<String>,
    /// Point spacing, e.g. `10s`, `1m`, `1h` (default: about 360 points).
    step: Option<String>,
}

fn parse_time(name: &str, s: &str) -> Result<u64, ApiError> {
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}` = {s:?} is not an RFC 3339 time; use e.g. 2026-11-24T12:00:00Z"
            ))
        })
}

/// The host's metric history: raw samples when `step` is at most the agent's sample interval,
/// 1-minute rollups below an hour, 1-hour rollups from there (or the finest table whose retention
/// still covers `from`). Each point carries `ts`.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/metrics",
    params(("host" = String, Path, description = "the host's name"), MetricsParams),
    responses((status = 200, body = Metrics), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn metrics(
    State(state): State<AppState>,
    Path(host): Path<String>,
    params: Result<Query<MetricsParams>, QueryRejection>,
) -> Result<Json<Metrics>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (from, to, step) = range(&p)?;
    let name = host.clone();
    let retention = state.retention;
    let (resolution, points) = state
        .store
        .with_conn(move |conn| {
            let Some(id) = query::host_id(conn, &name)? else {
                return Ok(None);
            };
            let resolution = resolution_for(conn, id, &retention, from, step)?;
            let points = query::metrics(conn, id, from, to, step, resolution)?;
            Ok(Some((resolution, points)))
        })
        .await?
        .ok_or_else(|| ApiError::HostNotFound(host.clone()))?;
    Ok(Json(Metrics {
        host,
        from: rfc(from),
        to: rfc(to),
        step_ms: step,
        resolution: resolution.as_str().to_owned(),
        points,
    }))
}

fn rfc(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `from`, `to` and `step` of a metrics query, checked.
fn range(p: &MetricsParams) -> Result<(u64, u64, u64), ApiError> {
    let to =
        p.to.as_deref()
            .map(|s| parse_time("to", s))
            .transpose()?
            .unwrap_or_else(now_ms);
    let from = p
        .from
        .as_deref()
        .map(|s| parse_time("from", s))
        .transpose()?
        .unwrap_or(to.saturating_sub(3_600_000));
    if from >= to {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let step = match p.step.as_deref() {
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| {
                ApiError::BadRequest(format!("`step` = {s:?}: {e}; use e.g. 10s, 1m or 1h"))
            })?
            .as_millis() as u64,
        None => ((to - from) / 360).max(1000),
    };
    if step == 0 {
        return Err(ApiError::BadRequest("`step` must be above zero".into()));
    }
    if (to - from) / step > MAX_POINTS {
        return Err(ApiError::BadRequest(format!(
            "{} points asked: at most {MAX_POINTS}; use a larger `step` or a shorter range",
            (to - from) / step
        )));
    }
    Ok((from, to, step))
}

/// The table that answers: by the step against the host's sample interval, then the finest
/// table whose retention still holds `from`.
fn resolution_for(
    conn: &crate::store::Conn,
    host_id: i64,
    retention: &crate::config::Retention,
    from: u64,
    step: u64,
) -> Result<Resolution, crate::store::StoreError> {
    let now = now_ms();
    let raw_from = now.saturating_sub(retention.raw.as_millis() as u64);
    let minute_from = now.saturating_sub(retention.minute.as_millis() as u64);
    let interval = query::sample_interval_ms(conn, host_id)?.unwrap_or(10_000);
    Ok(match Resolution::for_step(step, interval) {
        Resolution::Raw if from < raw_from => Resolution::Minute,
        Resolution::Minute if from < minute_from => Resolution::Hour,
        r => r,
    })
}

/// One app's metric history (CPU %, memory and its limit, containers' network, each check's
/// latency and pass ratio), chosen like the host's: raw, 1-minute or 1-hour points.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/metrics",
    params(("host" = String, Path, description = "the host's name"), ("app" = String, Path, description = "the app's name"), MetricsParams),
    responses((status = 200, body = AppMetrics), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn app_metrics(
    State(state): State<AppState>,
    Path((host, app)): Path<(String, String)>,
    params: Result<Query<MetricsParams>, QueryRejection>,
) -> Result<Json<AppMetrics>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (from, to, step) = range(&p)?;
    let (h, a) = (host.clone(), app.clone());
    let retention = state.retention;
    let (resolution, points) = state
        .store
        .with_conn(move |conn| {
            let Some(id) = query::host_id(conn, &h)? else {
                return Ok(Err(ApiError::HostNotFound(h)));
            };
            if !query::has_app(conn, id, &a)? {
                return Ok(Err(ApiError::AppNotFound { host: h, app: a }));
            }
            let resolution = resolution_for(conn, id, &retention, from, step)?;
            let points = app_metrics::app_metrics(conn, id, &a, from, to, step, resolution)?;
            Ok(Ok((resolution, points)))
        })
        .await??;
    Ok(Json(AppMetrics {
        host,
        app,
        from: rfc(from),
        to: rfc(to),
        step_ms: step,
        resolution: resolution.as_str().to_owned(),
        points,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UptimeParams {
    /// Days back, today included (default 30, at most 366).
    days: Option<u32>,
}

/// The app's uptime over the last days: time running over time known, and one figure per UTC day.
#[utoipa::path(
    get,
    path = "/v1/hosts/{host}/apps/{app}/uptime",
    params(("host" = String, Path), ("app" = String, Path), UptimeParams),
    responses((status = 200, body = Uptime), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn uptime(
    State(state): State<AppState>,
    Path((host, app)): Path<(String, String)>,
    params: Result<Query<UptimeParams>, QueryRejection>,
) -> Result<Json<Uptime>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let days = p.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::BadRequest(format!("days = {days}: use 1 to 366")));
    }
    let now = now_ms();
    let (from, to) = uptime::window(days, now);
    let (h, a) = (host.clone(), app.clone());
    let found = state
        .store
        .with_conn(move |conn| {
            let Some(id) = query::host_id(conn, &h)? else {
                return Ok(Err(ApiError::HostNotFound(h)));
            };
            if !query::has_app(conn, id, &a)? {
                return Ok(Err(ApiError::AppNotFound { host: h, app: a }));
            }
            Ok(Ok(query::intervals(conn, id, &a, from, to)?))
        })
        .await??;
    Ok(Json(uptime::compute(&found, from, to, now)))
}

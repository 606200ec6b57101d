//! Reads for the API: the fleet, one host, metric history, status intervals, events.

use crate::alerting::rules::{Aspect, Detail};
use std::collections::HashMap;

use super::db::{params, Backend, Conn, Row};
use fleetdeck_proto::{
    AppState, AppStatus, AppView, EventsPage, Exit, Fleet, FleetEvent, FleetEventKind, FleetHealth,
    FleetSummary, HostMetrics, HostStatus, HostView, MetricPoint, Severity,
};

use super::StoreError;
use crate::uptime::{self, Interval};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn host_status(s: &str) -> HostStatus {
    match s {
        "up" => HostStatus::Up,
        "down" => HostStatus::Down,
        _ => HostStatus::Unknown,
    }
}

fn app_state(s: &str) -> AppState {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(AppState::Unknown)
}

struct HostRecord {
    id: i64,
    view: HostView,
}

fn host_from_row(r: &Row<'_>, full: bool) -> Result<HostRecord, StoreError> {
    let metrics_json: Option<String> = r.get(8)?;
    let metrics: Option<HostMetrics> = metrics_json.and_then(|j| serde_json::from_str(&j).ok());
    let view = HostView {
        name: r.get(1)?,
        status: host_status(&r.get::<String>(2)?),
        status_since_unix_ms: r.get::<Option<i64>>(3)?.map(|v| v as u64),
        last_seen_unix_ms: r.get::<Option<i64>>(4)?.map(|v| v as u64),
        error: r.get(5)?,
        hostname: r.get(6)?,
        agent_instance_id: r.get(7)?,
        agent_outdated: outdated(r.get::<Option<String>>(9)?.as_deref(), r.get(10)?),
        agent_version: r.get(9)?,
        wire_version: r.get(10)?,
        cpu_percent: metrics.as_ref().and_then(|m| m.cpu.total_percent),
        memory_used_bytes: metrics.as_ref().map(|m| m.memory.used_bytes),
        memory_total_bytes: metrics.as_ref().map(|m| m.memory.total_bytes),
        apps: Vec::new(),
        metrics: if full { metrics } else { None },
    };
    Ok(HostRecord {
        id: r.get(0)?,
        view,
    })
}

const HOST_COLUMNS: &str = "id, name, status, status_since_ms, last_seen_ms, last_error, hostname, instance_id, metrics_json, agent_version, wire_version";

/// Whether an agent of `version` speaking `wire` is older than this collector. Versions are
/// compared as numbers (`0.10.0` is newer than `0.9.3`); an unknown one is not marked.
pub fn outdated(version: Option<&str>, wire: Option<u32>) -> bool {
    fn numbers(v: &str) -> Vec<u64> {
        v.split(['.', '-', '+'])
            .map_while(|p| p.parse().ok())
            .collect()
    }
    let older_wire = wire.is_some_and(|w| w < fleetdeck_proto::WIRE_VERSION);
    let older = version.is_some_and(|v| numbers(v) < numbers(env!("CARGO_PKG_VERSION")));
    older_wire || older
}

/// Every app's intervals overlapping `[from, now]`, by (host id, app).
fn intervals_since(
    conn: &Conn,
    host: Option<i64>,
    from_ms: u64,
) -> Result<HashMap<(i64, String), Vec<Interval>>, StoreError> {
    let mut out: HashMap<(i64, String), Vec<Interval>> = HashMap::new();
    let rows = conn.query_map("SELECT host_id, app, state, start_ms, end_ms FROM status_history
         WHERE app != '' AND (end_ms IS NULL OR end_ms > ?1) AND (CAST(?2 AS BIGINT) IS NULL OR host_id = ?2)", params![from_ms as i64, host], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<i64>(3)?,
            r.get::<Option<i64>>(4)?,
        ))
    })?;
    for (host_id, app, state, start, end) in rows {
        out.entry((host_id, app)).or_default().push(Interval {
            state: app_state(&state),
            start_ms: start as u64,
            end_ms: end.map(|e| e as u64),
        });
    }
    Ok(out)
}

fn apps_of(
    conn: &Conn,
    host: &mut HostRecord,
    intervals: &HashMap<(i64, String), Vec<Interval>>,
    now_ms: u64,
) -> Result<(), StoreError> {
    let rows = conn.query_map(
        "SELECT name, state_since_ms, status_json FROM apps WHERE host_id = ?1 ORDER BY name",
        params![host.id],
        |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?)),
    )?;
    let (from, to) = uptime::window(30, now_ms);
    for (name, since, json) in rows {
        let Ok(mut status) = serde_json::from_str::<AppStatus>(&json) else {
            continue;
        };
        if host.view.status == HostStatus::Down {
            // The state shown is the last one known before the host stopped answering.
            status.error = Some(format!(
                "{} is unreachable: this is the last known state",
                host.view.name
            ));
        }
        let uptime = intervals
            .get(&(host.id, name))
            .map(|iv| uptime::compute(iv, from, to, now_ms));
        host.view.apps.push(AppView {
            status,
            state_since_unix_ms: since as u64,
            uptime_30d: uptime.as_ref().and_then(|u| u.ratio),
            uptime_known_since_unix_ms: uptime.and_then(|u| u.first_known_ms),
        });
    }
    Ok(())
}

/// `GET /v1/fleet`: every configured host with its apps, and the summary counts.
pub fn fleet(conn: &Conn, now_ms: u64) -> Result<Fleet, StoreError> {
    fleet_with(conn, now_ms, false)
}

/// The fleet; with `full`, each host's latest metrics in full too (filesystems, interfaces).
pub fn fleet_with(conn: &Conn, now_ms: u64, full: bool) -> Result<Fleet, StoreError> {
    let intervals = intervals_since(conn, None, now_ms.saturating_sub(31 * DAY_MS))?;
    let mut hosts = conn.query_map(
        &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE active = 1 ORDER BY name"),
        params![],
        |r| host_from_row(r, full),
    )?;
    for host in &mut hosts {
        apps_of(conn, host, &intervals, now_ms)?;
    }
    let hosts: Vec<HostView> = hosts.into_iter().map(|h| h.view).collect();
    Ok(Fleet {
        summary: summarize(&hosts),
        hosts,
        problems: Vec::new(),
        alert_policy: None,
    })
}

/// The counts a tray needs.
pub fn summarize(hosts: &[HostView]) -> FleetSummary {
    let mut s = FleetSummary {
        health: FleetHealth::Ok,
        hosts: hosts.len() as u32,
        hosts_up: 0,
        hosts_down: 0,
        apps: 0,
        apps_running: 0,
        apps_down: 0,
        apps_degraded: 0,
        apps_stopped: 0,
        problems_warning: 0,
        problems_critical: 0,
    };
    for h in hosts {
        match h.status {
            HostStatus::Up => s.hosts_up += 1,
            HostStatus::Down => s.hosts_down += 1,
            HostStatus::Unknown => {}
        }
        for a in &h.apps {
            s.apps += 1;
            if h.status == HostStatus::Down {
                s.apps_degraded += 1; // Unknown while its host is unreachable.
                continue;
            }
            // A running app whose checks fail is not healthy (issue 14): it counts as degraded.
            let checks_fail = a.status.degraded || a.status.checks.iter().any(|c| !c.ok);
            match a.status.state {
                AppState::Running if checks_fail => s.apps_degraded += 1,
                AppState::Running => s.apps_running += 1,
                AppState::Failed | AppState::CrashLooping => s.apps_down += 1,
                AppState::Stopped => s.apps_stopped += 1,
                _ => s.apps_degraded += 1,
            }
        }
    }
    let unknown_hosts = s.hosts - s.hosts_up - s.hosts_down;
    s.health = if s.hosts_down > 0 || s.apps_down > 0 {
        FleetHealth::Down
    } else if s.apps_degraded > 0 || unknown_hosts > 0 {
        FleetHealth::Degraded
    } else {
        FleetHealth::Ok
    };
    s
}

/// `GET /v1/hosts/{host}`, with the latest metrics in full.
pub fn host(conn: &Conn, name: &str, now_ms: u64) -> Result<Option<HostView>, StoreError> {
    let Some(mut host) = conn.query_opt(
        &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1 AND active = 1"),
        params![name],
        |r| host_from_row(r, true),
    )?
    else {
        return Ok(None);
    };
    let intervals = intervals_since(conn, Some(host.id), now_ms.saturating_sub(31 * DAY_MS))?;
    apps_of(conn, &mut host, &intervals, now_ms)?;
    Ok(Some(host.view))
}

/// The id of an active host.
pub fn host_id(conn: &Conn, name: &str) -> Result<Option<i64>, StoreError> {
    conn.query_opt(
        "SELECT id FROM hosts WHERE name = ?1 AND active = 1",
        params![name],
        |r| r.get(0),
    )
}

/// Whether the host has an app of that name.
pub fn has_app(conn: &Conn, host_id: i64, app: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM apps WHERE host_id = ?1 AND name = ?2",
            params![host_id, app],
            |_| Ok(()),
        )?
        .is_some())
}

/// A subject's intervals overlapping `[from, to]`; app `""` is the host.
pub fn intervals(
    conn: &Conn,
    host_id: i64,
    app: &str,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<Interval>, StoreError> {
    let rows = conn.query_map(
        "SELECT state, start_ms, end_ms FROM status_history
         WHERE host_id = ?1 AND app = ?2 AND start_ms < ?4 AND (end_ms IS NULL OR end_ms > ?3)
         ORDER BY start_ms",
        params![host_id, app, from_ms as i64, to_ms as i64],
        |r| {
            Ok(Interval {
                state: app_state(&r.get::<String>(0)?),
                start_ms: r.get::<i64>(1)? as u64,
                end_ms: r.get::<Option<i64>>(2)?.map(|e| e as u64),
            })
        },
    )?;
    Ok(rows)
}

/// Which table answers a metrics query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    /// Raw samples when the step is at most the sample interval, 1-minute rollups below an hour,
    /// 1-hour rollups from there.
    pub fn for_step(step_ms: u64, sample_interval_ms: u64) -> Self {
        if step_ms <= sample_interval_ms {
            Self::Raw
        } else if step_ms < 3_600_000 {
            Self::Minute
        } else {
            Self::Hour
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Minute => "1m",
            Self::Hour => "1h",
        }
    }
}

/// Metric points of a host in `[from, to)`: raw samples as taken, or rollup buckets grouped into
/// `step`-wide points (averages weighted by sample count; maxima for cpu_max and disk).
pub fn metrics(
    conn: &Conn,
    host_id: i64,
    from_ms: u64,
    to_ms: u64,
    step_ms: u64,
    resolution: Resolution,
) -> Result<Vec<MetricPoint>, StoreError> {
    let sql = match resolution {
        Resolution::Raw => {
            "SELECT ts_ms, 1, cpu, cpu, mem_used, mem_total, swap_used, load1, disk_used, disk_total, net_rx, net_tx,
                    disk_read, disk_write, root_inodes_pct
             FROM samples_raw WHERE host_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 ORDER BY ts_ms"
        }
        Resolution::Minute | Resolution::Hour => {
            if resolution == Resolution::Minute {
                ROLLUP_SQL_1M
            } else {
                ROLLUP_SQL_1H
            }
        }
    };
    let map = |r: &Row<'_>| -> Result<MetricPoint, StoreError> {
        let ts = r.get::<i64>(0)? as u64;
        Ok(MetricPoint {
            ts: humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ts),
            )
            .to_string(),
            ts_unix_ms: ts,
            samples: r.get::<i64>(1)? as u32,
            cpu_percent: r.get(2)?,
            cpu_percent_max: r.get(3)?,
            memory_used_bytes: r.get::<Option<i64>>(4)?.map(|v| v as u64),
            memory_total_bytes: r.get::<Option<i64>>(5)?.map(|v| v as u64),
            swap_used_bytes: r.get::<Option<i64>>(6)?.map(|v| v as u64),
            load1: r.get(7)?,
            disk_used_bytes: r.get::<Option<i64>>(8)?.map(|v| v as u64),
            disk_total_bytes: r.get::<Option<i64>>(9)?.map(|v| v as u64),
            net_rx_bytes_per_sec: r.get(10)?,
            net_tx_bytes_per_sec: r.get(11)?,
            disk_read_bytes_per_sec: r.get(12)?,
            disk_write_bytes_per_sec: r.get(13)?,
            root_inodes_used_percent: r.get(14)?,
        })
    };
    let rows = if resolution == Resolution::Raw {
        conn.query_map(sql, params![host_id, from_ms as i64, to_ms as i64], map)?
    } else {
        conn.query_map(
            sql,
            params![host_id, from_ms as i64, to_ms as i64, step_ms as i64],
            map,
        )?
    };
    Ok(rows)
}

/// The rollup query for one table, grouping buckets into `?4`-wide points.
macro_rules! concat_rollup {
    ($table:literal) => {
        concat!(
            "SELECT bucket_ms / ?4 * ?4 AS b, CAST(sum(n) AS BIGINT),
    sum(cpu * n) / nullif(sum(CASE WHEN cpu IS NULL THEN 0 ELSE n END), 0), max(cpu_max),
    CAST(sum(mem_used * n) / nullif(sum(n), 0) AS BIGINT), max(mem_total),
    CAST(sum(swap_used * n) / nullif(sum(n), 0) AS BIGINT),
    sum(load1 * n) / nullif(sum(n), 0), max(disk_used), max(disk_total),
    sum(net_rx * n) / nullif(sum(CASE WHEN net_rx IS NULL THEN 0 ELSE n END), 0),
    sum(net_tx * n) / nullif(sum(CASE WHEN net_tx IS NULL THEN 0 ELSE n END), 0),
    sum(disk_read * n) / nullif(sum(CASE WHEN disk_read IS NULL THEN 0 ELSE n END), 0),
    sum(disk_write * n) / nullif(sum(CASE WHEN disk_write IS NULL THEN 0 ELSE n END), 0),
    max(root_inodes_pct) FROM ",
            $table,
            " WHERE host_id = ?1 AND bucket_ms >= ?2 AND bucket_ms < ?3 GROUP BY b ORDER BY b"
        )
    };
}

const ROLLUP_SQL_1M: &str = concat_rollup!("samples_1m");
const ROLLUP_SQL_1H: &str = concat_rollup!("samples_1h");

/// Filters of `GET /v1/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub host: Option<String>,
    pub app: Option<String>,
    pub severity: Option<Severity>,
    pub kind: Option<FleetEventKind>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Only events with a smaller id (paging back).
    pub before: Option<i64>,
    /// Only events with a larger id (stream replay).
    pub after: Option<i64>,
    pub limit: usize,
}

fn event_from_row(r: &Row<'_>) -> Result<FleetEvent, StoreError> {
    let severity = match r.get::<String>(2)?.as_str() {
        "critical" => Severity::Critical,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    };
    let kind = serde_json::from_value::<FleetEventKind>(serde_json::Value::String(r.get(4)?))
        .unwrap_or(FleetEventKind::Transition);
    let exit: Option<String> = r.get(9)?;
    // {"context", "check", "threshold"}; unreadable (or absent) details are left out.
    let detail: EventDetail = r
        .get::<Option<String>>(11)?
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default();
    Ok(FleetEvent {
        id: r.get(0)?,
        at_unix_ms: r.get::<i64>(1)? as u64,
        severity,
        source: r.get(3)?,
        kind,
        host: r.get(5)?,
        app: r.get(6)?,
        from: r.get(7)?,
        to: r.get(8)?,
        exit: exit.and_then(|e| serde_json::from_str::<Exit>(&e).ok()),
        message: r.get(10)?,
        context: detail.context,
        check: detail.check,
        threshold: detail.threshold,
    })
}

/// `events.detail_json` as stored (see `migrations/0003_problems.sql`).
#[derive(Debug, Default, serde::Deserialize)]
struct EventDetail {
    #[serde(default)]
    context: Option<fleetdeck_proto::CrashContext>,
    #[serde(default)]
    check: Option<fleetdeck_proto::CheckResult>,
    #[serde(default)]
    threshold: Option<fleetdeck_proto::ThresholdHit>,
}

/// Events matching `filter`: newest first when paging back, oldest first after `after`. The SQL
/// holds only the filters given, so SQLite can use the id and host indexes.
pub fn events(conn: &Conn, filter: &EventFilter) -> Result<EventsPage, StoreError> {
    use super::db::Param;
    let ascending = filter.after.is_some();
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn Param>> = Vec::new();
    let mut add = |clause: &str, value: Box<dyn Param>| {
        values.push(value);
        clauses.push(format!("{clause} ?{}", values.len()));
    };
    if let Some(h) = &filter.host {
        add("host =", Box::new(h.clone()));
    }
    if let Some(a) = &filter.app {
        add("app =", Box::new(a.clone()));
    }
    if let Some(s) = filter.severity {
        add("severity =", Box::new(s.as_str().to_owned()));
    }
    if let Some(k) = filter.kind {
        add("kind =", Box::new(k.as_str().to_owned()));
    }
    if let Some(t) = filter.since_ms {
        add("ts_ms >=", Box::new(t as i64));
    }
    if let Some(t) = filter.until_ms {
        add("ts_ms <", Box::new(t as i64));
    }
    if let Some(id) = filter.before {
        add("id <", Box::new(id));
    }
    if let Some(id) = filter.after {
        add("id >", Box::new(id));
    }
    let values: Vec<&dyn Param> = values.iter().map(|v| v.as_ref()).collect();
    let limit = filter.limit.max(1);
    let sql = format!(
        "SELECT id, ts_ms, severity, source, kind, host, app, from_state, to_state, exit_json, message, detail_json
         FROM events {} {} ORDER BY id {} LIMIT {}",
        if clauses.is_empty() { "" } else { "WHERE" },
        clauses.join(" AND "),
        if ascending { "ASC" } else { "DESC" },
        limit + 1
    );
    let events = conn.query_map(&sql, &values, event_from_row)?;
    let more = events.len() > limit;
    let events: Vec<FleetEvent> = events.into_iter().take(limit).collect();
    let next_before = if more && !ascending {
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(EventsPage {
        events,
        next_before,
    })
}

/// The host's sample interval, from its two newest raw samples, to the nearest second (agents
/// sample every whole number of seconds; timers make the gap a few ms more or less).
pub fn sample_interval_ms(conn: &Conn, host_id: i64) -> Result<Option<u64>, StoreError> {
    let ts: Vec<i64> = conn.query_map(
        "SELECT ts_ms FROM samples_raw WHERE host_id = ?1 ORDER BY ts_ms DESC LIMIT 2",
        params![host_id],
        |r| r.get(0),
    )?;
    Ok(match ts.as_slice() {
        [a, b] if a > b => Some((((a - b) as u64 + 500) / 1000).max(1) * 1000),
        _ => None,
    })
}

/// Problems still open (hosts down, apps failed or crash-looping on reachable hosts), each with
/// whether an alert about it was sent and not yet followed by a recovery: what the alerter needs
/// to resume after a restart.
pub fn open_problems(conn: &Conn) -> Result<Vec<(crate::alerting::Transition, bool)>, StoreError> {
    use crate::alerting::{Health, Transition};
    let last_alert = |host: &str, app: Option<&str>| -> Result<Option<String>, StoreError> {
        conn
            .query_opt(
                // The state's own alerts: a threshold's (or another aspect's) says nothing of it.
                match conn.backend() {
                    Backend::Sqlite => {
                        "SELECT kind FROM alerts WHERE host = ?1 AND app IS ?2
                         AND (aspect_json IS NULL OR json_extract(aspect_json, '$.aspect') = 'state')
                         ORDER BY id DESC LIMIT 1"
                    }
                    Backend::Postgres => {
                        "SELECT kind FROM alerts WHERE host = ?1 AND app IS NOT DISTINCT FROM ?2
                         AND (aspect_json IS NULL OR aspect_json::jsonb ->> 'aspect' = 'state')
                         ORDER BY id DESC LIMIT 1"
                    }
                },
                params![host, app],
                |r| r.get(0),
            )
    };
    let alerted = |kind: Option<String>| matches!(kind.as_deref(), Some("problem" | "flapping"));
    let mut out = Vec::new();
    let hosts = conn.query_map(
        "SELECT name, coalesce(status_since_ms, 0) FROM hosts WHERE active = 1 AND status = 'down'",
        params![],
        |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
    )?;
    for (host, since) in hosts {
        let sent = alerted(last_alert(&host, None)?);
        out.push((
            Transition {
                host,
                app: None,
                state: "down".into(),
                health: Health::Problem,
                exit: None,
                at_ms: since as u64,
                aspect: Aspect::State,
                severity: Severity::Critical,
                detail: Detail::default(),
            },
            sent,
        ));
    }
    let apps = conn.query_map(
        "SELECT h.name, a.name, a.state, a.state_since_ms, a.status_json FROM apps a
         JOIN hosts h ON h.id = a.host_id
         WHERE h.active = 1 AND h.status = 'up'
         AND a.state IN ('failed', 'crash-looping', 'not-found', 'stopped')",
        params![],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<i64>(3)?,
                r.get::<String>(4)?,
            ))
        },
    )?;
    for (host, app, state, since, json) in apps {
        let status = serde_json::from_str::<AppStatus>(&json).ok();
        let exit = status.as_ref().and_then(|s| s.last_exit);
        let sent = alerted(last_alert(&host, Some(&app))?);
        let (health, severity, detail) = match &status {
            Some(status) => crate::store::ingest::classify_status(status, status.state),
            None => (Health::Problem, Severity::Critical, Detail::default()),
        };
        // A stop is a problem again only if it was alerted: whether it was asked for through
        // Fleetdeck may have been known only from the event stream.
        if health != Health::Problem || (state == "stopped" && !sent) {
            continue;
        }
        out.push((
            Transition {
                host,
                app: Some(app),
                state,
                health,
                exit,
                at_ms: since as u64,
                aspect: Aspect::State,
                severity,
                detail,
            },
            sent,
        ));
    }
    // Failing checks, sources down, a skewed clock (migration 0004's `aspects`).
    let aspects = conn.query_map(
        "SELECT h.name, s.app, s.aspect, s.since_ms, s.reason FROM aspects s
         JOIN hosts h ON h.id = s.host_id WHERE h.active = 1 AND s.ok = 0",
        params![],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<i64>(3)?,
                r.get::<Option<String>>(4)?,
            ))
        },
    )?;
    for (host, app, aspect, since, reason) in aspects {
        let (aspect, state, severity) = match aspect.split_once(':') {
            Some(("check", name)) => (Aspect::Check(name.to_owned()), "failing", Severity::Warning),
            Some(("source", name)) => (Aspect::Source(name.to_owned()), "down", Severity::Warning),
            Some(("cert", name)) => (
                Aspect::CertExpiring(name.to_owned()),
                "expiring",
                Severity::Warning,
            ),
            Some(("cert-critical", name)) => (
                Aspect::CertCritical(name.to_owned()),
                "expiring",
                Severity::Critical,
            ),
            _ if aspect == "clock" => (Aspect::Clock, "skewed", Severity::Warning),
            _ => continue,
        };
        let app = (!app.is_empty()).then_some(app);
        let aspect_json = serde_json::to_string(&aspect).unwrap_or_default();
        let last: Option<String> = conn
            .query_opt(
                "SELECT kind FROM alerts WHERE host = ?1 AND app IS NOT DISTINCT FROM ?2 AND aspect_json = ?3
                 ORDER BY id DESC LIMIT 1",
                params![host, app, aspect_json],
                |r| r.get(0),
            )?;
        out.push((
            Transition {
                host,
                app,
                state: state.to_owned(),
                health: Health::Problem,
                exit: None,
                at_ms: since as u64,
                aspect,
                severity,
                detail: Detail {
                    reason,
                    ..Detail::default()
                },
            },
            alerted(last),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod version_tests {
    use super::outdated;

    #[test]
    fn older_agents_are_marked() {
        assert!(outdated(Some("0.0.9"), Some(fleetdeck_proto::WIRE_VERSION)));
        assert!(outdated(None, Some(0)));
        assert!(!outdated(
            Some(env!("CARGO_PKG_VERSION")),
            Some(fleetdeck_proto::WIRE_VERSION)
        ));
        assert!(!outdated(Some("99.0.0"), None));
        assert!(!outdated(None, None), "unknown is not marked");
    }
}

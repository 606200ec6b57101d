//! What a Prometheus scrape (`GET /metrics`) reads beyond the fleet: each app's latest sample
//! and the open alerts counted by severity.

use std::collections::HashMap;

use fleetdeck_proto::Severity;

use super::db::{params, Backend, Conn};
use super::StoreError;

/// An app's latest sample: what its status does not carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppSample {
    pub ts_ms: u64,
    /// Percent of one core.
    pub cpu_percent: Option<f64>,
    pub memory_limit_bytes: Option<u64>,
    pub net_rx_bytes_per_sec: Option<f64>,
    pub net_tx_bytes_per_sec: Option<f64>,
}

/// The latest sample of each app of an active host taken after `since_ms`, by (host, app).
pub fn latest_app_samples(
    conn: &Conn,
    since_ms: u64,
) -> Result<HashMap<(String, String), AppSample>, StoreError> {
    let sql = match conn.backend() {
        // SQLite gives the bare columns of the row holding max(ts_ms).
        Backend::Sqlite => {
            "SELECT h.name, a.app, max(a.ts_ms), a.cpu, a.mem_limit, a.net_rx, a.net_tx
             FROM app_samples_raw a JOIN hosts h ON h.id = a.host_id
             WHERE a.ts_ms > ?1 AND h.active = 1
             GROUP BY a.host_id, a.app"
        }
        Backend::Postgres => {
            "SELECT DISTINCT ON (a.host_id, a.app)
                    h.name, a.app, a.ts_ms, a.cpu, a.mem_limit, a.net_rx, a.net_tx
             FROM app_samples_raw a JOIN hosts h ON h.id = a.host_id
             WHERE a.ts_ms > ?1 AND h.active = 1
             ORDER BY a.host_id, a.app, a.ts_ms DESC"
        }
    };
    let rows = conn.query_map(sql, params![since_ms as i64], |r| {
        Ok((
            (r.get::<String>(0)?, r.get::<String>(1)?),
            AppSample {
                ts_ms: r.get::<i64>(2)? as u64,
                cpu_percent: r.get(3)?,
                memory_limit_bytes: r.get::<Option<i64>>(4)?.map(|v| v.max(0) as u64),
                net_rx_bytes_per_sec: r.get(5)?,
                net_tx_bytes_per_sec: r.get(6)?,
            },
        ))
    })?;
    Ok(rows.into_iter().collect())
}

/// Open alerts (problems and flapping, not resolved) by severity and whether someone
/// acknowledged them; every pair is present, zero or not.
pub fn open_alerts(conn: &Conn) -> Result<Vec<(Severity, bool, u64)>, StoreError> {
    let rows = conn.query_map(
        "SELECT coalesce(severity, 'critical'), ack_ms IS NOT NULL, count(*) FROM alerts
         WHERE kind IN ('problem', 'flapping') AND resolved_ms IS NULL
         GROUP BY 1, 2",
        params![],
        |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?, r.get::<i64>(2)?)),
    )?;
    let mut counts: HashMap<(String, bool), u64> = HashMap::new();
    for (severity, acked, n) in rows {
        counts.insert((severity, acked), n.max(0) as u64);
    }
    let mut out = Vec::new();
    for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
        for acked in [false, true] {
            let n = counts
                .get(&(severity.as_str().to_owned(), acked))
                .copied()
                .unwrap_or(0);
            out.push((severity, acked, n));
        }
    }
    Ok(out)
}

//! The audit log (who, what, on what, how it ended; never a value) and the alert history.

use fleetdeck_proto::{AuditEntry, AuditPage};
use rusqlite::{params, Connection};

use super::{now_ms, Store, StoreError};
use crate::alerting::notify::Delivery;
use crate::alerting::rules::Alert;
use crate::alerting::AlertLog;

pub fn record(
    conn: &Connection,
    key_name: &str,
    action: &str,
    target: &str,
    result: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit (ts_ms, key_name, action, target, result) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_ms as i64, key_name, action, target, result],
    )?;
    Ok(())
}

/// Newest first; `before` pages back.
pub fn page(conn: &Connection, before: Option<i64>, limit: usize) -> Result<AuditPage, StoreError> {
    let limit = limit.clamp(1, 1000);
    let mut stmt = conn.prepare_cached(
        "SELECT id, ts_ms, key_name, action, target, result FROM audit
         WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    )?;
    let entries = stmt
        .query_map(params![before, (limit + 1) as i64], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at_unix_ms: r.get::<_, i64>(1)? as u64,
                key_name: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                result: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let more = entries.len() > limit;
    let entries: Vec<AuditEntry> = entries.into_iter().take(limit).collect();
    Ok(AuditPage {
        next_before: if more {
            entries.last().map(|e| e.id)
        } else {
            None
        },
        entries,
    })
}

/// Alerts and their deliveries, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub id: i64,
    pub kind: String,
    pub host: String,
    pub app: Option<String>,
    pub state: String,
    pub message: String,
    pub delivered: Vec<(String, u32, Option<u16>)>,
}

pub fn alerts(conn: &Connection) -> Result<Vec<StoredAlert>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT id, kind, host, app, state, message FROM alerts ORDER BY id")?;
    let mut out = stmt
        .query_map([], |r| {
            Ok(StoredAlert {
                id: r.get(0)?,
                kind: r.get(1)?,
                host: r.get(2)?,
                app: r.get(3)?,
                state: r.get(4)?,
                message: r.get(5)?,
                delivered: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT webhook, attempts, status FROM alert_deliveries WHERE alert_id = ?1 ORDER BY rowid",
    )?;
    for alert in &mut out {
        alert.delivered = stmt
            .query_map([alert.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(out)
}

impl AlertLog for Store {
    fn record(&self, alert: &Alert) -> Result<i64, String> {
        let kind = serde_json::to_value(alert.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.with_conn_blocking(|conn| {
            conn.execute(
                "INSERT INTO alerts (ts_ms, kind, host, app, state, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![alert.at_ms as i64, kind, alert.host, alert.app, alert.state, alert.message],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .map_err(|e| e.to_string())
    }

    fn delivered(&self, alert_id: i64, webhook: &str, delivery: &Delivery) {
        let status = delivery.last_status;
        let error = delivery.result.as_ref().err().cloned();
        let result =
            self.with_conn_blocking(|conn| {
                conn.execute(
                "INSERT INTO alert_deliveries (alert_id, webhook, attempts, status, error, ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![alert_id, webhook, delivery.attempts, status, error, now_ms() as i64],
            )?;
                Ok(())
            });
        if let Err(e) = result {
            tracing::error!(error = %e, alert_id, "cannot record an alert delivery");
        }
    }
}

//! The audit log (who, what, on what, how it ended; never a value; bounded in what it keeps and
//! in what a page returns) and the alert history.

use fleetdeck_proto::{AuditEntry, AuditPage, FleetEvent, FleetEventKind, Severity};

use super::db::{params, Backend, Conn};
use super::keys::Caller;
use super::{now_ms, Store, StoreError};
use crate::alerting::notify::Delivery;
use crate::alerting::rules::{Alert, AlertKind, Aspect};
use crate::alerting::thresholds::ResumedThreshold;
use crate::alerting::AlertLog;

/// The most bytes of one audit field (action, target, result) kept: what a request names is
/// validated and bounded before it gets here, this is the last guard.
pub const MAX_FIELD: usize = 4096;
/// The most bytes of entries one audit page holds, whatever `limit` asks.
pub const MAX_PAGE_BYTES: usize = 256 * 1024;

/// Who acted: the key's id (none at the command line) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub key_id: Option<i64>,
    pub key_name: String,
}

impl Who {
    pub fn command_line() -> Self {
        Self {
            key_id: None,
            key_name: "(command line)".to_owned(),
        }
    }
}

impl From<&Caller> for Who {
    fn from(caller: &Caller) -> Self {
        Self {
            key_id: Some(caller.id),
            key_name: caller.name.clone(),
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub fn record(
    conn: &Conn,
    who: &Who,
    action: &str,
    target: &str,
    result: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit (ts_ms, key_id, key_name, action, target, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            now_ms as i64,
            who.key_id,
            bounded(&who.key_name, MAX_FIELD),
            bounded(action, MAX_FIELD),
            bounded(target, MAX_FIELD),
            bounded(result, MAX_FIELD)
        ],
    )?;
    Ok(())
}

/// Newest first; `before` pages back. A page holds at most `limit` entries and stops early at
/// [`MAX_PAGE_BYTES`] (`next_before` then goes on from there); fields are read cut to
/// [`MAX_FIELD`] bytes, so entries stored before fields were bounded cost no more.
/// Which audit entries a page keeps: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The key's name, exactly.
    pub key: Option<String>,
    /// The action, or its start (`key.` is `key.create` and `key.delete`).
    pub action: Option<String>,
    /// Text the target holds, in any case.
    pub target: Option<String>,
    /// At or after (Unix ms).
    pub since_ms: Option<u64>,
    /// Before (Unix ms).
    pub until_ms: Option<u64>,
}

/// `text` as a LIKE pattern that matches it literally (`\` escapes).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn page(
    conn: &Conn,
    before: Option<i64>,
    limit: usize,
    filter: &AuditFilter,
) -> Result<AuditPage, StoreError> {
    let limit = limit.clamp(1, 1000);
    let action = filter
        .action
        .as_deref()
        .map(|a| format!("{}%", like_literal(a)));
    let target = filter
        .target
        .as_deref()
        .map(|t| format!("%{}%", like_literal(&t.to_lowercase())));
    let since = filter.since_ms.map(|ms| ms.min(i64::MAX as u64) as i64);
    let until = filter.until_ms.map(|ms| ms.min(i64::MAX as u64) as i64);
    // substr counts characters: 4096 of them are at most 16 KiB, and `bounded` cuts the rest.
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    conn.query_each(
        "SELECT id, ts_ms, key_id, substr(key_name, 1, 4096), substr(action, 1, 4096),
                substr(target, 1, 4096), substr(result, 1, 4096)
         FROM audit WHERE (CAST(?1 AS BIGINT) IS NULL OR id < ?1)
           AND (CAST(?3 AS TEXT) IS NULL OR key_name = ?3)
           AND (CAST(?4 AS TEXT) IS NULL OR action LIKE ?4 ESCAPE '\\')
           AND (CAST(?5 AS TEXT) IS NULL OR lower(target) LIKE ?5 ESCAPE '\\')
           AND (CAST(?6 AS BIGINT) IS NULL OR ts_ms >= ?6)
           AND (CAST(?7 AS BIGINT) IS NULL OR ts_ms < ?7)
         ORDER BY id DESC LIMIT ?2",
        params![
            before,
            (limit + 1) as i64,
            filter.key.clone(),
            action,
            target,
            since,
            until
        ],
        |r| {
            let field = |i: usize| -> Result<String, StoreError> {
                Ok(bounded(&r.get::<String>(i)?, MAX_FIELD))
            };
            let entry = AuditEntry {
                id: r.get(0)?,
                at_unix_ms: r.get::<i64>(1)? as u64,
                key_id: r.get(2)?,
                key_name: field(3)?,
                action: field(4)?,
                target: field(5)?,
                result: field(6)?,
            };
            // The entry's JSON, roughly: its strings and the fixed part.
            let size = entry.key_name.len()
                + entry.action.len()
                + entry.target.len()
                + entry.result.len()
                + 128;
            if entries.len() == limit || (!entries.is_empty() && bytes + size > MAX_PAGE_BYTES) {
                more = true;
                return Ok(false);
            }
            bytes += size;
            entries.push(entry);
            Ok(true)
        },
    )?;
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

pub fn alerts(conn: &Conn) -> Result<Vec<StoredAlert>, StoreError> {
    let mut out = conn.query_map(
        "SELECT id, kind, host, app, state, message FROM alerts ORDER BY id",
        params![],
        |r| {
            Ok(StoredAlert {
                id: r.get(0)?,
                kind: r.get(1)?,
                host: r.get(2)?,
                app: r.get(3)?,
                state: r.get(4)?,
                message: r.get(5)?,
                delivered: Vec::new(),
            })
        },
    )?;
    for alert in &mut out {
        alert.delivered = conn.query_map(
            "SELECT webhook, attempts, status FROM alert_deliveries WHERE alert_id = ?1 ORDER BY rowid",
            params![alert.id],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<i64>(1)? as u32,
                    r.get::<Option<i64>>(2)?.map(|s| s as u16),
                ))
            },
        )?;
    }
    Ok(out)
}

impl AlertLog for Store {
    fn record(&self, alert: &Alert) -> Result<i64, String> {
        let kind = serde_json::to_value(alert.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let aspect_json = serde_json::to_string(&alert.aspect).ok();
        let detail_json = serde_json::to_string(&alert.detail).ok();
        let event = threshold_event(alert);
        let (id, event) = self
            .with_conn_blocking(|conn| conn.transaction(|conn| {
                // Only the leader records (and so delivers) alerts.
                self.check_fence(conn)?;
                let id: i64 = conn.query_row(
                    "INSERT INTO alerts (ts_ms, kind, host, app, state, message, severity, aspect_json, detail_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                    params![
                        alert.at_ms as i64,
                        kind,
                        alert.host,
                        alert.app,
                        alert.state,
                        alert.message,
                        alert.severity.as_str(),
                        aspect_json,
                        detail_json
                    ],
                    |r| r.get(0),
                )?;
                super::alerts::link(conn, alert, id, aspect_json.as_deref().unwrap_or(""))?;
                let event = match event {
                    Some(mut event) => {
                        event.id = insert_threshold_event(conn, &event)?;
                        Some(event)
                    }
                    None => None,
                };
                Ok((id, event))
            }))
            .map_err(|e| e.to_string())?;
        if let Some(event) = event {
            // Nobody listening is fine: the event is in the log.
            let _ = self.inner.events.send(event);
        }
        Ok(id)
    }

    fn delivered(&self, alert_id: i64, webhook: &str, delivery: &Delivery) {
        let status = delivery.last_status;
        let error = delivery.result.as_ref().err().cloned();
        let result = self.with_conn_blocking(|conn| {
            conn.execute(
                "INSERT INTO alert_deliveries (alert_id, webhook, attempts, status, error, ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    alert_id,
                    webhook,
                    i64::from(delivery.attempts),
                    status.map(i64::from),
                    error,
                    now_ms() as i64
                ],
            )?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(error = %e, alert_id, "cannot record an alert delivery");
        }
    }

    fn silences(&self, now_ms: u64) -> Result<Vec<fleetdeck_proto::Silence>, String> {
        self.with_conn_blocking(|conn| super::alerts::silences(conn, now_ms))
            .map_err(|e| e.to_string())
    }

    fn silenced(&self, alert_id: i64, silence: Option<i64>, held: bool) {
        if let Err(e) = self
            .with_conn_blocking(|conn| super::alerts::set_silenced(conn, alert_id, silence, held))
        {
            tracing::error!(error = %e, alert_id, "cannot record an alert's silence");
        }
    }

    fn acknowledged(&self, ids: &[i64]) -> Vec<i64> {
        self.with_conn_blocking(|conn| {
            let mut acked = Vec::new();
            for &id in ids {
                let yes: Option<bool> = conn.query_opt(
                    "SELECT ack_ms IS NOT NULL FROM alerts WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )?;
                if yes == Some(true) {
                    acked.push(id);
                }
            }
            Ok(acked)
        })
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read which alerts were acknowledged");
            Vec::new()
        })
    }

    fn must_record(&self) -> bool {
        self.inner.fence.load(std::sync::atomic::Ordering::SeqCst) != super::UNFENCED
    }

    fn undelivered(&self, since_ms: u64) -> Vec<(i64, Alert, Vec<String>)> {
        self.with_conn_blocking(|conn| super::alerts::undelivered(conn, since_ms))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the alerts not yet delivered");
                Vec::new()
            })
    }

    fn held(&self) -> Vec<(i64, Alert, i64)> {
        self.with_conn_blocking(|conn| super::alerts::held(conn))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the alerts held by silences");
                Vec::new()
            })
    }
}

/// Thresholds whose last alert is a problem (the collector stopped before they recovered), for
/// the evaluator to take up: no second alert, one recovery.
pub fn open_thresholds(conn: &Conn) -> Result<Vec<ResumedThreshold>, StoreError> {
    let sql = match conn.backend() {
        Backend::Sqlite => {
            "SELECT host, app, ts_ms, message, aspect_json, kind FROM alerts WHERE id IN
               (SELECT max(id) FROM alerts WHERE json_extract(aspect_json, '$.aspect') = 'threshold'
                GROUP BY host, app, aspect_json)"
        }
        Backend::Postgres => {
            "SELECT host, app, ts_ms, message, aspect_json, kind FROM alerts WHERE id IN
               (SELECT max(id) FROM alerts WHERE aspect_json::jsonb ->> 'aspect' = 'threshold'
                GROUP BY host, app, aspect_json)"
        }
    };
    let rows = conn.query_map(sql, params![], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<Option<String>>(1)?,
            r.get::<i64>(2)?,
            r.get::<String>(3)?,
            r.get::<String>(4)?,
            r.get::<String>(5)?,
        ))
    })?;
    Ok(rows
        .into_iter()
        .filter(|row| row.5 == "problem")
        .filter_map(|(host, app, ts, message, aspect, _)| {
            match serde_json::from_str::<Aspect>(&aspect).ok()? {
                Aspect::Threshold { rule, subject } => Some(ResumedThreshold {
                    host,
                    app,
                    rule,
                    subject,
                    since_ms: ts as u64,
                    message,
                }),
                _ => None,
            }
        })
        .collect())
}

/// A threshold alert is also an event of the log (`threshold-fired`, `threshold-cleared`): the
/// evaluator raises alerts without a transition, so nothing else would write one.
fn threshold_event(alert: &Alert) -> Option<FleetEvent> {
    if !matches!(alert.aspect, Aspect::Threshold { .. }) {
        return None;
    }
    let (kind, severity) = match alert.kind {
        AlertKind::Recovery => (FleetEventKind::ThresholdCleared, Severity::Info),
        _ => (FleetEventKind::ThresholdFired, alert.severity),
    };
    Some(FleetEvent {
        id: 0,
        at_unix_ms: alert.at_ms,
        severity,
        source: "collector".into(),
        kind,
        host: alert.host.clone(),
        app: alert.app.clone(),
        from: None,
        to: None,
        exit: None,
        message: alert.message.clone(),
        context: None,
        check: None,
        threshold: alert.detail.threshold.clone(),
    })
}

/// Its id.
fn insert_threshold_event(conn: &Conn, event: &FleetEvent) -> Result<i64, StoreError> {
    let detail_json = serde_json::json!({ "threshold": event.threshold }).to_string();
    conn.query_row(
        "INSERT INTO events (ts_ms, severity, source, kind, host, app, message, detail_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        params![
            event.at_unix_ms as i64,
            event.severity.as_str(),
            event.source,
            event.kind.as_str(),
            event.host,
            event.app,
            event.message,
            detail_json
        ],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::db::testing::each_backend;

    #[test]
    fn open_thresholds_are_those_whose_last_alert_is_a_problem() {
        each_backend(open_thresholds_on);
    }

    fn open_thresholds_on(conn: &Conn) {
        let insert = |kind: &str, subject: &str, ts: i64| {
            let aspect = format!(
                r#"{{"aspect":"threshold","name":{{"rule":"disk-full","subject":"{subject}"}}}}"#
            );
            conn.execute(
                "INSERT INTO alerts (ts_ms, kind, host, app, state, message, severity, aspect_json)
                 VALUES (?1, ?2, 'db-1', NULL, 'firing', ?3, 'warning', ?4)",
                params![ts, kind, format!("{subject} full"), aspect],
            )
            .expect("insert");
        };
        insert("problem", "/var", 1);
        insert("recovery", "/var", 2);
        insert("problem", "/data", 3);
        conn.execute(
            "INSERT INTO alerts (ts_ms, kind, host, app, state, message) VALUES (4, 'problem', 'db-1', NULL, 'down', 'db-1 is down')",
            params![],
        )
        .expect("a state alert");
        let open = open_thresholds(conn).expect("query");
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].subject.as_deref(), Some("/data"));
        assert_eq!((open[0].rule.as_str(), open[0].since_ms), ("disk-full", 3));
    }

    #[test]
    fn fields_are_cut_at_a_character_boundary() {
        let cases: &[(&str, usize, &str)] = &[
            ("short", 10, "short"),
            ("exactly10!", 10, "exactly10!"),
            ("eleven char", 10, "eleven …"),
            ("ééééé", 6, "é…"),
            ("ééééé", 7, "éé…"),
        ];
        for (input, max, want) in cases {
            let got = bounded(input, *max);
            assert_eq!(got, *want, "{input:?} at {max}");
            assert!(got.len() <= *max, "{got:?}");
        }
    }

    #[test]
    fn a_page_keeps_to_its_filter() {
        each_backend(a_page_keeps_to_its_filter_on);
    }

    fn a_page_keeps_to_its_filter_on(conn: &Conn) {
        let who = |name: &str| Who {
            key_id: Some(7),
            key_name: name.to_owned(),
        };
        record(conn, &who("ops"), "key.create", "key/temp", "ok", 10).expect("record");
        record(conn, &who("ops"), "env.write", "web-1/API", "ok", 20).expect("record");
        record(conn, &who("bob"), "key.delete", "key/temp", "ok", 30).expect("record");
        record(conn, &who("bob"), "app.restart", "web-1/api_x%", "ok", 40).expect("record");
        let ids = |filter: AuditFilter| -> Vec<u64> {
            page(conn, None, 100, &filter)
                .expect("page")
                .entries
                .iter()
                .map(|e| e.at_unix_ms)
                .collect()
        };
        assert_eq!(ids(AuditFilter::default()), [40, 30, 20, 10]);
        let f = |key: Option<&str>, action: Option<&str>, target: Option<&str>| AuditFilter {
            key: key.map(Into::into),
            action: action.map(Into::into),
            target: target.map(Into::into),
            ..AuditFilter::default()
        };
        assert_eq!(ids(f(Some("bob"), None, None)), [40, 30]);
        assert_eq!(ids(f(None, Some("key."), None)), [30, 10]);
        assert_eq!(ids(f(None, None, Some("WEB-1/api"))), [40, 20], "any case");
        // % and _ are literal, not wildcards.
        assert_eq!(ids(f(None, None, Some("api_x%"))), [40]);
        assert_eq!(ids(f(None, None, Some("%"))), [40]);
        assert_eq!(ids(f(Some("ops"), Some("key."), Some("temp"))), [10]);
        let range = AuditFilter {
            since_ms: Some(20),
            until_ms: Some(40),
            ..AuditFilter::default()
        };
        assert_eq!(ids(range), [30, 20], "[since, until)");
    }

    #[test]
    fn a_page_is_bounded_in_bytes_and_pages_on() {
        each_backend(a_page_is_bounded_on);
    }

    fn a_page_is_bounded_on(conn: &Conn) {
        let who = Who::command_line();
        // Rows as large as one before fields were bounded: written past `record`.
        let huge = "k".repeat(1024 * 1024);
        for i in 0..300 {
            conn.execute(
                "INSERT INTO audit (ts_ms, key_name, action, target, result) VALUES (?1, 'old', ?2, 't', 'r')",
                params![i as i64, huge],
            )
            .expect("insert");
        }
        record(conn, &who, "app.restart", "vm/web", "ok", 1).expect("record");
        let mut before = None;
        let mut seen = 0;
        loop {
            let page = page(conn, before, 1000, &AuditFilter::default()).expect("page");
            let bytes: usize = page
                .entries
                .iter()
                .map(|e| e.key_name.len() + e.action.len() + e.target.len() + e.result.len())
                .sum();
            assert!(bytes <= MAX_PAGE_BYTES, "a page of {bytes} bytes");
            assert!(!page.entries.is_empty());
            assert!(page.entries.iter().all(|e| e.action.len() <= MAX_FIELD));
            seen += page.entries.len();
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        assert_eq!(seen, 301, "every entry on some page, once");
    }
}

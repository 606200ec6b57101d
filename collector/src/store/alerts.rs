//! The alert history as incidents (a problem from its start to its recovery, who acknowledged it,
//! where it was delivered) and the silences. Alerts are written by the alerting task through
//! [`crate::alerting::AlertLog`] (`audit.rs`); this module links, reads and changes them.

use super::db::{params, Conn, Row};
use fleetdeck_proto::{AlertDelivery, AlertPage, AlertRecord, AlertState, Severity, Silence};

use super::StoreError;
use crate::alerting::rules::{Alert, AlertKind, Aspect, Detail};
use crate::alerting::silence::{aspect_kind, aspect_name, Checked};

/// Alerts per page: by default, and at most; a page also stops at [`MAX_PAGE_BYTES`].
pub const DEFAULT_LIMIT: usize = 200;
pub const MAX_LIMIT: usize = 1000;
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// Marks the open alert of `alert`'s subject resolved by the healthy alert `id` (a recovery, a
/// flap that ended healthy); a crash its restart policy healed resolves itself.
pub fn link(conn: &Conn, alert: &Alert, id: i64, aspect_json: &str) -> Result<(), StoreError> {
    if !alert.healthy {
        return Ok(());
    }
    if alert.kind == AlertKind::Problem {
        conn.execute(
            "UPDATE alerts SET resolved_ms = ts_ms, resolved_by = id WHERE id = ?1",
            params![id],
        )?;
        return Ok(());
    }
    conn.execute(
        "UPDATE alerts SET resolved_ms = ?1, resolved_by = ?2, held = 0
         WHERE host = ?3 AND app IS NOT DISTINCT FROM ?4 AND aspect_json IS NOT DISTINCT FROM ?5 AND kind IN ('problem', 'flapping')
           AND resolved_ms IS NULL AND id < ?2",
        params![alert.at_ms as i64, id, alert.host, alert.app, aspect_json],
    )?;
    Ok(())
}

/// What `GET /v1/alerts` filters on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<AlertState>,
    /// Globs over names.
    pub host: Option<String>,
    pub app: Option<String>,
    pub severity: Option<Severity>,
    /// Started at or after / before (Unix ms).
    pub since_ms: Option<u64>,
    pub before_ms: Option<u64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// Open first, then acknowledged, then resolved; newest first within each.
const RANK: &str =
    "CAST(CASE WHEN resolved_ms IS NOT NULL THEN 2 WHEN ack_ms IS NOT NULL THEN 1 ELSE 0 END AS BIGINT)";

const COLUMNS: &str = "id, kind, severity, host, app, aspect_json, message, detail_json, ts_ms, \
     ack_ms, ack_by, ack_note, resolved_ms, resolved_by, silenced_by";

/// A page of alerts at `now_ms` (for the durations of unresolved ones).
pub fn page(conn: &Conn, filter: &Filter, now_ms: u64) -> Result<AlertPage, StoreError> {
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let (after_rank, after_id) = match filter.cursor.as_deref() {
        None => (-1, i64::MAX),
        Some(c) => parse_cursor(c).ok_or_else(|| {
            StoreError::Invalid(format!(
                "cursor {:?} is not one this API gave; send the previous page's next_cursor",
                super::audit::bounded(c, 64)
            ))
        })?,
    };
    let state = filter.state.map(|s| match s {
        AlertState::Open => 0i64,
        AlertState::Acknowledged => 1,
        AlertState::Resolved => 2,
    });
    let glob = conn.glob_operator();
    let sql = format!(
        "SELECT {COLUMNS}, {RANK} AS rank FROM alerts
         WHERE kind IN ('problem', 'flapping')
           AND (CAST(?1 AS BIGINT) IS NULL OR {RANK} = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR host {glob} ?2)
           AND (CAST(?3 AS TEXT) IS NULL OR app {glob} ?3)
           AND (CAST(?4 AS TEXT) IS NULL OR coalesce(severity, 'critical') = ?4)
           AND (CAST(?5 AS BIGINT) IS NULL OR ts_ms >= ?5)
           AND (CAST(?6 AS BIGINT) IS NULL OR ts_ms < ?6)
           AND ({RANK} > ?7 OR ({RANK} = ?7 AND id < ?8))
         ORDER BY rank, id DESC
         LIMIT ?9"
    );
    let rows = conn.query_map(
        &sql,
        params![
            state,
            filter.host.as_deref().map(|g| conn.glob_pattern(g)),
            filter.app.as_deref().map(|g| conn.glob_pattern(g)),
            filter.severity.map(|s| s.as_str()),
            filter.since_ms.map(|t| t as i64),
            filter.before_ms.map(|t| t as i64),
            after_rank,
            after_id,
            (limit + 1) as i64,
        ],
        |r| Ok((record(r, now_ms)?, r.get::<i64>(15)?)),
    )?;
    let mut alerts = Vec::new();
    let mut bytes = 0;
    let mut next_cursor = None;
    for (mut alert, rank) in rows {
        if alerts.len() == limit || (bytes > MAX_PAGE_BYTES && !alerts.is_empty()) {
            let last: &AlertRecord = alerts.last().expect("a page before the cut");
            next_cursor = Some(format!("{}-{}", rank_of(last), last.id));
            break;
        }
        let _ = rank;
        alert.deliveries = deliveries(conn, &alert)?;
        bytes += serde_json::to_vec(&alert).map(|v| v.len()).unwrap_or(0);
        alerts.push(alert);
    }
    Ok(AlertPage {
        alerts,
        next_cursor,
    })
}

fn rank_of(alert: &AlertRecord) -> i64 {
    match alert.state {
        AlertState::Open => 0,
        AlertState::Acknowledged => 1,
        AlertState::Resolved => 2,
    }
}

fn parse_cursor(c: &str) -> Option<(i64, i64)> {
    let (rank, id) = c.split_once('-')?;
    let rank: i64 = rank.parse().ok()?;
    let id: i64 = id.parse().ok()?;
    ((0..=2).contains(&rank) && id > 0).then_some((rank, id))
}

/// One alert by id, with its deliveries.
pub fn get(conn: &Conn, id: i64, now_ms: u64) -> Result<Option<AlertRecord>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1 AND kind IN ('problem', 'flapping')");
    let Some(mut alert) = conn.query_opt(&sql, params![id], |r| record(r, now_ms))? else {
        return Ok(None);
    };
    alert.deliveries = deliveries(conn, &alert)?;
    Ok(Some(alert))
}

fn record(r: &Row<'_>, now_ms: u64) -> Result<AlertRecord, StoreError> {
    let aspect: Aspect = r
        .get::<Option<String>>(5)?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    let detail: Detail = r
        .get::<Option<String>>(7)?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    let started = r.get::<i64>(8)?.max(0) as u64;
    let ack_ms = r.get::<Option<i64>>(9)?.map(|t| t.max(0) as u64);
    let resolved_ms = r.get::<Option<i64>>(12)?.map(|t| t.max(0) as u64);
    let state = match (resolved_ms, ack_ms) {
        (Some(_), _) => AlertState::Resolved,
        (None, Some(_)) => AlertState::Acknowledged,
        (None, None) => AlertState::Open,
    };
    Ok(AlertRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        state,
        severity: r
            .get::<Option<String>>(2)?
            .and_then(|s| Severity::parse(&s))
            .unwrap_or(Severity::Critical),
        host: r.get(3)?,
        app: r.get(4)?,
        aspect: aspect_kind(&aspect).to_owned(),
        aspect_name: aspect_name(&aspect),
        message: r.get(6)?,
        context: detail.context,
        check: detail.check,
        threshold: detail.threshold,
        reason: detail.reason,
        started_unix_ms: started,
        acknowledged_unix_ms: ack_ms,
        acknowledged_by: r.get(10)?,
        ack_note: r.get(11)?,
        resolved_unix_ms: resolved_ms,
        duration_ms: resolved_ms.unwrap_or(now_ms).saturating_sub(started),
        silenced_by: r.get(14)?,
        deliveries: Vec::new(),
    })
}

/// The deliveries of `alert` and of the alert that resolved it.
fn deliveries(conn: &Conn, alert: &AlertRecord) -> Result<Vec<AlertDelivery>, StoreError> {
    let rows = conn.query_map(
        "SELECT d.webhook, a.kind, d.attempts, d.status, d.error, d.ts_ms
         FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
         WHERE d.alert_id = ?1 OR d.alert_id = (SELECT resolved_by FROM alerts WHERE id = ?1 AND resolved_by != id)
         ORDER BY d.rowid",
        params![alert.id],
        |r| {
            Ok(AlertDelivery {
                channel: r.get(0)?,
                of: r.get(1)?,
                attempts: r.get::<i64>(2)?.clamp(0, u32::MAX.into()) as u32,
                last_status: r.get::<Option<i64>>(3)?.map(|s| s.clamp(0, 999) as u16),
                last_error: r.get(4)?,
                at_unix_ms: r.get::<i64>(5)?.max(0) as u64,
            })
        },
    )?;
    Ok(rows)
}

/// Why an alert could not be acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no alert with id {0}; GET /v1/alerts lists them")]
    NotFound(i64),
    #[error("alert {0} is resolved already: nothing to acknowledge")]
    Resolved(i64),
    #[error("alert {id} was acknowledged already by {by}")]
    Already { id: i64, by: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Acknowledges open alert `id` for `by` (a key's name) with `note`.
pub fn ack(
    conn: &Conn,
    id: i64,
    by: &str,
    note: Option<&str>,
    now_ms: u64,
) -> Result<AlertRecord, AckError> {
    let alert = get(conn, id, now_ms)?.ok_or(AckError::NotFound(id))?;
    match alert.state {
        AlertState::Resolved => return Err(AckError::Resolved(id)),
        AlertState::Acknowledged => {
            return Err(AckError::Already {
                id,
                by: alert.acknowledged_by.unwrap_or_default(),
            })
        }
        AlertState::Open => {}
    }
    conn.execute(
        "UPDATE alerts SET ack_ms = ?2, ack_by = ?3, ack_note = ?4 WHERE id = ?1 AND ack_ms IS NULL",
        params![id, now_ms as i64, by, note],
    )?;
    get(conn, id, now_ms)?.ok_or(AckError::NotFound(id))
}

/// Resolves the open alerts of `hosts` (no longer in the config) at `now_ms`, with no recovery
/// alert: answers how many.
pub fn resolve_hosts(conn: &Conn, hosts: &[String], now_ms: u64) -> Result<usize, StoreError> {
    let mut resolved = 0;
    for host in hosts {
        resolved += conn.execute(
            "UPDATE alerts SET resolved_ms = ?2, held = 0
             WHERE host = ?1 AND kind IN ('problem', 'flapping') AND resolved_ms IS NULL",
            params![host, now_ms as i64],
        )?;
    }
    Ok(resolved)
}

/// Resolves the open problems of app `app` of `host`, which its agent no longer watches: it left
/// the fleet, nothing recovered, so no recovery goes out.
pub fn resolve_app(conn: &Conn, host: &str, app: &str, now_ms: u64) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE alerts SET resolved_ms = ?3, held = 0
         WHERE host = ?1 AND app = ?2 AND kind IN ('problem', 'flapping') AND resolved_ms IS NULL",
        params![host, app, now_ms as i64],
    )
}

/// Records that silence `silence` kept alert `id` from the channels; `held` while it waits for
/// the silence to end.
pub fn set_silenced(
    conn: &Conn,
    id: i64,
    silence: Option<i64>,
    held: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE alerts SET silenced_by = coalesce(?2, silenced_by), held = ?3 WHERE id = ?1",
        params![id, silence, held],
    )?;
    Ok(())
}

/// The alerts held by a silence and not resolved (a restarted collector takes them up).
pub fn held(conn: &Conn) -> Result<Vec<(i64, Alert, i64)>, StoreError> {
    let rows = conn.query_map(
        "SELECT id, kind, host, app, state, message, ts_ms, severity, aspect_json, detail_json, silenced_by
         FROM alerts WHERE held = 1 AND resolved_ms IS NULL ORDER BY id",
        params![],
        |r| {
            let mut alert = alert_row(r)?;
            if alert.kind != AlertKind::Flapping {
                alert.kind = AlertKind::Problem;
            }
            alert.healthy = false;
            Ok((r.get::<i64>(0)?, alert, r.get::<Option<i64>>(10)?.unwrap_or(0)))
        },
    )?;
    Ok(rows)
}

/// Alerts recorded since `since_ms` that no silence took, oldest first, each with the channels
/// its deliveries were recorded for (see [`crate::alerting::AlertLog::undelivered`]).
pub fn undelivered(
    conn: &Conn,
    since_ms: u64,
) -> Result<Vec<(i64, Alert, Vec<String>)>, StoreError> {
    let alerts = conn.query_map(
        "SELECT id, kind, host, app, state, message, ts_ms, severity, aspect_json, detail_json, resolved_by
         FROM alerts WHERE ts_ms >= ?1 AND held = 0 AND silenced_by IS NULL ORDER BY id",
        params![since_ms as i64],
        |r| {
            let id = r.get::<i64>(0)?;
            let mut alert = alert_row(r)?;
            // A recovery, or a problem healed as it went out (it resolved itself).
            alert.healthy = matches!(alert.kind, AlertKind::Recovery)
                || r.get::<Option<i64>>(10)? == Some(id);
            Ok((id, alert))
        },
    )?;
    let mut out = Vec::with_capacity(alerts.len());
    for (id, alert) in alerts {
        let done = conn.query_map(
            "SELECT webhook FROM alert_deliveries WHERE alert_id = ?1",
            params![id],
            |r| r.get::<String>(0),
        )?;
        out.push((id, alert, done));
    }
    Ok(out)
}

/// An alert as recorded: columns 1 to 9 of `SELECT id, kind, host, app, state, message, ts_ms,
/// severity, aspect_json, detail_json`.
fn alert_row(r: &Row<'_>) -> Result<Alert, StoreError> {
    let kind = match r.get::<String>(1)?.as_str() {
        "flapping" => AlertKind::Flapping,
        "recovery" => AlertKind::Recovery,
        "flap-ended" => AlertKind::FlapEnded,
        _ => AlertKind::Problem,
    };
    Ok(Alert {
        kind,
        host: r.get(2)?,
        app: r.get(3)?,
        state: r.get(4)?,
        exit: None,
        message: r.get(5)?,
        at_ms: r.get::<i64>(6)?.max(0) as u64,
        severity: r
            .get::<Option<String>>(7)?
            .and_then(|s| Severity::parse(&s))
            .unwrap_or(Severity::Critical),
        aspect: r
            .get::<Option<String>>(8)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        detail: r
            .get::<Option<String>>(9)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        healthy: false,
    })
}

const SILENCE_COLUMNS: &str =
    "id, hosts, apps, kind, reason, created_by, starts_ms, ends_ms, removed_ms, removed_by";

fn silence(r: &Row<'_>) -> Result<Silence, StoreError> {
    Ok(Silence {
        id: r.get(0)?,
        hosts: r.get(1)?,
        apps: r.get(2)?,
        kind: r.get(3)?,
        reason: r.get(4)?,
        created_by: r.get(5)?,
        starts_unix_ms: r.get::<i64>(6)?.max(0) as u64,
        ends_unix_ms: r.get::<i64>(7)?.max(0) as u64,
        removed_unix_ms: r.get::<Option<i64>>(8)?.map(|t| t.max(0) as u64),
        removed_by: r.get(9)?,
    })
}

/// Silences not over at `now_ms` (in force, or to come), soonest end first.
pub fn silences(conn: &Conn, now_ms: u64) -> Result<Vec<Silence>, StoreError> {
    conn.query_map(
        &format!(
            "SELECT {SILENCE_COLUMNS} FROM silences
             WHERE removed_ms IS NULL AND ends_ms > ?1 ORDER BY ends_ms, id LIMIT 10000"
        ),
        params![now_ms as i64],
        silence,
    )
}

/// Stores a checked silence made by `by`.
pub fn add_silence(
    conn: &Conn,
    checked: &Checked,
    by: &str,
    now_ms: u64,
) -> Result<Silence, StoreError> {
    let id: i64 = conn.query_row(
        "INSERT INTO silences (hosts, apps, kind, reason, created_by, created_ms, starts_ms, ends_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        params![
            checked.hosts,
            checked.apps,
            checked.kind,
            checked.reason,
            by,
            now_ms as i64,
            checked.starts_ms as i64,
            checked.ends_ms as i64
        ],
        |r| r.get(0),
    )?;
    conn.query_row(
        &format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1"),
        params![id],
        silence,
    )
}

/// Opens the silence of maintenance window `m` from `start_ms` to `end_ms`, unless it exists
/// already (or was removed early by someone: it is not made again). Answers the new one.
pub fn open_maintenance(
    conn: &Conn,
    m: &crate::alerting::maintenance::Maintenance,
    start_ms: u64,
    end_ms: u64,
    now_ms: u64,
) -> Result<Option<Silence>, StoreError> {
    let by = format!("maintenance {}", m.name);
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM silences WHERE created_by = ?1 AND starts_ms = ?2)",
        params![by, start_ms as i64],
        |r| r.get(0),
    )?;
    if exists {
        return Ok(None);
    }
    let checked = Checked {
        hosts: m.hosts.clone(),
        apps: m.apps.clone(),
        kind: None,
        reason: m.reason.clone(),
        starts_ms: start_ms,
        ends_ms: end_ms,
    };
    add_silence(conn, &checked, &by, now_ms).map(Some)
}

/// Ends silence `id` now, for `by`: `None` if there is none in force or to come.
pub fn remove_silence(
    conn: &Conn,
    id: i64,
    by: &str,
    now_ms: u64,
) -> Result<Option<Silence>, StoreError> {
    let changed = conn.execute(
        "UPDATE silences SET removed_ms = ?2, removed_by = ?3
         WHERE id = ?1 AND removed_ms IS NULL AND ends_ms > ?2",
        params![id, now_ms as i64, by],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1"),
        params![id],
        silence,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::AlertLog;
    use crate::store::Store;

    fn alert(kind: AlertKind, host: &str, app: Option<&str>, at_ms: u64, healthy: bool) -> Alert {
        Alert {
            kind,
            host: host.into(),
            app: app.map(Into::into),
            state: if healthy { "running" } else { "failed" }.into(),
            exit: None,
            message: format!("{kind} {host}"),
            at_ms,
            aspect: Aspect::State,
            severity: Severity::Critical,
            detail: Detail {
                reason: Some("why".into()),
                ..Detail::default()
            },
            healthy,
        }
    }

    fn store() -> (crate::store::db::testing::StoreDb, Store) {
        let db = crate::store::db::testing::store_db();
        let store = Store::open(&db.target).expect("store");
        (db, store)
    }

    fn page_of(store: &Store, filter: &Filter) -> AlertPage {
        store
            .with_conn_blocking(|c| page(c, filter, 10_000))
            .expect("page")
    }

    #[test]
    fn a_recovery_resolves_its_problem_and_a_healed_crash_itself() {
        let (_d, s) = store();
        let web = s
            .record(&alert(AlertKind::Problem, "vm", Some("web"), 100, false))
            .expect("web");
        let db = s
            .record(&alert(AlertKind::Problem, "vm", Some("db"), 200, false))
            .expect("db");
        // The recovery of another subject resolves nothing; web's resolves web's.
        let rec = s
            .record(&alert(AlertKind::Recovery, "vm", Some("web"), 900, true))
            .expect("rec");
        let blip = s
            .record(&alert(AlertKind::Problem, "vm", Some("cron"), 950, true))
            .expect("blip");
        s.delivered(
            rec,
            "https://hooks.example",
            &crate::alerting::Delivery {
                attempts: 1,
                last_status: Some(200),
                result: Ok(200),
            },
        );
        let all = page_of(&s, &Filter::default());
        let ids: Vec<(i64, AlertState)> = all.alerts.iter().map(|a| (a.id, a.state)).collect();
        // Open first, then resolved; newest first within each. Recoveries are not alerts.
        assert_eq!(
            ids,
            vec![
                (db, AlertState::Open),
                (blip, AlertState::Resolved),
                (web, AlertState::Resolved)
            ]
        );
        let web_rec = &all.alerts[2];
        assert_eq!(
            (web_rec.resolved_unix_ms, web_rec.duration_ms),
            (Some(900), 800)
        );
        assert_eq!(web_rec.reason.as_deref(), Some("why"));
        assert_eq!(web_rec.deliveries.len(), 1);
        assert_eq!(web_rec.deliveries[0].of, "recovery");
        assert_eq!(all.alerts[1].resolved_unix_ms, Some(950));
        // A still-open alert's duration runs to now.
        assert_eq!(all.alerts[0].duration_ms, 10_000 - 200);
    }

    #[test]
    fn acknowledging_records_who_once_and_never_a_resolved_alert() {
        let (_d, s) = store();
        let id = s
            .record(&alert(AlertKind::Problem, "vm", None, 100, false))
            .expect("id");
        let acked = s
            .with_conn_blocking(|c| Ok(ack(c, id, "alice", Some("on it"), 500)))
            .expect("conn")
            .expect("acknowledged");
        assert_eq!(acked.state, AlertState::Acknowledged);
        assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
        assert_eq!(acked.ack_note.as_deref(), Some("on it"));
        let again = s
            .with_conn_blocking(|c| Ok(ack(c, id, "bob", None, 600)))
            .expect("conn");
        assert!(
            matches!(again, Err(AckError::Already { ref by, .. }) if by == "alice"),
            "{again:?}"
        );
        let missing = s
            .with_conn_blocking(|c| Ok(ack(c, 999, "bob", None, 600)))
            .expect("conn");
        assert!(matches!(missing, Err(AckError::NotFound(999))));
        s.record(&alert(AlertKind::Recovery, "vm", None, 700, true))
            .expect("recovery");
        let other = s
            .record(&alert(AlertKind::Problem, "vm2", None, 800, false))
            .expect("other");
        s.record(&alert(AlertKind::Recovery, "vm2", None, 900, true))
            .expect("recovery");
        let resolved = s
            .with_conn_blocking(|c| Ok(ack(c, other, "bob", None, 950)))
            .expect("conn");
        assert!(
            matches!(resolved, Err(AckError::Resolved(_))),
            "{resolved:?}"
        );
        // The acknowledged one, resolved, keeps who acknowledged it.
        let got = s
            .with_conn_blocking(|c| get(c, id, 1_000))
            .expect("get")
            .expect("alert");
        assert_eq!(
            (got.state, got.acknowledged_by.as_deref()),
            (AlertState::Resolved, Some("alice"))
        );
    }

    #[test]
    fn pages_filter_and_go_on_from_their_cursor() {
        let (_d, s) = store();
        for i in 0..5u64 {
            s.record(&alert(
                AlertKind::Problem,
                &format!("db-{i}"),
                None,
                100 + i,
                false,
            ))
            .expect("open");
        }
        for i in 0..3u64 {
            s.record(&alert(
                AlertKind::Problem,
                &format!("web-{i}"),
                None,
                200 + i,
                false,
            ))
            .expect("problem");
            s.record(&alert(
                AlertKind::Recovery,
                &format!("web-{i}"),
                None,
                300 + i,
                true,
            ))
            .expect("recovery");
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let p = page_of(
                &s,
                &Filter {
                    limit: Some(3),
                    cursor: cursor.clone(),
                    ..Filter::default()
                },
            );
            seen.extend(p.alerts.iter().map(|a| (a.host.clone(), a.state)));
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 8, "{seen:?}");
        assert!(seen[..5]
            .iter()
            .all(|(h, st)| h.starts_with("db-") && *st == AlertState::Open));
        assert_eq!(seen[0].0, "db-4");
        let resolved = page_of(
            &s,
            &Filter {
                state: Some(AlertState::Resolved),
                ..Filter::default()
            },
        );
        assert_eq!(resolved.alerts.len(), 3);
        let db = page_of(
            &s,
            &Filter {
                host: Some("db-?".into()),
                since_ms: Some(103),
                ..Filter::default()
            },
        );
        assert_eq!(
            db.alerts
                .iter()
                .map(|a| a.host.as_str())
                .collect::<Vec<_>>(),
            ["db-4", "db-3"]
        );
        let bad = s.with_conn_blocking(|c| {
            page(
                c,
                &Filter {
                    cursor: Some("x".into()),
                    ..Filter::default()
                },
                0,
            )
        });
        assert!(matches!(bad, Err(StoreError::Invalid(_))));
    }

    #[test]
    fn silences_are_listed_until_they_end_or_are_removed() {
        let (_d, s) = store();
        let checked = |ends_ms| Checked {
            hosts: "db-*".into(),
            apps: None,
            kind: None,
            reason: "maintenance".into(),
            starts_ms: 100,
            ends_ms,
        };
        let short = s
            .with_conn_blocking(|c| add_silence(c, &checked(200), "alice", 100))
            .expect("short");
        let long = s
            .with_conn_blocking(|c| add_silence(c, &checked(900), "bob", 100))
            .expect("long");
        assert_eq!(short.created_by, "alice");
        let ids = |now| -> Vec<i64> {
            s.with_conn_blocking(|c| silences(c, now))
                .expect("list")
                .iter()
                .map(|x| x.id)
                .collect()
        };
        assert_eq!(ids(150), vec![short.id, long.id]);
        assert_eq!(ids(250), vec![long.id]);
        let removed = s
            .with_conn_blocking(|c| remove_silence(c, long.id, "carol", 300))
            .expect("rm");
        assert_eq!(removed.and_then(|r| r.removed_by).as_deref(), Some("carol"));
        assert!(ids(300).is_empty());
        let twice = s
            .with_conn_blocking(|c| remove_silence(c, long.id, "carol", 300))
            .expect("rm");
        assert_eq!(twice, None);
    }

    #[test]
    fn held_alerts_come_back_until_resolved() {
        let (_d, s) = store();
        let id = s
            .record(&alert(AlertKind::Problem, "vm", Some("web"), 100, false))
            .expect("id");
        s.silenced(id, Some(7), true);
        let held = s.held();
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].0, held[0].2, held[0].1.host.as_str()),
            (id, 7, "vm")
        );
        s.record(&alert(AlertKind::Recovery, "vm", Some("web"), 200, true))
            .expect("recovery");
        assert!(s.held().is_empty());
        let got = s
            .with_conn_blocking(|c| get(c, id, 300))
            .expect("get")
            .expect("alert");
        assert_eq!(got.silenced_by, Some(7));
    }
}

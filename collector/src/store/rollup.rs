//! Rollups and retention, run on a schedule so the file stays bounded: raw samples become
//! 1-minute buckets, those become 1-hour buckets, and each table keeps only its retention.
//! A backfill can bring samples older than what is already rolled up: the writer marks the oldest
//! such time ([`mark_late`]) and the next run recomputes the buckets from there.

use super::db::{params, Backend, Conn};
use super::StoreError;
use crate::config::Retention;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// Records that raw samples from `ts_ms` on arrived after their minute may have been rolled up.
pub fn mark_late(conn: &Conn, ts_ms: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE rollup_state SET dirty_from = CASE WHEN dirty_from IS NULL OR dirty_from > ?1 THEN ?1 ELSE dirty_from END
         WHERE name = '1m' AND done_until > ?1",
        params![ts_ms as i64],
    )?;
    Ok(())
}

/// A rollup's buckets are computed again when late samples arrive: each statement replaces the
/// buckets it computes (`ON CONFLICT DO UPDATE`, in SQLite and PostgreSQL alike).
const HOST_UPSERT: &str = "ON CONFLICT (host_id, bucket_ms) DO UPDATE SET
     n = excluded.n, cpu = excluded.cpu, cpu_max = excluded.cpu_max, mem_used = excluded.mem_used,
     mem_total = excluded.mem_total, swap_used = excluded.swap_used, load1 = excluded.load1,
     disk_used = excluded.disk_used, disk_total = excluded.disk_total, net_rx = excluded.net_rx,
     net_tx = excluded.net_tx, disk_read = excluded.disk_read, disk_write = excluded.disk_write,
     root_inodes_pct = excluded.root_inodes_pct";

const APP_UPSERT: &str = "ON CONFLICT (host_id, app, bucket_ms) DO UPDATE SET
     n = excluded.n, cpu = excluded.cpu, cpu_max = excluded.cpu_max, mem = excluded.mem,
     mem_max = excluded.mem_max, mem_limit = excluded.mem_limit, net_rx = excluded.net_rx,
     net_tx = excluded.net_tx, checks_json = excluded.checks_json";

/// Hosts' minutes from their raw samples.
const HOST_MINUTES_SQL: &str = "INSERT INTO samples_1m
     (host_id, bucket_ms, n, cpu, cpu_max, mem_used, mem_total, swap_used, load1, disk_used, disk_total, net_rx, net_tx,
      disk_read, disk_write, root_inodes_pct)
     SELECT host_id, ts_ms / 60000 * 60000, count(*), avg(cpu), max(cpu), CAST(avg(mem_used) AS BIGINT),
            max(mem_total), CAST(avg(swap_used) AS BIGINT), avg(load1), max(disk_used), max(disk_total),
            avg(net_rx), avg(net_tx), avg(disk_read), avg(disk_write), max(root_inodes_pct)
     FROM samples_raw WHERE ts_ms >= ?1 AND ts_ms < ?2
     GROUP BY host_id, ts_ms / 60000 * 60000 ";

/// Hosts' hours from their minutes, weighted by each minute's sample count (a mean over no
/// sample is NULL, not a division by zero).
const HOST_HOURS_SQL: &str = "INSERT INTO samples_1h
     (host_id, bucket_ms, n, cpu, cpu_max, mem_used, mem_total, swap_used, load1, disk_used, disk_total, net_rx, net_tx,
      disk_read, disk_write, root_inodes_pct)
     SELECT host_id, bucket_ms / 3600000 * 3600000, sum(n),
            sum(cpu * n) / nullif(sum(CASE WHEN cpu IS NULL THEN 0 ELSE n END), 0),
            max(cpu_max), CAST(sum(mem_used * n) / nullif(sum(n), 0) AS BIGINT), max(mem_total),
            CAST(sum(swap_used * n) / nullif(sum(n), 0) AS BIGINT), sum(load1 * n) / nullif(sum(n), 0),
            max(disk_used), max(disk_total),
            sum(net_rx * n) / nullif(sum(CASE WHEN net_rx IS NULL THEN 0 ELSE n END), 0),
            sum(net_tx * n) / nullif(sum(CASE WHEN net_tx IS NULL THEN 0 ELSE n END), 0),
            sum(disk_read * n) / nullif(sum(CASE WHEN disk_read IS NULL THEN 0 ELSE n END), 0),
            sum(disk_write * n) / nullif(sum(CASE WHEN disk_write IS NULL THEN 0 ELSE n END), 0),
            max(root_inodes_pct)
     FROM samples_1m WHERE bucket_ms >= ?1 AND bucket_ms < ?2
     GROUP BY host_id, bucket_ms / 3600000 * 3600000 ";

/// Apps' minutes from their raw samples. Checks: per check name, the average latency of the runs
/// that got one and the share of passing runs (`[{"name", "latency_ms", "ok_ratio"}]`).
const APP_MINUTES_SQLITE: &str = "INSERT INTO app_samples_1m
     (host_id, app, bucket_ms, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, checks_json)
     SELECT r.host_id, r.app, r.ts_ms / 60000 * 60000 AS b, count(*), avg(r.cpu), max(r.cpu),
            CAST(avg(r.mem) AS BIGINT), max(r.mem), max(r.mem_limit), avg(r.net_rx), avg(r.net_tx),
            (SELECT json_group_array(json_object('name', name, 'latency_ms', lat, 'ok_ratio', ok))
             FROM (SELECT json_extract(c.value, '$.name') AS name,
                          avg(json_extract(c.value, '$.latency_ms')) AS lat,
                          avg(CASE WHEN json_extract(c.value, '$.ok') THEN 1.0 ELSE 0.0 END) AS ok
                   FROM app_samples_raw r2, json_each(r2.checks_json) c
                   WHERE r2.host_id = r.host_id AND r2.app = r.app
                     AND r2.ts_ms >= r.ts_ms / 60000 * 60000 AND r2.ts_ms < r.ts_ms / 60000 * 60000 + 60000
                   GROUP BY name))
     FROM app_samples_raw r WHERE r.ts_ms >= ?1 AND r.ts_ms < ?2
     GROUP BY r.host_id, r.app, r.ts_ms / 60000 ";

/// The same on PostgreSQL: the buckets first, then each bucket's checks (jsonb).
const APP_MINUTES_POSTGRES: &str = "INSERT INTO app_samples_1m
     (host_id, app, bucket_ms, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, checks_json)
     SELECT g.host_id, g.app, g.b, g.n, g.cpu, g.cpu_max, g.mem, g.mem_max, g.mem_limit, g.net_rx, g.net_tx,
            (SELECT json_agg(json_build_object('name', c.name, 'latency_ms', c.lat, 'ok_ratio', c.ok))::text
             FROM (SELECT e ->> 'name' AS name,
                          avg((e ->> 'latency_ms')::float8) AS lat,
                          avg(CASE WHEN (e ->> 'ok')::boolean THEN 1.0 ELSE 0.0 END)::float8 AS ok
                   FROM app_samples_raw r2, jsonb_array_elements(r2.checks_json::jsonb) e
                   WHERE r2.host_id = g.host_id AND r2.app = g.app AND r2.ts_ms >= g.b AND r2.ts_ms < g.b + 60000
                   GROUP BY e ->> 'name') c)
     FROM (SELECT host_id, app, ts_ms / 60000 * 60000 AS b, count(*) AS n, avg(cpu) AS cpu, max(cpu) AS cpu_max,
                  CAST(avg(mem) AS BIGINT) AS mem, max(mem) AS mem_max, max(mem_limit) AS mem_limit,
                  avg(net_rx) AS net_rx, avg(net_tx) AS net_tx
           FROM app_samples_raw WHERE ts_ms >= ?1 AND ts_ms < ?2
           GROUP BY host_id, app, ts_ms / 60000 * 60000) g
     WHERE true ";

/// Apps' hours from their minutes, weighted by each minute's sample count.
const APP_HOURS_SQLITE: &str = "INSERT INTO app_samples_1h
     (host_id, app, bucket_ms, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, checks_json)
     SELECT m.host_id, m.app, m.bucket_ms / 3600000 * 3600000, sum(m.n),
            sum(m.cpu * m.n) / nullif(sum(CASE WHEN m.cpu IS NULL THEN 0 ELSE m.n END), 0), max(m.cpu_max),
            CAST(sum(m.mem * m.n) / nullif(sum(CASE WHEN m.mem IS NULL THEN 0 ELSE m.n END), 0) AS BIGINT),
            max(m.mem_max), max(m.mem_limit),
            sum(m.net_rx * m.n) / nullif(sum(CASE WHEN m.net_rx IS NULL THEN 0 ELSE m.n END), 0),
            sum(m.net_tx * m.n) / nullif(sum(CASE WHEN m.net_tx IS NULL THEN 0 ELSE m.n END), 0),
            (SELECT json_group_array(json_object('name', name, 'latency_ms', lat, 'ok_ratio', ok))
             FROM (SELECT json_extract(c.value, '$.name') AS name,
                          sum(json_extract(c.value, '$.latency_ms') * m2.n)
                            / nullif(sum(CASE WHEN json_extract(c.value, '$.latency_ms') IS NULL THEN 0 ELSE m2.n END), 0) AS lat,
                          sum(json_extract(c.value, '$.ok_ratio') * m2.n) / sum(m2.n) AS ok
                   FROM app_samples_1m m2, json_each(m2.checks_json) c
                   WHERE m2.host_id = m.host_id AND m2.app = m.app
                     AND m2.bucket_ms >= m.bucket_ms / 3600000 * 3600000
                     AND m2.bucket_ms < m.bucket_ms / 3600000 * 3600000 + 3600000
                   GROUP BY name))
     FROM app_samples_1m m WHERE m.bucket_ms >= ?1 AND m.bucket_ms < ?2
     GROUP BY m.host_id, m.app, m.bucket_ms / 3600000 ";

const APP_HOURS_POSTGRES: &str = "INSERT INTO app_samples_1h
     (host_id, app, bucket_ms, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, checks_json)
     SELECT g.host_id, g.app, g.b, g.n, g.cpu, g.cpu_max, g.mem, g.mem_max, g.mem_limit, g.net_rx, g.net_tx,
            (SELECT json_agg(json_build_object('name', c.name, 'latency_ms', c.lat, 'ok_ratio', c.ok))::text
             FROM (SELECT e ->> 'name' AS name,
                          sum((e ->> 'latency_ms')::float8 * m2.n)
                            / nullif(sum(CASE WHEN e ->> 'latency_ms' IS NULL THEN 0 ELSE m2.n END), 0) AS lat,
                          sum((e ->> 'ok_ratio')::float8 * m2.n) / nullif(sum(m2.n), 0) AS ok
                   FROM app_samples_1m m2, jsonb_array_elements(m2.checks_json::jsonb) e
                   WHERE m2.host_id = g.host_id AND m2.app = g.app
                     AND m2.bucket_ms >= g.b AND m2.bucket_ms < g.b + 3600000
                   GROUP BY e ->> 'name') c)
     FROM (SELECT host_id, app, bucket_ms / 3600000 * 3600000 AS b, sum(n) AS n,
                  sum(cpu * n) / nullif(sum(CASE WHEN cpu IS NULL THEN 0 ELSE n END), 0) AS cpu,
                  max(cpu_max) AS cpu_max,
                  CAST(sum(mem * n) / nullif(sum(CASE WHEN mem IS NULL THEN 0 ELSE n END), 0) AS BIGINT) AS mem,
                  max(mem_max) AS mem_max, max(mem_limit) AS mem_limit,
                  sum(net_rx * n) / nullif(sum(CASE WHEN net_rx IS NULL THEN 0 ELSE n END), 0) AS net_rx,
                  sum(net_tx * n) / nullif(sum(CASE WHEN net_tx IS NULL THEN 0 ELSE n END), 0) AS net_tx
           FROM app_samples_1m WHERE bucket_ms >= ?1 AND bucket_ms < ?2
           GROUP BY host_id, app, bucket_ms / 3600000 * 3600000) g
     WHERE true ";

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupReport {
    pub minute_buckets: usize,
    pub hour_buckets: usize,
    pub deleted: usize,
}

/// A rollup's progress. On PostgreSQL the row is locked until the commit, so two collectors on
/// one database never roll up the same range at once.
fn state(conn: &Conn, name: &str) -> Result<(i64, Option<i64>), StoreError> {
    let sql = match conn.backend() {
        Backend::Sqlite => "SELECT done_until, dirty_from FROM rollup_state WHERE name = ?1",
        Backend::Postgres => {
            "SELECT done_until, dirty_from FROM rollup_state WHERE name = ?1 FOR UPDATE"
        }
    };
    conn.query_row(sql, params![name], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Rolls up every complete minute and hour before `now_ms`, then deletes what is past retention.
/// One transaction (taken before reading the state, so a late sample cannot slip between).
pub fn run(conn: &Conn, now_ms: u64, retention: &Retention) -> Result<RollupReport, StoreError> {
    conn.transaction(|tx| run_in(tx, now_ms, retention))
}

fn run_in(tx: &Conn, now_ms: u64, retention: &Retention) -> Result<RollupReport, StoreError> {
    let now = now_ms as i64;
    let mut report = RollupReport::default();
    let (app_minutes, app_hours) = match tx.backend() {
        Backend::Sqlite => (APP_MINUTES_SQLITE, APP_HOURS_SQLITE),
        Backend::Postgres => (APP_MINUTES_POSTGRES, APP_HOURS_POSTGRES),
    };

    // Minutes: the last complete one ends at the start of the current minute.
    let (done, dirty) = state(tx, "1m")?;
    let target = now / MINUTE * MINUTE;
    let from = dirty.map_or(done, |d| d.min(done)) / MINUTE * MINUTE;
    if target > from {
        report.minute_buckets = tx.execute(
            &format!("{HOST_MINUTES_SQL}{HOST_UPSERT}"),
            params![from, target],
        )?;
        report.minute_buckets +=
            tx.execute(&format!("{app_minutes}{APP_UPSERT}"), params![from, target])?;
        tx.execute(
            "UPDATE rollup_state SET done_until = ?1, dirty_from = NULL WHERE name = '1m'",
            params![target],
        )?;
        // Hours that include a recomputed minute are recomputed too.
        tx.execute(
            "UPDATE rollup_state SET dirty_from = CASE WHEN dirty_from IS NULL OR dirty_from > ?1 THEN ?1 ELSE dirty_from END
             WHERE name = '1h' AND done_until > ?1",
            params![from],
        )?;
    }

    // Hours, from the minutes (averages weighted by each minute's sample count).
    let (done, dirty) = state(tx, "1h")?;
    let target = now / HOUR * HOUR;
    let from = dirty.map_or(done, |d| d.min(done)) / HOUR * HOUR;
    if target > from {
        report.hour_buckets = tx.execute(
            &format!("{HOST_HOURS_SQL}{HOST_UPSERT}"),
            params![from, target],
        )?;
        report.hour_buckets +=
            tx.execute(&format!("{app_hours}{APP_UPSERT}"), params![from, target])?;
        tx.execute(
            "UPDATE rollup_state SET done_until = ?1, dirty_from = NULL WHERE name = '1h'",
            params![target],
        )?;
    }

    let before = |d: std::time::Duration| now - d.as_millis() as i64;
    for (sql, cutoff) in [
        ("DELETE FROM samples_raw WHERE ts_ms < ?1", before(retention.raw)),
        ("DELETE FROM samples_1m WHERE bucket_ms < ?1", before(retention.minute)),
        ("DELETE FROM samples_1h WHERE bucket_ms < ?1", before(retention.hour)),
        ("DELETE FROM app_samples_raw WHERE ts_ms < ?1", before(retention.raw)),
        ("DELETE FROM app_samples_1m WHERE bucket_ms < ?1", before(retention.minute)),
        ("DELETE FROM app_samples_1h WHERE bucket_ms < ?1", before(retention.hour)),
        ("DELETE FROM events WHERE ts_ms < ?1", before(retention.events)),
        (
            "DELETE FROM alert_deliveries WHERE alert_id IN (SELECT id FROM alerts WHERE ts_ms < ?1)",
            before(retention.events),
        ),
        ("DELETE FROM alerts WHERE ts_ms < ?1", before(retention.events)),
        ("DELETE FROM audit WHERE ts_ms < ?1", before(retention.events)),
        (
            "DELETE FROM status_history WHERE end_ms IS NOT NULL AND end_ms < ?1",
            before(retention.events),
        ),
    ] {
        report.deleted += tx.execute(sql, params![cutoff])?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::db::testing::each_backend;

    fn raw(conn: &Conn, ts: i64, cpu: f64) {
        conn.execute(
            "INSERT INTO samples_raw (host_id, ts_ms, instance, seq, cpu, mem_used, mem_total, swap_used, load1)
             VALUES (1, ?1, 1, ?1, ?2, 100, 200, 0, 1.0)",
            params![ts, cpu],
        )
        .expect("insert");
    }

    fn minute(conn: &Conn, bucket: i64) -> Option<(i64, f64, f64)> {
        conn.query_row(
            "SELECT n, cpu, cpu_max FROM samples_1m WHERE host_id = 1 AND bucket_ms = ?1",
            params![bucket],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok()
    }

    #[test]
    fn minutes_and_hours_from_raw() {
        each_backend(minutes_and_hours_from_raw_on);
    }

    fn minutes_and_hours_from_raw_on(conn: &Conn) {
        let t0 = 10 * HOUR;
        for i in 0..120 {
            raw(conn, t0 + i * 10_000, (i % 6) as f64 * 10.0); // 20 minutes, 6 a minute
        }
        let report = run(conn, (t0 + HOUR + 1) as u64, &Retention::default()).expect("run");
        assert_eq!(report.minute_buckets, 20);
        assert_eq!(minute(conn, t0), Some((6, 25.0, 50.0)));
        let (n, cpu): (i64, f64) = conn
            .query_row(
                "SELECT n, cpu FROM samples_1h WHERE bucket_ms = ?1",
                params![t0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("hour");
        assert_eq!((n, cpu), (120, 25.0));
        // The current, incomplete minute is left for later.
        raw(conn, t0 + HOUR + 500, 99.0);
        run(conn, (t0 + HOUR + 1_000) as u64, &Retention::default()).expect("again");
        assert_eq!(minute(conn, t0 + HOUR), None);
    }

    #[test]
    fn late_samples_are_rolled_up_again() {
        each_backend(late_samples_are_rolled_up_again_on);
    }

    fn late_samples_are_rolled_up_again_on(conn: &Conn) {
        let t0 = 10 * HOUR;
        raw(conn, t0, 10.0);
        run(conn, (t0 + 5 * MINUTE) as u64, &Retention::default()).expect("run");
        assert_eq!(minute(conn, t0), Some((1, 10.0, 10.0)));
        // A backfill brings an older sample of that minute.
        raw(conn, t0 + 30_000, 30.0);
        mark_late(conn, (t0 + 30_000) as u64).expect("mark");
        run(conn, (t0 + 6 * MINUTE) as u64, &Retention::default()).expect("again");
        assert_eq!(minute(conn, t0), Some((2, 20.0, 30.0)));
    }

    #[test]
    fn retention_deletes_old_rows() {
        each_backend(retention_deletes_old_rows_on);
    }

    fn retention_deletes_old_rows_on(conn: &Conn) {
        let now = 100 * 24 * HOUR;
        raw(conn, now - 3 * 24 * HOUR, 1.0); // older than 48 h
        raw(conn, now - HOUR, 1.0);
        run(conn, now as u64, &Retention::default()).expect("run");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM samples_raw", params![], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1);
        // Its minute survives (30 days).
        let m: i64 = conn
            .query_row("SELECT count(*) FROM samples_1m", params![], |r| r.get(0))
            .expect("count");
        assert_eq!(m, 2);
    }
}

//! One app's metric history (`GET /v1/hosts/{host}/apps/{app}/metrics`): raw samples as taken,
//! or rollup buckets grouped into `step`-wide points (averages weighted by sample count, maxima,
//! and per check the average latency and the share of passing runs).

use std::collections::BTreeMap;

use fleetdeck_proto::{AppMetricPoint, CheckPoint};

use serde::Deserialize;

use super::db::{params, Conn, Row};
use super::query::Resolution;
use super::StoreError;

/// One stored row: a raw sample (n = 1) or a rollup bucket.
struct Bucket {
    ts: u64,
    n: u64,
    cpu: Option<f64>,
    cpu_max: Option<f64>,
    mem: Option<i64>,
    mem_max: Option<i64>,
    mem_limit: Option<i64>,
    net_rx: Option<f64>,
    net_tx: Option<f64>,
    checks: Vec<CheckPoint>,
}

/// A check as stored: raw `{"name", "ok", "latency_ms"}` or rolled up
/// `{"name", "latency_ms", "ok_ratio"}`.
#[derive(Deserialize)]
struct StoredCheck {
    name: String,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    ok_ratio: Option<f64>,
    #[serde(default)]
    latency_ms: Option<f64>,
}

fn checks(json: Option<String>) -> Vec<CheckPoint> {
    let Some(json) = json else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<StoredCheck>>(&json)
        .unwrap_or_default()
        .into_iter()
        .map(|c| CheckPoint {
            name: c.name,
            latency_ms: c.latency_ms,
            ok_ratio: c
                .ok_ratio
                .unwrap_or(if c.ok == Some(true) { 1.0 } else { 0.0 }),
        })
        .collect()
}

fn bucket(r: &Row<'_>) -> Result<Bucket, StoreError> {
    Ok(Bucket {
        ts: r.get::<i64>(0)? as u64,
        n: r.get::<i64>(1)?.max(1) as u64,
        cpu: r.get(2)?,
        cpu_max: r.get(3)?,
        mem: r.get(4)?,
        mem_max: r.get(5)?,
        mem_limit: r.get(6)?,
        net_rx: r.get(7)?,
        net_tx: r.get(8)?,
        checks: checks(r.get(9)?),
    })
}

/// Points of app `app` of host `host_id` in `[from, to)`, oldest first.
pub fn app_metrics(
    conn: &Conn,
    host_id: i64,
    app: &str,
    from_ms: u64,
    to_ms: u64,
    step_ms: u64,
    resolution: Resolution,
) -> Result<Vec<AppMetricPoint>, StoreError> {
    let sql = match resolution {
        Resolution::Raw => {
            "SELECT ts_ms, 1, cpu, cpu, mem, mem, mem_limit, net_rx, net_tx, checks_json
             FROM app_samples_raw WHERE host_id = ?1 AND app = ?2 AND ts_ms >= ?3 AND ts_ms < ?4
             ORDER BY ts_ms"
        }
        Resolution::Minute => {
            "SELECT bucket_ms, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, checks_json
             FROM app_samples_1m WHERE host_id = ?1 AND app = ?2 AND bucket_ms >= ?3 AND bucket_ms < ?4
             ORDER BY bucket_ms"
        }
        Resolution::Hour => {
            "SELECT bucket_ms, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, checks_json
             FROM app_samples_1h WHERE host_id = ?1 AND app = ?2 AND bucket_ms >= ?3 AND bucket_ms < ?4
             ORDER BY bucket_ms"
        }
    };
    let rows = conn.query_map(
        sql,
        params![host_id, app, from_ms as i64, to_ms as i64],
        bucket,
    )?;
    if resolution == Resolution::Raw {
        return Ok(rows.into_iter().map(|b| point(b.ts, vec![b])).collect());
    }
    let step = step_ms.max(1);
    let mut groups: BTreeMap<u64, Vec<Bucket>> = BTreeMap::new();
    for b in rows {
        groups.entry(b.ts / step * step).or_default().push(b);
    }
    Ok(groups
        .into_iter()
        .map(|(ts, buckets)| point(ts, buckets))
        .collect())
}

/// Weighted average of `(value, weight)` over the buckets that have the value.
fn weighted(values: impl Iterator<Item = (Option<f64>, u64)>) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0u64);
    for (v, n) in values {
        if let Some(v) = v {
            sum += v * n as f64;
            weight += n;
        }
    }
    (weight > 0).then(|| sum / weight as f64)
}

/// (value, sample count) of each bucket.
type Weighted = Vec<(Option<f64>, u64)>;

fn point(ts: u64, buckets: Vec<Bucket>) -> AppMetricPoint {
    let samples: u64 = buckets.iter().map(|b| b.n).sum();
    let mut by_check: BTreeMap<String, (Weighted, Weighted)> = BTreeMap::new();
    for b in &buckets {
        for c in &b.checks {
            let entry = by_check.entry(c.name.clone()).or_default();
            entry.0.push((c.latency_ms, b.n));
            entry.1.push((Some(c.ok_ratio), b.n));
        }
    }
    AppMetricPoint {
        ts: humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ts),
        )
        .to_string(),
        ts_unix_ms: ts,
        samples: u32::try_from(samples).unwrap_or(u32::MAX),
        cpu_percent: weighted(buckets.iter().map(|b| (b.cpu, b.n))),
        cpu_percent_max: buckets.iter().filter_map(|b| b.cpu_max).reduce(f64::max),
        memory_bytes: weighted(buckets.iter().map(|b| (b.mem.map(|m| m as f64), b.n)))
            .map(|m| m.round() as u64),
        memory_bytes_max: buckets
            .iter()
            .filter_map(|b| b.mem_max)
            .max()
            .map(|m| m as u64),
        memory_limit_bytes: buckets
            .iter()
            .filter_map(|b| b.mem_limit)
            .max()
            .map(|m| m as u64),
        net_rx_bytes_per_sec: weighted(buckets.iter().map(|b| (b.net_rx, b.n))),
        net_tx_bytes_per_sec: weighted(buckets.iter().map(|b| (b.net_tx, b.n))),
        checks: by_check
            .into_iter()
            .map(|(name, (latency, ok))| CheckPoint {
                name,
                latency_ms: weighted(latency.into_iter()),
                ok_ratio: weighted(ok.into_iter()).unwrap_or(0.0),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Retention;

    use crate::store::db::testing::each_backend;

    #[test]
    fn raw_points_and_rollups_carry_checks() {
        each_backend(raw_points_and_rollups_on);
    }

    fn raw_points_and_rollups_on(conn: &Conn) {
        let t0: i64 = 10 * 3_600_000;
        for i in 0..12i64 {
            let checks = format!(
                r#"[{{"name":"health","ok":{},"latency_ms":{}}}]"#,
                i % 4 != 0,
                10 + i
            );
            conn.execute(
                "INSERT INTO app_samples_raw (host_id, app, ts_ms, cpu, mem, mem_limit, net_rx, net_tx, checks_json)
                 VALUES (1, 'web', ?1, ?2, ?3, 1000, NULL, NULL, ?4)",
                params![t0 + i * 10_000, i as f64, 100 + i, checks],
            )
            .expect("insert");
        }
        let raw = app_metrics(
            conn,
            1,
            "web",
            t0 as u64,
            (t0 + 120_000) as u64,
            10_000,
            Resolution::Raw,
        )
        .expect("raw");
        assert_eq!(raw.len(), 12);
        assert_eq!(raw[0].checks[0].ok_ratio, 0.0);
        assert_eq!(raw[1].checks[0].latency_ms, Some(11.0));
        assert_eq!(raw[1].memory_limit_bytes, Some(1000));
        super::super::rollup::run(conn, (t0 + 2 * 3_600_000) as u64, &Retention::default())
            .expect("rollup");
        let minutes = app_metrics(
            conn,
            1,
            "web",
            t0 as u64,
            (t0 + 120_000) as u64,
            60_000,
            Resolution::Minute,
        )
        .expect("1m");
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].samples, 6);
        assert_eq!(minutes[0].cpu_percent, Some(2.5));
        assert_eq!(minutes[0].cpu_percent_max, Some(5.0));
        assert_eq!(minutes[0].memory_bytes_max, Some(105));
        let check = &minutes[0].checks[0];
        assert_eq!(check.name, "health");
        assert_eq!(check.latency_ms, Some(12.5));
        assert!(
            (check.ok_ratio - 4.0 / 6.0).abs() < 1e-9,
            "{}",
            check.ok_ratio
        );
        let hours = app_metrics(
            conn,
            1,
            "web",
            t0 as u64,
            (t0 + 3_600_000) as u64,
            3_600_000,
            Resolution::Hour,
        )
        .expect("1h");
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[0].samples, 12);
        assert_eq!(hours[0].cpu_percent, Some(5.5));
        assert!((hours[0].checks[0].ok_ratio - 9.0 / 12.0).abs() < 1e-9);
    }
}

//! Samples from polls and backfill pages, stored once each behind the host's cursor.

use crate::store::db::{params, Param};
use fleetdeck_proto::Sample;

use super::{host_row, HostRow, SampleCursor};
use crate::alerting::AlertInput;
use crate::store::{Notice, StoreError, WriteCtx};

/// Stores samples of `instance` newer than the host's cursor; returns the new last seq.
/// `agent_now_ms`: the polled snapshot's time, for the threshold evaluator (`None` on backfill).
#[allow(clippy::too_many_arguments)]
pub(super) fn insert_samples(
    ctx: &mut WriteCtx<'_>,
    host: &str,
    host_id: i64,
    row: &HostRow,
    instance_id: &str,
    samples: &[Sample],
    now_ms: u64,
    agent_now_ms: Option<u64>,
) -> Result<u64, StoreError> {
    let mut last_seq = if row.instance_id.as_deref() == Some(instance_id) {
        row.last_seq
    } else {
        0 // A new agent instance: its seqs start again.
    };
    let instance = instance_row(ctx, host_id, instance_id, now_ms)?;
    if samples.is_empty() {
        return Ok(last_seq as u64);
    }
    let new: Vec<&Sample> = samples
        .iter()
        .filter(|s| (s.seq as i64) > last_seq)
        .collect();
    let mut oldest = u64::MAX;
    let mut fresh = Vec::new();
    for chunk in new.chunks(SAMPLES_PER_INSERT) {
        let inserted = insert_host_rows(ctx, host_id, instance, chunk)?;
        let stored: Vec<&Sample> = chunk
            .iter()
            .copied()
            .filter(|s| inserted.contains(&(s.seq as i64)))
            .collect();
        // Those not inserted were stored already: a restarted agent serves the samples it saved
        // again, under its new instance, and those this collector has change nothing (no
        // rollup, no alert input).
        insert_app_rows(ctx, host_id, &stored)?;
        for s in stored {
            oldest = oldest.min(s.taken_unix_ms);
            fresh.push(s.clone());
        }
    }
    if let Some(newest) = new.iter().map(|s| s.seq as i64).max() {
        last_seq = last_seq.max(newest);
    }
    if oldest != u64::MAX {
        crate::store::rollup::mark_late(ctx.conn, oldest)?;
    }
    if !fresh.is_empty() {
        ctx.notify(Notice::Alert(AlertInput::Samples {
            host: host.to_owned(),
            samples: fresh.into(),
            agent_now_ms,
        }));
    }
    Ok(last_seq as u64)
}

/// Samples written by one statement (16 values each: far below SQLite's 32,766 and PostgreSQL's
/// 65,535 parameters), so a poll's samples take one round trip to PostgreSQL, not one each. On
/// SQLite too it beat one cached single-row statement a sample (docs/benchmarks.md).
const SAMPLES_PER_INSERT: usize = 100;
/// App rows written by one statement (9 values each).
const APP_ROWS_PER_INSERT: usize = 500;

/// `VALUES (?1, …, ?k), (?k+1, …)`: `rows` groups of `width` placeholders.
fn values_clause(rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", row * width + col + 1));
        }
        sql.push(')');
    }
    sql
}

/// Inserts the host rows of `chunk`; the seqs that were new (the others were stored already).
fn insert_host_rows(
    ctx: &WriteCtx<'_>,
    host_id: i64,
    instance: i64,
    chunk: &[&Sample],
) -> Result<std::collections::HashSet<i64>, StoreError> {
    let mut values: Vec<Box<dyn Param>> = Vec::with_capacity(chunk.len() * 16);
    for s in chunk {
        let r = SampleRow::from(*s);
        values.push(Box::new(host_id));
        values.push(Box::new(s.taken_unix_ms as i64));
        values.push(Box::new(instance));
        values.push(Box::new(s.seq as i64));
        values.push(Box::new(r.cpu));
        values.push(Box::new(r.mem_used));
        values.push(Box::new(r.mem_total));
        values.push(Box::new(r.swap_used));
        values.push(Box::new(r.load1));
        values.push(Box::new(r.disk_used));
        values.push(Box::new(r.disk_total));
        values.push(Box::new(r.net_rx));
        values.push(Box::new(r.net_tx));
        values.push(Box::new(r.disk_read));
        values.push(Box::new(r.disk_write));
        values.push(Box::new(r.root_inodes_pct));
    }
    let sql = format!(
        "INSERT INTO samples_raw
         (host_id, ts_ms, instance, seq, cpu, mem_used, mem_total, swap_used, load1, disk_used, disk_total, net_rx, net_tx,
          disk_read, disk_write, root_inodes_pct)
         VALUES {} ON CONFLICT DO NOTHING RETURNING seq",
        values_clause(chunk.len(), 16)
    );
    let params: Vec<&dyn Param> = values.iter().map(|v| v.as_ref()).collect();
    Ok(ctx
        .conn
        .query_map(&sql, &params, |r| r.get::<i64>(0))?
        .into_iter()
        .collect())
}

/// Inserts the app rows of the samples just stored.
fn insert_app_rows(ctx: &WriteCtx<'_>, host_id: i64, stored: &[&Sample]) -> Result<(), StoreError> {
    let rows: Vec<(&Sample, &fleetdeck_proto::AppSample)> = stored
        .iter()
        .flat_map(|s| s.apps.iter().map(move |a| (*s, a)))
        .collect();
    for chunk in rows.chunks(APP_ROWS_PER_INSERT) {
        let mut values: Vec<Box<dyn Param>> = Vec::with_capacity(chunk.len() * 9);
        for (s, app) in chunk {
            // [{"name", "ok", "latency_ms"}], or NULL without checks.
            let checks_json = if app.checks.is_empty() {
                None
            } else {
                serde_json::to_string(&app.checks).ok()
            };
            values.push(Box::new(host_id));
            values.push(Box::new(app.name.clone()));
            values.push(Box::new(s.taken_unix_ms as i64));
            values.push(Box::new(app.cpu_percent.map(one_decimal)));
            values.push(Box::new(app.memory_bytes.map(|b| b as i64)));
            values.push(Box::new(app.memory_limit_bytes.map(|b| b as i64)));
            values.push(Box::new(app.net_rx_bytes_per_sec.map(|b| b as f64)));
            values.push(Box::new(app.net_tx_bytes_per_sec.map(|b| b as f64)));
            values.push(Box::new(checks_json));
        }
        let sql = format!(
            "INSERT INTO app_samples_raw
             (host_id, app, ts_ms, cpu, mem, mem_limit, net_rx, net_tx, checks_json)
             VALUES {} ON CONFLICT DO NOTHING",
            values_clause(chunk.len(), 9)
        );
        let params: Vec<&dyn Param> = values.iter().map(|v| v.as_ref()).collect();
        ctx.conn.execute(&sql, &params)?;
    }
    Ok(())
}

/// Stores a further page of backfilled samples and moves the host's cursor with it.
pub fn apply_samples(
    ctx: &mut WriteCtx<'_>,
    host: &str,
    host_id: i64,
    instance_id: &str,
    samples: &[Sample],
    now_ms: u64,
) -> Result<SampleCursor, StoreError> {
    let row = host_row(ctx, host_id)?;
    let last_seq = insert_samples(ctx, host, host_id, &row, instance_id, samples, now_ms, None)?;
    ctx.conn.execute(
        "UPDATE hosts SET instance_id = ?2, last_seq = ?3 WHERE id = ?1",
        params![host_id, instance_id, last_seq as i64],
    )?;
    Ok(SampleCursor {
        instance_id: instance_id.to_owned(),
        last_seq,
    })
}

fn instance_row(
    ctx: &WriteCtx<'_>,
    host_id: i64,
    instance: &str,
    now_ms: u64,
) -> Result<i64, StoreError> {
    let known = ctx.conn.query_opt(
        "SELECT id FROM agent_instances WHERE host_id = ?1 AND instance_id = ?2",
        params![host_id, instance],
        |r| r.get(0),
    )?;
    if let Some(id) = known {
        return Ok(id);
    }
    ctx.conn.execute(
        "INSERT INTO agent_instances (host_id, instance_id, first_seen_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![host_id, instance, now_ms as i64],
    )?;
    ctx.conn.query_row(
        "SELECT id FROM agent_instances WHERE host_id = ?1 AND instance_id = ?2",
        params![host_id, instance],
        |r| r.get(0),
    )
}

/// A sample's host figures as stored: the busiest filesystem's use, the sum of all interfaces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRow {
    pub cpu: Option<f64>,
    pub mem_used: i64,
    pub mem_total: i64,
    pub swap_used: i64,
    pub load1: f64,
    pub disk_used: Option<i64>,
    pub disk_total: Option<i64>,
    pub net_rx: Option<f64>,
    pub net_tx: Option<f64>,
    /// All whole disks together, bytes/s.
    pub disk_read: Option<f64>,
    pub disk_write: Option<f64>,
    /// The root filesystem's inodes in use, 0-100 (none without inode figures).
    pub root_inodes_pct: Option<f64>,
}

impl From<&Sample> for SampleRow {
    fn from(s: &Sample) -> Self {
        // The fullest filesystem is the one an operator needs to see in one figure.
        let disk = s.filesystems.iter().max_by(|a, b| {
            let fa = a.used_bytes as f64 / a.total_bytes.max(1) as f64;
            let fb = b.used_bytes as f64 / b.total_bytes.max(1) as f64;
            fa.total_cmp(&fb)
        });
        let sum = |f: fn(&fleetdeck_proto::NetSample) -> Option<u64>| -> Option<f64> {
            let vals: Vec<u64> = s.network.iter().filter_map(f).collect();
            (!vals.is_empty()).then(|| vals.iter().sum::<u64>() as f64)
        };
        let disk_sum = |f: fn(&fleetdeck_proto::DiskIoSample) -> Option<u64>| -> Option<f64> {
            let vals: Vec<u64> = s.disks.iter().filter_map(f).collect();
            (!vals.is_empty()).then(|| vals.iter().sum::<u64>() as f64)
        };
        Self {
            cpu: s.cpu_percent.map(one_decimal),
            mem_used: s.memory_used_bytes as i64,
            mem_total: s.memory_total_bytes as i64,
            swap_used: s.swap_used_bytes as i64,
            load1: one_decimal(s.load1),
            disk_used: disk.map(|d| d.used_bytes as i64),
            disk_total: disk.map(|d| d.total_bytes as i64),
            net_rx: sum(|n| n.rx_bytes_per_sec),
            net_tx: sum(|n| n.tx_bytes_per_sec),
            disk_read: disk_sum(|d| d.read_bytes_per_sec),
            disk_write: disk_sum(|d| d.write_bytes_per_sec),
            root_inodes_pct: s
                .filesystems
                .iter()
                .find(|f| f.mount_point == "/" && f.inodes_total > 0)
                .map(|f| (f.inodes_used as f64 * 1000.0 / f.inodes_total as f64).round() / 10.0),
        }
    }
}

/// The agent sends one-decimal figures as f32: keep them one-decimal as f64, not 15.8999996.
fn one_decimal(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use fleetdeck_proto::{DiskIoSample, FsSample};

    use super::*;

    #[test]
    fn disk_io_is_summed_and_root_inodes_are_a_percentage() {
        let fs = |m: &str, used: u64, total: u64| FsSample {
            mount_point: m.into(),
            used_bytes: 1,
            total_bytes: 10,
            inodes_used: used,
            inodes_total: total,
        };
        let disk = |r: Option<u64>, w: Option<u64>| DiskIoSample {
            device: "sda".into(),
            read_bytes_per_sec: r,
            write_bytes_per_sec: w,
        };
        let sample = Sample {
            seq: 1,
            taken_unix_ms: 1,
            cpu_percent: None,
            memory_used_bytes: 1,
            memory_total_bytes: 2,
            swap_used_bytes: 0,
            swap_total_bytes: 0,
            cores: 1,
            load1: 0.0,
            load5: 0.0,
            load15: 0.0,
            filesystems: vec![fs("/var", 9, 10), fs("/", 1234, 10_000)],
            network: Vec::new(),
            apps: Vec::new(),
            disks: vec![disk(Some(100), None), disk(Some(50), Some(7))],
        };
        let row = SampleRow::from(&sample);
        assert_eq!(row.disk_read, Some(150.0));
        assert_eq!(row.disk_write, Some(7.0));
        assert_eq!(row.root_inodes_pct, Some(12.3));
        let bare = Sample {
            disks: Vec::new(),
            filesystems: vec![fs("/", 0, 0)],
            ..sample
        };
        let row = SampleRow::from(&bare);
        assert_eq!((row.disk_read, row.root_inodes_pct), (None, None));
    }
}

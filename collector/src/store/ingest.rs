//! What polls and agent events write, on the writer thread. Each app's old status is read before
//! the new one is written, in the same transaction: a transition is recorded once (one event, one
//! closed interval, one opened), whether the event stream or a poll saw it first, and an answer
//! older than the state already recorded (by the agent's clock) changes nothing.

use fleetdeck_proto::{
    AppEvent, AppState, AppStatus, Exit, FleetEvent, FleetEventKind, Sample, Severity, Snapshot,
};
use rusqlite::{params, OptionalExtension};

use super::{Notice, StoreError, WriteCtx};
use crate::alerting::rules::{Health, Transition};

/// A host as the poller and subscriber need it at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCursor {
    pub id: i64,
    pub name: String,
    /// The agent instance `last_seq` belongs to.
    pub instance_id: Option<String>,
    pub last_seq: u64,
    pub last_event_id: Option<String>,
}

/// One successful poll: the snapshot and the samples after the last stored one.
#[derive(Debug, Clone)]
pub struct Polled {
    pub snapshot: Snapshot,
    /// The instance the samples belong to (the snapshot's, unless the agent restarted between).
    pub samples_instance: String,
    pub samples: Vec<Sample>,
}

/// Where the host's samples stand after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleCursor {
    pub instance_id: String,
    pub last_seq: u64,
}

/// Makes sure every configured agent has a row (marking the others inactive) and returns where
/// each one's history stands.
pub fn register_agents(
    ctx: &mut WriteCtx<'_>,
    agents: &[(String, String)],
) -> Result<Vec<HostCursor>, StoreError> {
    ctx.conn.execute("UPDATE hosts SET active = 0", [])?;
    let mut out = Vec::with_capacity(agents.len());
    for (name, url) in agents {
        ctx.conn.execute(
            "INSERT INTO hosts (name, url) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, active = 1",
            params![name, url],
        )?;
        let cursor = ctx.conn.query_row(
            "SELECT id, instance_id, last_seq, last_event_id FROM hosts WHERE name = ?1",
            [name],
            |r| {
                Ok(HostCursor {
                    id: r.get(0)?,
                    name: name.clone(),
                    instance_id: r.get(1)?,
                    last_seq: r.get::<_, i64>(2)? as u64,
                    last_event_id: r.get(3)?,
                })
            },
        )?;
        out.push(cursor);
    }
    Ok(out)
}

struct HostRow {
    status: String,
    status_since_ms: Option<i64>,
    instance_id: Option<String>,
    last_seq: i64,
    missed: u32,
}

fn host_row(ctx: &WriteCtx<'_>, host_id: i64) -> Result<HostRow, StoreError> {
    Ok(ctx.conn.query_row(
        "SELECT status, status_since_ms, instance_id, last_seq, missed_polls FROM hosts WHERE id = ?1",
        [host_id],
        |r| {
            Ok(HostRow {
                status: r.get(0)?,
                status_since_ms: r.get(1)?,
                instance_id: r.get(2)?,
                last_seq: r.get(3)?,
                missed: r.get(4)?,
            })
        },
    )?)
}

/// Closes the subject's open interval at `at_ms` and opens one in `state` from there.
fn next_interval(
    ctx: &WriteCtx<'_>,
    host_id: i64,
    app: &str,
    state: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    ctx.conn.execute(
        "UPDATE status_history SET end_ms = max(start_ms, ?3)
         WHERE host_id = ?1 AND app = ?2 AND end_ms IS NULL",
        params![host_id, app, at_ms as i64],
    )?;
    ctx.conn.execute(
        "INSERT INTO status_history (host_id, app, state, start_ms) VALUES (?1, ?2, ?3, ?4)",
        params![host_id, app, state, at_ms as i64],
    )?;
    Ok(())
}

/// Appends an event and hands it out after the commit.
#[allow(clippy::too_many_arguments)]
fn record_event(
    ctx: &mut WriteCtx<'_>,
    at_ms: u64,
    severity: Severity,
    source: &str,
    kind: FleetEventKind,
    host: &str,
    app: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    exit: Option<Exit>,
    message: String,
) -> Result<(), StoreError> {
    let exit_json = exit
        .map(|e| serde_json::to_string(&e))
        .transpose()
        .ok()
        .flatten();
    ctx.conn.execute(
        "INSERT INTO events (ts_ms, severity, source, kind, host, app, from_state, to_state, exit_json, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            at_ms as i64,
            severity.as_str(),
            source,
            kind.as_str(),
            host,
            app,
            from,
            to,
            exit_json,
            message
        ],
    )?;
    let id = ctx.conn.last_insert_rowid();
    ctx.notify(Notice::Event(FleetEvent {
        id,
        at_unix_ms: at_ms,
        severity,
        source: source.to_owned(),
        kind,
        host: host.to_owned(),
        app: app.map(str::to_owned),
        from: from.map(str::to_owned),
        to: to.map(str::to_owned),
        exit,
        message,
    }));
    Ok(())
}

/// How an operator reads an exit: `exit code 3`, `signal 9`.
pub fn describe_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(c) => format!("exit code {c}"),
        Exit::Signal(s) => format!("signal {s}"),
    }
}

fn severity_of(state: AppState) -> Severity {
    match state {
        AppState::Failed | AppState::CrashLooping => Severity::Critical,
        AppState::NotFound => Severity::Warning,
        _ => Severity::Info,
    }
}

fn parse_state(s: &str) -> AppState {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(AppState::Unknown)
}

/// Applies one observation of an app. `observed_ms` is when the agent saw it (its clock);
/// `restarted` marks a new process in the same state (from the event stream).
fn apply_app(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    status: AppStatus,
    observed_ms: u64,
    source: &str,
    restarted: bool,
) -> Result<(), StoreError> {
    let row: Option<(String, i64, i64)> = ctx
        .conn
        .query_row(
            "SELECT state, observed_ms, state_since_ms FROM apps WHERE host_id = ?1 AND name = ?2",
            params![host_id, status.name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let new_state = status.state;
    let json = serde_json::to_string(&status)
        .map_err(|e| StoreError::Invalid(format!("cannot encode an app status: {e}")))?;
    let Some((old, old_observed, old_since)) = row else {
        // First sight of the app: history starts here; it is not an event.
        let since = status
            .since_unix_ms
            .filter(|s| *s <= observed_ms)
            .unwrap_or(observed_ms);
        ctx.conn.execute(
            "INSERT INTO apps (host_id, name, state, state_since_ms, observed_ms, status_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                host_id,
                status.name,
                new_state.as_str(),
                since as i64,
                observed_ms as i64,
                json
            ],
        )?;
        next_interval(ctx, host_id, &status.name, new_state.as_str(), since)?;
        return Ok(());
    };
    if (observed_ms as i64) < old_observed {
        return Ok(()); // Older than what is recorded: a stale poll or a replayed event.
    }
    let old_state = parse_state(&old);
    if old_state == new_state {
        ctx.conn.execute(
            "UPDATE apps SET observed_ms = ?3, status_json = ?4 WHERE host_id = ?1 AND name = ?2",
            params![host_id, status.name, observed_ms as i64, json],
        )?;
        if restarted && (observed_ms as i64) > old_observed {
            let message = format!("{} on {host} restarted", status.name);
            record_event(
                ctx,
                observed_ms,
                Severity::Info,
                source,
                FleetEventKind::Restarted,
                host,
                Some(&status.name),
                Some(new_state.as_str()),
                Some(new_state.as_str()),
                status.last_exit,
                message,
            )?;
        }
        return Ok(());
    }
    // A real transition. The source's own "since" is the most exact start, when it is plausible.
    let at = status
        .since_unix_ms
        .filter(|s| *s <= observed_ms && (*s as i64) >= old_since)
        .unwrap_or(observed_ms);
    ctx.conn.execute(
        "UPDATE apps SET state = ?3, state_since_ms = ?4, observed_ms = ?5, status_json = ?6
         WHERE host_id = ?1 AND name = ?2",
        params![
            host_id,
            status.name,
            new_state.as_str(),
            at as i64,
            observed_ms as i64,
            json
        ],
    )?;
    next_interval(ctx, host_id, &status.name, new_state.as_str(), at)?;
    // `unknown` means the agent could not ask its source (or the host is unreachable): history
    // records it, the event log does not (as on the agent).
    if old_state != AppState::Unknown && new_state != AppState::Unknown {
        let exit = if matches!(
            new_state,
            AppState::Failed | AppState::CrashLooping | AppState::Stopped
        ) {
            status.last_exit
        } else {
            None
        };
        let mut message = format!("{} on {host}: {old_state} → {new_state}", status.name);
        if let Some(exit) = exit {
            message.push_str(&format!(" ({})", describe_exit(exit)));
        }
        record_event(
            ctx,
            at,
            severity_of(new_state),
            source,
            FleetEventKind::Transition,
            host,
            Some(&status.name),
            Some(old_state.as_str()),
            Some(new_state.as_str()),
            exit,
            message,
        )?;
    }
    ctx.notify(Notice::Transition(Transition {
        host: host.to_owned(),
        app: Some(status.name.clone()),
        state: new_state.as_str().to_owned(),
        health: Health::from(new_state),
        exit: status.last_exit,
        at_ms: at,
    }));
    Ok(())
}

/// Marks the host up (an event and a recovery when it was down).
fn host_answered(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    row: &HostRow,
    now_ms: u64,
) -> Result<(), StoreError> {
    if row.status == "up" {
        return Ok(());
    }
    ctx.conn.execute(
        "UPDATE hosts SET status = 'up', status_since_ms = ?2 WHERE id = ?1",
        params![host_id, now_ms as i64],
    )?;
    next_interval(ctx, host_id, "", "up", now_ms)?;
    if row.status == "down" {
        let down_for = row
            .status_since_ms
            .map(|s| now_ms.saturating_sub(s as u64))
            .unwrap_or(0);
        let message = format!(
            "{host} is up again after {}",
            humantime::format_duration(std::time::Duration::from_secs(down_for / 1000))
        );
        record_event(
            ctx,
            now_ms,
            Severity::Info,
            "poll",
            FleetEventKind::HostUp,
            host,
            None,
            Some("down"),
            Some("up"),
            None,
            message,
        )?;
        ctx.notify(Notice::Transition(Transition {
            host: host.to_owned(),
            app: None,
            state: "up".into(),
            health: Health::Ok,
            exit: None,
            at_ms: now_ms,
        }));
    }
    Ok(())
}

/// Writes one successful poll: host up, metrics, samples (advancing the host's cursor in the same
/// transaction, so a sample is stored once and none is skipped) and every app's status.
pub fn apply_poll(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    polled: Polled,
    now_ms: u64,
) -> Result<SampleCursor, StoreError> {
    let row = host_row(ctx, host_id)?;
    host_answered(ctx, host_id, host, &row, now_ms)?;
    let snapshot = polled.snapshot;
    let metrics = serde_json::to_string(&snapshot.host)
        .map_err(|e| StoreError::Invalid(format!("cannot encode host metrics: {e}")))?;
    let mut last_seq = if row.instance_id.as_deref() == Some(polled.samples_instance.as_str()) {
        row.last_seq
    } else {
        0 // A new agent instance: its seqs start again.
    };
    let instance = instance_id(ctx, host_id, &polled.samples_instance, now_ms)?;
    if !polled.samples.is_empty() {
        let mut insert = ctx.conn.prepare_cached(
            "INSERT OR IGNORE INTO samples_raw
             (host_id, ts_ms, instance, seq, cpu, mem_used, mem_total, swap_used, load1, disk_used, disk_total, net_rx, net_tx)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        let mut oldest = u64::MAX;
        for s in &polled.samples {
            if (s.seq as i64) <= last_seq {
                continue;
            }
            let row = SampleRow::from(s);
            insert.execute(params![
                host_id,
                s.taken_unix_ms as i64,
                instance,
                s.seq as i64,
                row.cpu,
                row.mem_used,
                row.mem_total,
                row.swap_used,
                row.load1,
                row.disk_used,
                row.disk_total,
                row.net_rx,
                row.net_tx
            ])?;
            oldest = oldest.min(s.taken_unix_ms);
            last_seq = last_seq.max(s.seq as i64);
        }
        if oldest != u64::MAX {
            super::rollup::mark_late(ctx.conn, oldest)?;
        }
    }
    ctx.conn.execute(
        "UPDATE hosts SET hostname = ?2, instance_id = ?3, last_seq = ?4, last_seen_ms = ?5,
         missed_polls = 0, last_error = NULL, metrics_json = ?6 WHERE id = ?1",
        params![
            host_id,
            snapshot.host.hostname,
            polled.samples_instance,
            last_seq,
            now_ms as i64,
            metrics
        ],
    )?;
    for app in snapshot.apps {
        apply_app(
            ctx,
            host_id,
            host,
            app,
            snapshot.taken_unix_ms,
            "poll",
            false,
        )?;
    }
    Ok(SampleCursor {
        instance_id: polled.samples_instance,
        last_seq: last_seq as u64,
    })
}

fn instance_id(
    ctx: &WriteCtx<'_>,
    host_id: i64,
    instance: &str,
    now_ms: u64,
) -> Result<i64, StoreError> {
    ctx.conn.execute(
        "INSERT OR IGNORE INTO agent_instances (host_id, instance_id, first_seen_ms) VALUES (?1, ?2, ?3)",
        params![host_id, instance, now_ms as i64],
    )?;
    Ok(ctx.conn.query_row(
        "SELECT id FROM agent_instances WHERE host_id = ?1 AND instance_id = ?2",
        params![host_id, instance],
        |r| r.get(0),
    )?)
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
        }
    }
}

/// The agent sends one-decimal figures as f32: keep them one-decimal as f64, not 15.8999996.
fn one_decimal(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

/// Counts a missed poll; after `down_after` in a row the host is down: one event, one alert, and
/// its apps' history turns `unknown` (the collector cannot know their state meanwhile).
pub fn apply_poll_failure(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    error: &str,
    down_after: u32,
    now_ms: u64,
) -> Result<(), StoreError> {
    let row = host_row(ctx, host_id)?;
    let missed = row.missed + 1;
    ctx.conn.execute(
        "UPDATE hosts SET missed_polls = ?2, last_error = ?3 WHERE id = ?1",
        params![host_id, missed, error],
    )?;
    if missed < down_after || row.status == "down" {
        return Ok(());
    }
    ctx.conn.execute(
        "UPDATE hosts SET status = 'down', status_since_ms = ?2 WHERE id = ?1",
        params![host_id, now_ms as i64],
    )?;
    next_interval(ctx, host_id, "", "down", now_ms)?;
    let message = format!("{host} is down: {missed} polls missed ({error})");
    record_event(
        ctx,
        now_ms,
        Severity::Critical,
        "collector",
        FleetEventKind::HostDown,
        host,
        None,
        Some(&row.status),
        Some("down"),
        None,
        message,
    )?;
    ctx.notify(Notice::Transition(Transition {
        host: host.to_owned(),
        app: None,
        state: "down".into(),
        health: Health::Problem,
        exit: None,
        at_ms: now_ms,
    }));
    let apps: Vec<(String, String)> = {
        let mut stmt = ctx.conn.prepare(
            "SELECT name, status_json FROM apps WHERE host_id = ?1 AND state != 'unknown'",
        )?;
        let rows = stmt.query_map([host_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (name, json) in apps {
        let mut status: AppStatus = serde_json::from_str(&json)
            .map_err(|e| StoreError::Invalid(format!("stored status of {name}: {e}")))?;
        status.state = AppState::Unknown;
        status.error = Some(format!("{host} is unreachable"));
        let json = serde_json::to_string(&status)
            .map_err(|e| StoreError::Invalid(format!("cannot encode an app status: {e}")))?;
        // observed_ms stays: the agent's next answer, by its own clock, must win.
        ctx.conn.execute(
            "UPDATE apps SET state = 'unknown', state_since_ms = ?3, status_json = ?4
             WHERE host_id = ?1 AND name = ?2",
            params![host_id, name, now_ms as i64, json],
        )?;
        next_interval(ctx, host_id, &name, "unknown", now_ms)?;
        ctx.notify(Notice::Transition(Transition {
            host: host.to_owned(),
            app: Some(name),
            state: "unknown".into(),
            health: Health::Other,
            exit: None,
            at_ms: now_ms,
        }));
    }
    Ok(())
}

/// Applies one transition from the agent's event stream and remembers its id for resuming.
pub fn apply_agent_event(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    event: &AppEvent,
) -> Result<(), StoreError> {
    ctx.conn.execute(
        "UPDATE hosts SET last_event_id = ?2 WHERE id = ?1",
        params![host_id, event.sse_id()],
    )?;
    let stored: Option<String> = ctx
        .conn
        .query_row(
            "SELECT status_json FROM apps WHERE host_id = ?1 AND name = ?2",
            params![host_id, event.app],
            |r| r.get(0),
        )
        .optional()?;
    let mut status = match stored {
        Some(json) => serde_json::from_str::<AppStatus>(&json)
            .map_err(|e| StoreError::Invalid(format!("stored status of {}: {e}", event.app)))?,
        None => AppStatus {
            name: event.app.clone(),
            kind: event.kind,
            target: String::new(),
            state: event.to,
            since_unix_ms: None,
            last_exit: None,
            restarts: None,
            memory_bytes: None,
            error: None,
            systemd: None,
            docker: None,
        },
    };
    status.state = event.to;
    status.since_unix_ms = Some(event.at_unix_ms);
    if event.exit.is_some() {
        status.last_exit = event.exit;
    }
    if event.restarts.is_some() {
        status.restarts = event.restarts;
    }
    status.error = None;
    apply_app(
        ctx,
        host_id,
        host,
        status,
        event.at_unix_ms,
        "agent-stream",
        event.restarted,
    )
}

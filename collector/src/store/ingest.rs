//! What polls and agent events write, on the writer thread. Each app's old status is read before
//! the new one is written, in the same transaction: a transition is recorded once (one event, one
//! closed interval, one opened), whether the event stream or a poll saw it first, and an answer
//! older than the state already recorded (by the agent's clock) changes nothing.

use crate::alerting::rules::{Aspect, Detail};
use crate::alerting::AlertInput;
use fleetdeck_proto::Severity as AlertSeverity;
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

/// Closes the subject's open interval and opens one in `state` from `at_ms`, or from the open
/// interval's start if that is later (agent and collector clocks differ a little: history must
/// stay ordered).
fn next_interval(
    ctx: &WriteCtx<'_>,
    host_id: i64,
    app: &str,
    state: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    let open_start: Option<i64> = ctx
        .conn
        .query_row(
            "SELECT start_ms FROM status_history WHERE host_id = ?1 AND app = ?2 AND end_ms IS NULL",
            params![host_id, app],
            |r| r.get(0),
        )
        .optional()?;
    let at = (at_ms as i64).max(open_start.unwrap_or(i64::MIN));
    ctx.conn.execute(
        "UPDATE status_history SET end_ms = ?3 WHERE host_id = ?1 AND app = ?2 AND end_ms IS NULL",
        params![host_id, app, at],
    )?;
    ctx.conn.execute(
        "INSERT INTO status_history (host_id, app, state, start_ms) VALUES (?1, ?2, ?3, ?4)",
        params![host_id, app, state, at],
    )?;
    Ok(())
}

/// The state of the subject's open interval.
fn open_state(ctx: &WriteCtx<'_>, host_id: i64, app: &str) -> Result<Option<String>, StoreError> {
    Ok(ctx
        .conn
        .query_row(
            "SELECT state FROM status_history WHERE host_id = ?1 AND app = ?2 AND end_ms IS NULL",
            params![host_id, app],
            |r| r.get(0),
        )
        .optional()?)
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
    ctx.notify(Notice::Event(Box::new(FleetEvent {
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
        context: None,
        check: None,
        threshold: None,
    })));
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
    if old_state != new_state
        && status
            .since_unix_ms
            .is_some_and(|since| (since as i64) < old_since)
    {
        // The source says the app entered this state before the recorded one began: the answer
        // was read before a change the event stream has already brought.
        return Ok(());
    }
    if old_state == new_state {
        ctx.conn.execute(
            "UPDATE apps SET observed_ms = ?3, status_json = ?4 WHERE host_id = ?1 AND name = ?2",
            params![host_id, status.name, observed_ms as i64, json],
        )?;
        // After an outage (history `unknown`) or a partial replay, history follows the app again.
        if open_state(ctx, host_id, &status.name)?.as_deref() != Some(new_state.as_str()) {
            next_interval(ctx, host_id, &status.name, new_state.as_str(), observed_ms)?;
        }
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
    ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
        Transition {
            host: host.to_owned(),
            app: Some(status.name.clone()),
            state: new_state.as_str().to_owned(),
            health: Health::from(new_state),
            exit: status.last_exit,
            at_ms: at,
            aspect: Aspect::State,
            severity: AlertSeverity::Critical,
            detail: Detail::default(),
        },
    ))));
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
        ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
            Transition {
                host: host.to_owned(),
                app: None,
                state: "up".into(),
                health: Health::Ok,
                exit: None,
                at_ms: now_ms,
                aspect: Aspect::State,
                severity: AlertSeverity::Critical,
                detail: Detail::default(),
            },
        ))));
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
    let last_seq = insert_samples(
        ctx,
        host,
        host_id,
        &row,
        &polled.samples_instance,
        &polled.samples,
        now_ms,
    )?;
    ctx.conn.execute(
        "UPDATE hosts SET hostname = ?2, instance_id = ?3, last_seq = ?4, last_seen_ms = ?5,
         missed_polls = 0, last_error = NULL, metrics_json = ?6 WHERE id = ?1",
        params![
            host_id,
            snapshot.host.hostname,
            polled.samples_instance,
            last_seq as i64,
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
        last_seq,
    })
}

/// Stores samples of `instance` newer than the host's cursor; returns the new last seq.
fn insert_samples(
    ctx: &mut WriteCtx<'_>,
    host: &str,
    host_id: i64,
    row: &HostRow,
    instance_id: &str,
    samples: &[Sample],
    now_ms: u64,
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
    let mut insert = ctx.conn.prepare_cached(
        "INSERT OR IGNORE INTO samples_raw
         (host_id, ts_ms, instance, seq, cpu, mem_used, mem_total, swap_used, load1, disk_used, disk_total, net_rx, net_tx)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut oldest = u64::MAX;
    let mut fresh = Vec::new();
    for s in samples {
        if (s.seq as i64) <= last_seq {
            continue;
        }
        fresh.push(s.clone());
        let r = SampleRow::from(s);
        insert.execute(params![
            host_id,
            s.taken_unix_ms as i64,
            instance,
            s.seq as i64,
            r.cpu,
            r.mem_used,
            r.mem_total,
            r.swap_used,
            r.load1,
            r.disk_used,
            r.disk_total,
            r.net_rx,
            r.net_tx
        ])?;
        oldest = oldest.min(s.taken_unix_ms);
        last_seq = last_seq.max(s.seq as i64);
    }
    drop(insert);
    if oldest != u64::MAX {
        super::rollup::mark_late(ctx.conn, oldest)?;
    }
    if !fresh.is_empty() {
        ctx.notify(Notice::Alert(AlertInput::Samples {
            host: host.to_owned(),
            samples: fresh.into(),
        }));
    }
    Ok(last_seq as u64)
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
    let last_seq = insert_samples(ctx, host, host_id, &row, instance_id, samples, now_ms)?;
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
    ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
        Transition {
            host: host.to_owned(),
            app: None,
            state: "down".into(),
            health: Health::Problem,
            exit: None,
            at_ms: now_ms,
            aspect: Aspect::State,
            severity: AlertSeverity::Critical,
            detail: Detail::default(),
        },
    ))));
    // The apps keep their last known state (the fleet shows them under a down host); their
    // history records the outage as unknown, and the first answer after it is compared with the
    // last known state, so a crash during the outage is still one event.
    let apps: Vec<String> = {
        let mut stmt = ctx
            .conn
            .prepare("SELECT name FROM apps WHERE host_id = ?1")?;
        let rows = stmt.query_map([host_id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for name in apps {
        next_interval(ctx, host_id, &name, "unknown", now_ms)?;
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
    let stored: Option<(String, i64)> = ctx
        .conn
        .query_row(
            "SELECT status_json, observed_ms FROM apps WHERE host_id = ?1 AND name = ?2",
            params![host_id, event.app],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((_, observed)) = &stored {
        if (event.at_unix_ms as i64) < *observed {
            // A poll has recorded a newer state already (e.g. the stream was away and replays
            // what it missed): the transition belongs in the past.
            return apply_past_event(ctx, host_id, host, event);
        }
    }
    // A stored status that no longer reads (a format change) is replaced, not fatal.
    let stored_status = stored.and_then(|(json, _)| serde_json::from_str::<AppStatus>(&json).ok());
    let mut status = match stored_status {
        Some(status) => status,
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
            expect: fleetdeck_proto::Expect::Running,
            stopped_by_request: false,
            checks: Vec::new(),
            degraded: false,
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

/// Records a transition that happened before the state a poll already recorded: once, by splitting
/// the history interval it falls into, if history still shows the app in the transition's `from`
/// state at that time. The app's current state is left as the poll saw it.
fn apply_past_event(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    event: &AppEvent,
) -> Result<(), StoreError> {
    if event.from == event.to {
        return Ok(()); // A restart long past: nothing to split.
    }
    let at = event.at_unix_ms as i64;
    // Already in history: a poll saw this transition (the source's timestamp and the agent's may
    // differ by a moment).
    let known: Option<i64> = ctx
        .conn
        .query_row(
            "SELECT id FROM status_history WHERE host_id = ?1 AND app = ?2 AND state = ?3
             AND start_ms BETWEEN ?4 - 2000 AND ?4 + 2000",
            params![host_id, event.app, event.to.as_str(), at],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_some() {
        return Ok(());
    }
    let containing: Option<(i64, String, Option<i64>)> = ctx
        .conn
        .query_row(
            "SELECT id, state, end_ms FROM status_history WHERE host_id = ?1 AND app = ?2
             AND start_ms <= ?3 AND (end_ms IS NULL OR end_ms > ?3) ORDER BY start_ms DESC LIMIT 1",
            params![host_id, event.app, at],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((id, state, end)) = containing else {
        return Ok(());
    };
    if state != event.from.as_str() {
        return Ok(()); // History disagrees with the event's `from`: leave it as it is.
    }
    ctx.conn.execute(
        "UPDATE status_history SET end_ms = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    ctx.conn.execute(
        "INSERT INTO status_history (host_id, app, state, start_ms, end_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![host_id, event.app, event.to.as_str(), at, end],
    )?;
    if event.to != AppState::Unknown && event.from != AppState::Unknown {
        let mut message = format!("{} on {host}: {} → {}", event.app, event.from, event.to);
        if let Some(exit) = event.exit {
            message.push_str(&format!(" ({})", describe_exit(exit)));
        }
        record_event(
            ctx,
            event.at_unix_ms,
            severity_of(event.to),
            "agent-stream",
            FleetEventKind::Transition,
            host,
            Some(&event.app),
            Some(event.from.as_str()),
            Some(event.to.as_str()),
            event.exit,
            message,
        )?;
    }
    ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
        Transition {
            host: host.to_owned(),
            app: Some(event.app.clone()),
            state: event.to.as_str().to_owned(),
            health: Health::from(event.to),
            exit: event.exit,
            at_ms: event.at_unix_ms,
            aspect: Aspect::State,
            severity: AlertSeverity::Critical,
            detail: Detail::default(),
        },
    ))));
    Ok(())
}

#[cfg(test)]
mod tests {
    use fleetdeck_proto::{
        AppKind, Cpu, EventSource, HostMetrics, Load, Memory, SourceHealth, Sources, Swap,
    };

    use super::*;
    use crate::store::Store;

    /// Test times are in seconds (the dedupe of replayed events allows 2 s of clock difference).
    const S: u64 = 1000;

    fn status(state: AppState, since: u64) -> AppStatus {
        AppStatus {
            name: "web".into(),
            kind: AppKind::Systemd,
            target: "web.service".into(),
            state,
            since_unix_ms: Some(since * S),
            last_exit: (state == AppState::Failed).then_some(Exit::Signal(9)),
            restarts: Some(0),
            memory_bytes: None,
            error: None,
            systemd: None,
            docker: None,
            expect: Default::default(),
            stopped_by_request: false,
            checks: Vec::new(),
            degraded: false,
        }
    }

    fn polled(taken: u64, app: AppStatus) -> Polled {
        Polled {
            snapshot: Snapshot {
                seq: 0,
                instance_id: "i1".into(),
                taken_unix_ms: taken * S,
                host: HostMetrics {
                    hostname: "vm".into(),
                    boot_id: "b".into(),
                    uptime_secs: 1.0,
                    window_secs: None,
                    cpu: Cpu::default(),
                    memory: Memory::default(),
                    swap: Swap::default(),
                    load: Load::default(),
                    filesystems: Vec::new(),
                    network: Vec::new(),
                    disks: Vec::new(),
                },
                apps: vec![app],
                sources: Sources {
                    systemd: SourceHealth::Up,
                    docker: SourceHealth::Unused,
                },
            },
            samples_instance: "i1".into(),
            samples: Vec::new(),
        }
    }

    fn event(id: u64, from: AppState, to: AppState, at: u64) -> AppEvent {
        AppEvent {
            id,
            instance_id: "i1".into(),
            app: "web".into(),
            kind: AppKind::Systemd,
            from,
            to,
            restarted: false,
            at_unix_ms: at * S,
            exit: (to == AppState::Failed).then_some(Exit::Signal(9)),
            restarts: None,
            source: EventSource::Systemd,
            requested: false,
            crash: None,
        }
    }

    struct Bed {
        _dir: tempfile::TempDir,
        store: Store,
        host: i64,
    }

    async fn bed() -> Bed {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("c.db")).expect("store");
        let hosts = store
            .write(|ctx| register_agents(ctx, &[("vm".into(), "http://vm:7070".into())]))
            .await
            .expect("register");
        Bed {
            _dir: dir,
            store,
            host: hosts[0].id,
        }
    }

    impl Bed {
        async fn poll(&self, taken: u64, app: AppStatus) {
            let (id, p) = (self.host, polled(taken, app));
            self.store
                .write(move |ctx| apply_poll(ctx, id, "vm", p, taken * S))
                .await
                .expect("poll");
        }

        async fn fail(&self, now: u64) {
            let id = self.host;
            self.store
                .write(move |ctx| apply_poll_failure(ctx, id, "vm", "timed out", 2, now * S))
                .await
                .expect("failure");
        }

        async fn event(&self, e: AppEvent) {
            let id = self.host;
            self.store
                .write(move |ctx| apply_agent_event(ctx, id, "vm", &e))
                .await
                .expect("event");
        }

        async fn state(&self) -> String {
            self.store
                .with_conn(|c| Ok(c.query_row("SELECT state FROM apps", [], |r| r.get(0))?))
                .await
                .expect("state")
        }

        /// (kind, from, to) of every event, oldest first.
        async fn events(&self) -> Vec<(String, Option<String>, Option<String>)> {
            self.store
                .with_conn(|c| {
                    let mut stmt =
                        c.prepare("SELECT kind, from_state, to_state FROM events ORDER BY id")?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
                .expect("events")
        }

        async fn history(&self) -> Vec<(String, i64, Option<i64>)> {
            self.store
                .with_conn(|c| {
                    let mut stmt = c.prepare(
                        "SELECT state, start_ms / 1000, end_ms / 1000 FROM status_history WHERE app = 'web' ORDER BY start_ms, id",
                    )?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
                .expect("history")
        }
    }

    fn tr(from: &str, to: &str) -> (String, Option<String>, Option<String>) {
        ("transition".into(), Some(from.into()), Some(to.into()))
    }

    #[tokio::test]
    async fn a_poll_read_before_a_crash_does_not_undo_it() {
        let b = bed().await;
        b.poll(100, status(AppState::Running, 50)).await;
        b.event(event(1, AppState::Running, AppState::Failed, 105))
            .await;
        // Read at 100..110 (before the crash), stamped 110 after its slower reads.
        b.poll(110, status(AppState::Running, 50)).await;
        assert_eq!(b.state().await, "failed");
        // The next poll sees the crash too: still one transition.
        b.poll(140, status(AppState::Failed, 105)).await;
        assert_eq!(b.events().await, vec![tr("running", "failed")]);
        assert_eq!(
            b.history().await,
            vec![
                ("running".into(), 50, Some(105)),
                ("failed".into(), 105, None)
            ]
        );
    }

    #[tokio::test]
    async fn a_crash_during_an_outage_is_one_event_after_it() {
        let b = bed().await;
        b.poll(100, status(AppState::Running, 50)).await;
        b.fail(200).await;
        b.fail(201).await; // down_after = 2: the host is down
        assert_eq!(b.state().await, "running", "the last known state stays");
        b.poll(300, status(AppState::Failed, 250)).await;
        let events = b.events().await;
        assert_eq!(
            events,
            vec![
                ("host-down".into(), Some("up".into()), Some("down".into())),
                ("host-up".into(), Some("down".into()), Some("up".into())),
                tr("running", "failed"),
            ]
        );
        assert_eq!(
            b.history().await,
            vec![
                ("running".into(), 50, Some(201)),
                ("unknown".into(), 201, Some(250)),
                ("failed".into(), 250, None)
            ]
        );
        // Back to running after another outage in which nothing changed: history follows.
        b.poll(400, status(AppState::Running, 390)).await;
        b.fail(500).await;
        b.fail(501).await;
        b.poll(600, status(AppState::Running, 390)).await;
        let history = b.history().await;
        assert_eq!(
            history.last(),
            Some(&("running".into(), 600, None)),
            "{history:?}"
        );
        assert_eq!(b.events().await.len(), 6, "failed → running, down, up");
    }

    #[tokio::test]
    async fn replayed_events_behind_a_poll_are_recorded_once() {
        let b = bed().await;
        b.poll(100, status(AppState::Running, 50)).await;
        // Crash and restart while the stream was away; the poll sees only the restarted app.
        b.poll(300, status(AppState::Running, 250)).await;
        for _ in 0..2 {
            b.event(event(1, AppState::Running, AppState::Failed, 200))
                .await;
            b.event(event(2, AppState::Failed, AppState::Running, 250))
                .await;
        }
        assert_eq!(
            b.events().await,
            vec![tr("running", "failed"), tr("failed", "running")]
        );
        assert_eq!(
            b.history().await,
            vec![
                ("running".into(), 50, Some(200)),
                ("failed".into(), 200, Some(250)),
                ("running".into(), 250, None)
            ]
        );
        assert_eq!(b.state().await, "running");
    }

    #[tokio::test]
    async fn a_transition_seen_by_the_stream_and_a_poll_counts_once() {
        let b = bed().await;
        b.poll(100, status(AppState::Running, 50)).await;
        b.poll(200, status(AppState::Failed, 150)).await; // the poll first
        b.event(event(1, AppState::Running, AppState::Failed, 151))
            .await; // then the stream
        b.event(event(2, AppState::Failed, AppState::Running, 260))
            .await; // the stream first
        b.poll(300, status(AppState::Running, 259)).await; // then the poll
        assert_eq!(
            b.events().await,
            vec![tr("running", "failed"), tr("failed", "running")]
        );
    }
}

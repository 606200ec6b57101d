//! What polls and agent events write, on the writer thread. Each app's old status is read before
//! the new one is written, in the same transaction: a transition is recorded once (one event, one
//! closed interval, one opened), whether the event stream or a poll saw it first, and an answer
//! older than the state already recorded (by the agent's clock) changes nothing.

mod apps;
mod aspects;
mod events;
mod hosts;
pub(crate) mod preload;
mod samples;
#[cfg(test)]
mod tests;

pub use apps::classify_status;
pub use aspects::{apply_clock, clock_skew_ms, SKEW_CLEAR_MS, SKEW_LIMIT_MS};
pub use events::{apply_agent_event, apply_stream_event};
pub use hosts::{apply_poll, apply_poll_failure};
pub use samples::{apply_samples, SampleRow};

use crate::store::db::params;
use fleetdeck_proto::{AppState, Exit, FleetEvent, FleetEventKind, Sample, Severity, Snapshot};

use super::{Notice, StoreError, WriteCtx};
use crate::alerting::rules::Detail;

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
    /// The agent's `/v1/info`, when this poll read it (once per agent instance).
    pub info: Option<fleetdeck_proto::Info>,
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
    ctx.conn.execute("UPDATE hosts SET active = 0", params![])?;
    let mut out = Vec::with_capacity(agents.len());
    for (name, url) in agents {
        ctx.conn.execute(
            "INSERT INTO hosts (name, url) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, active = 1",
            params![name, url],
        )?;
        let cursor = ctx.conn.query_row(
            "SELECT id, instance_id, last_seq, last_event_id FROM hosts WHERE name = ?1",
            params![name],
            |r| {
                Ok(HostCursor {
                    id: r.get(0)?,
                    name: name.clone(),
                    instance_id: r.get(1)?,
                    last_seq: r.get::<i64>(2)? as u64,
                    last_event_id: r.get(3)?,
                })
            },
        )?;
        out.push(cursor);
    }
    Ok(out)
}

pub(super) struct HostRow {
    pub status: String,
    pub status_since_ms: Option<i64>,
    pub instance_id: Option<String>,
    pub last_seq: i64,
    pub missed: u32,
}

pub(super) fn host_row(ctx: &WriteCtx<'_>, host_id: i64) -> Result<HostRow, StoreError> {
    ctx.conn.query_row(
        "SELECT status, status_since_ms, instance_id, last_seq, missed_polls FROM hosts WHERE id = ?1",
        params![host_id],
        |r| {
            Ok(HostRow {
                status: r.get(0)?,
                status_since_ms: r.get(1)?,
                instance_id: r.get(2)?,
                last_seq: r.get(3)?,
                missed: r.get(4)?,
            })
        },
    )
}

/// Closes the subject's open interval and opens one in `state` from `at_ms`, or from the open
/// interval's start if that is later (agent and collector clocks differ a little: history must
/// stay ordered).
pub(super) fn next_interval(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    state: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    let at = close_interval(ctx, host_id, app, at_ms)?;
    ctx.conn.execute(
        "INSERT INTO status_history (host_id, app, state, start_ms) VALUES (?1, ?2, ?3, ?4)",
        params![host_id, app, state, at],
    )?;
    preload::interval_written(ctx, host_id, app, Some((state.to_owned(), at)));
    Ok(())
}

/// Ends the subject's open interval at `at_ms`, or at its start if that is later (history stays
/// ordered); answers the time it ended at.
pub(super) fn close_interval(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    at_ms: u64,
) -> Result<i64, StoreError> {
    let Some((_, open_start)) = preload::open_interval(ctx, host_id, app)? else {
        return Ok(at_ms as i64); // Nothing open: a subject's first interval.
    };
    let at = (at_ms as i64).max(open_start);
    ctx.conn.execute(
        "UPDATE status_history SET end_ms = ?3 WHERE host_id = ?1 AND app = ?2 AND end_ms IS NULL",
        params![host_id, app, at],
    )?;
    preload::interval_written(ctx, host_id, app, None);
    Ok(at)
}

/// The state of the subject's open interval.
pub(super) fn open_state(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
) -> Result<Option<String>, StoreError> {
    Ok(preload::open_interval(ctx, host_id, app)?.map(|(state, _)| state))
}

/// Appends an event and hands it out after the commit.
#[allow(clippy::too_many_arguments)]
pub(super) fn record_event(
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
    let event = NewEvent {
        at_ms,
        severity,
        source,
        kind,
        host,
        app,
        from,
        to,
        exit,
        message,
    };
    record_event_with(ctx, event, &Detail::default())
}

/// An event to append, before it has an id.
pub(crate) struct NewEvent<'a> {
    pub at_ms: u64,
    pub severity: Severity,
    pub source: &'a str,
    pub kind: FleetEventKind,
    pub host: &'a str,
    pub app: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub exit: Option<Exit>,
    pub message: String,
}

/// Appends an event with its detail (crash context, check result, threshold hit, stored in
/// `events.detail_json`) and hands it out after the commit.
pub(crate) fn record_event_with(
    ctx: &mut WriteCtx<'_>,
    e: NewEvent<'_>,
    detail: &Detail,
) -> Result<(), StoreError> {
    let NewEvent {
        at_ms,
        severity,
        source,
        kind,
        host,
        app,
        from,
        to,
        exit,
        message,
    } = e;
    let exit_json = exit
        .map(|e| serde_json::to_string(&e))
        .transpose()
        .ok()
        .flatten();
    let stored = serde_json::json!({
        "context": detail.context,
        "check": detail.check,
        "threshold": detail.threshold,
    });
    let detail_json =
        (detail.context.is_some() || detail.check.is_some() || detail.threshold.is_some())
            .then(|| stored.to_string());
    let id: i64 = ctx.conn.query_row(
        "INSERT INTO events (ts_ms, severity, source, kind, host, app, from_state, to_state, exit_json, message, detail_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
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
            message,
            detail_json
        ],
        |r| r.get(0),
    )?;
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
        context: detail.context.clone(),
        check: detail.check.clone(),
        threshold: detail.threshold.clone(),
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

pub(super) fn severity_of(state: AppState) -> Severity {
    match state {
        AppState::Failed | AppState::CrashLooping => Severity::Critical,
        AppState::NotFound => Severity::Warning,
        _ => Severity::Info,
    }
}

pub(super) fn parse_state(s: &str) -> AppState {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(AppState::Unknown)
}

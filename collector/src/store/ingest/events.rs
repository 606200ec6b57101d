//! Transitions from the agent's event stream, including replays older than the last poll.

use crate::store::db::params;
use fleetdeck_proto::Severity as AlertSeverity;
use fleetdeck_proto::{AgentEvent, AppEvent, AppState, AppStatus, CheckResult, FleetEventKind};

use super::apps::{apply_app, classify, Seen};
use super::aspects::{apply_check, apply_source};
use super::{describe_exit, record_event_with, severity_of, NewEvent};
use crate::alerting::rules::{Aspect, Detail, Health, Transition};
use crate::alerting::AlertInput;
use crate::store::{Notice, StoreError, WriteCtx};

/// Applies any event of the agent's stream (a transition, a check's pass or failure, a source
/// going down or up) and remembers its id for resuming.
pub fn apply_stream_event(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    event: &AgentEvent,
) -> Result<(), StoreError> {
    // What follows reads and writes rows directly: a poll's preload earlier in the job is
    // written out and ended first.
    super::preload::finish(ctx)?;
    match event {
        AgentEvent::Transition(e) => return apply_agent_event(ctx, host_id, host, e),
        AgentEvent::Check(e) => {
            update_stored_check(ctx, host_id, &e.app, &e.result)?;
            apply_check(
                ctx,
                host_id,
                host,
                &e.app,
                &e.result,
                e.at_unix_ms,
                "agent-stream",
            )?;
        }
        AgentEvent::Source(e) => apply_source(
            ctx,
            host_id,
            host,
            &e.source,
            e.up,
            e.error.as_deref(),
            e.at_unix_ms,
            "agent-stream",
        )?,
    }
    ctx.conn.execute(
        "UPDATE hosts SET last_event_id = ?2 WHERE id = ?1",
        params![host_id, event.sse_id()],
    )?;
    Ok(())
}

/// Puts a check's new result into the app's stored status at once (the fleet shows it, and
/// `degraded`, before the next poll). An app not yet polled is left to the poll.
fn update_stored_check(
    ctx: &WriteCtx<'_>,
    host_id: i64,
    app: &str,
    result: &CheckResult,
) -> Result<(), StoreError> {
    let stored: Option<String> = ctx.conn.query_opt(
        "SELECT status_json FROM apps WHERE host_id = ?1 AND name = ?2",
        params![host_id, app],
        |r| r.get(0),
    )?;
    let Some(mut status) = stored.and_then(|j| serde_json::from_str::<AppStatus>(&j).ok()) else {
        return Ok(());
    };
    match status.checks.iter_mut().find(|c| c.name == result.name) {
        Some(c) if c.checked_unix_ms > result.checked_unix_ms => return Ok(()),
        Some(c) => *c = result.clone(),
        None => status.checks.push(result.clone()),
    }
    status.degraded = status.checks.iter().any(|c| c.consecutive_failures >= 2);
    let json = serde_json::to_string(&status)
        .map_err(|e| StoreError::Invalid(format!("cannot encode an app status: {e}")))?;
    ctx.conn.execute(
        "UPDATE apps SET status_json = ?3 WHERE host_id = ?1 AND name = ?2",
        params![host_id, app, json],
    )?;
    Ok(())
}

/// Applies one transition from the agent's event stream and remembers its id for resuming.
pub fn apply_agent_event(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    event: &AppEvent,
) -> Result<(), StoreError> {
    super::preload::finish(ctx)?;
    ctx.conn.execute(
        "UPDATE hosts SET last_event_id = ?2 WHERE id = ?1",
        params![host_id, event.sse_id()],
    )?;
    let stored: Option<(String, i64)> = ctx.conn.query_opt(
        "SELECT status_json, observed_ms FROM apps WHERE host_id = ?1 AND name = ?2",
        params![host_id, event.app],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
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
        &Seen {
            restarted: event.restarted,
            requested: event.requested,
            crash: event.crash.clone(),
        },
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
    let known: Option<i64> = ctx.conn.query_opt(
        "SELECT id FROM status_history WHERE host_id = ?1 AND app = ?2 AND state = ?3
             AND start_ms BETWEEN CAST(?4 AS BIGINT) - 2000 AND CAST(?4 AS BIGINT) + 2000",
        params![host_id, event.app, event.to.as_str(), at],
        |r| r.get(0),
    )?;
    if known.is_some() {
        return Ok(());
    }
    let containing: Option<(i64, String, Option<i64>)> = ctx.conn.query_opt(
        "SELECT id, state, end_ms FROM status_history WHERE host_id = ?1 AND app = ?2
             AND start_ms <= ?3 AND (end_ms IS NULL OR end_ms > ?3) ORDER BY start_ms DESC LIMIT 1",
        params![host_id, event.app, at],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
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
    // Classified against the app's current settings (expect, stopped through Fleetdeck).
    let stored: Option<String> = ctx.conn.query_opt(
        "SELECT status_json FROM apps WHERE host_id = ?1 AND name = ?2",
        params![host_id, event.app],
        |r| r.get(0),
    )?;
    let seen = Seen {
        restarted: event.restarted,
        requested: event.requested,
        crash: event.crash.clone(),
    };
    let (health, severity, detail) =
        match stored.and_then(|json| serde_json::from_str::<AppStatus>(&json).ok()) {
            Some(status) => classify(&status, event.to, &seen),
            None => (
                Health::from(event.to),
                AlertSeverity::Critical,
                Detail {
                    context: event.crash.clone(),
                    ..Detail::default()
                },
            ),
        };
    // A run its restart policy already brought back shows no exit: the crash's is in its context.
    let exit = event.exit.or(event.crash.as_ref().and_then(|c| c.exit));
    if event.to != AppState::Unknown && event.from != AppState::Unknown {
        let mut message = format!("{} on {host}: {} → {}", event.app, event.from, event.to);
        if let Some(exit) = exit {
            message.push_str(&format!(" ({})", describe_exit(exit)));
        }
        if let Some(reason) = &detail.reason {
            message.push_str(&format!(": {reason}"));
        }
        record_event_with(
            ctx,
            NewEvent {
                at_ms: event.at_unix_ms,
                severity: severity_of(event.to),
                source: "agent-stream",
                kind: FleetEventKind::Transition,
                host,
                app: Some(&event.app),
                from: Some(event.from.as_str()),
                to: Some(event.to.as_str()),
                exit,
                message,
            },
            &detail,
        )?;
    }
    ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
        Transition {
            host: host.to_owned(),
            app: Some(event.app.clone()),
            state: event.to.as_str().to_owned(),
            health,
            exit,
            at_ms: event.at_unix_ms,
            aspect: Aspect::State,
            severity,
            detail,
        },
    ))));
    Ok(())
}

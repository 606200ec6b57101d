//! One observation of an app (from a poll or the event stream) against the stored status.

use fleetdeck_proto::Severity as AlertSeverity;
use fleetdeck_proto::{AppState, AppStatus, FleetEventKind, Severity};
use rusqlite::{params, OptionalExtension};

use super::{describe_exit, next_interval, open_state, parse_state, record_event, severity_of};
use crate::alerting::rules::{Aspect, Detail, Health, Transition};
use crate::alerting::AlertInput;
use crate::store::{Notice, StoreError, WriteCtx};

/// Applies one observation of an app. `observed_ms` is when the agent saw it (its clock);
/// `restarted` marks a new process in the same state (from the event stream).
pub(super) fn apply_app(
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

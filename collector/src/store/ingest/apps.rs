//! One observation of an app (from a poll or the event stream) against the stored status.

use crate::store::db::params;
use fleetdeck_proto::Severity as AlertSeverity;
use fleetdeck_proto::{AppState, AppStatus, CrashContext, Expect, FleetEventKind, Severity};

use super::preload;
use super::{
    describe_exit, next_interval, open_state, parse_state, record_event_with, severity_of, NewEvent,
};
use crate::alerting::rules::{Aspect, Detail, Health, Transition};
use crate::alerting::AlertInput;
use crate::store::{Notice, StoreError, WriteCtx};

/// What the event stream adds to an observation (a poll has none of it).
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    /// A new process in the same state.
    pub restarted: bool,
    /// The change was asked for through Fleetdeck.
    pub requested: bool,
    /// The agent's capture of a crash that ended the previous process.
    pub crash: Option<CrashContext>,
}

/// How a new state counts for alerting, and how bad it is (issue 14):
/// - failed, crash-looping: a problem (critical), with the crash context;
/// - not-found: a problem (critical: a removed unit or container is usually a deploy mistake);
/// - stopped while expected to run, not stopped through Fleetdeck: a problem (critical), with
///   the reason "stopped without a request through Fleetdeck"; requested stops and apps with
///   `expect = "any"` are neutral;
/// - running after a crash the restart policy healed (the event carries crash context): a blip
///   (warning), alerted once;
/// - running: healthy; anything else neutral.
pub(super) fn classify(
    status: &AppStatus,
    state: AppState,
    seen: &Seen,
) -> (Health, AlertSeverity, Detail) {
    let mut detail = Detail {
        context: seen.crash.clone(),
        ..Detail::default()
    };
    let health = match state {
        AppState::Running if seen.crash.is_some() => {
            return (Health::Blip, AlertSeverity::Warning, detail);
        }
        AppState::NotFound => {
            let what = if status.target.is_empty() {
                &status.name
            } else {
                &status.target
            };
            detail.reason = Some(format!(
                "{what} is gone (not found): removed, renamed or never deployed?"
            ));
            Health::Problem
        }
        AppState::Stopped
            if status.expect == Expect::Running
                && !status.stopped_by_request
                && !seen.requested =>
        {
            detail.reason = Some("stopped without a request through Fleetdeck".to_owned());
            Health::Problem
        }
        other => Health::from(other),
    };
    (health, AlertSeverity::Critical, detail)
}

/// [`classify`] for a stored status, without what only the event stream knows (used when the
/// collector restarts and rebuilds its open problems).
pub fn classify_status(status: &AppStatus, state: AppState) -> (Health, AlertSeverity, Detail) {
    classify(status, state, &Seen::default())
}

/// Takes the apps stored for `host_id` that the agent's snapshot (`reported`) does not hold out
/// of the fleet: the agent no longer watches them (removed from its agent.toml, or a discovered
/// container or unit that is gone). Each one's history interval ends, its row and aspects go, an
/// info event says so, its open alerts are resolved without a recovery (nothing recovered) and
/// the alerter forgets it.
pub(super) fn unwatch_missing(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    reported: &[String],
    at_ms: u64,
) -> Result<(), StoreError> {
    let stored = preload::app_names(ctx, host_id)?;
    for app in stored.iter().filter(|a| !reported.contains(a)) {
        super::close_interval(ctx, host_id, app, at_ms)?;
        ctx.conn.execute(
            "DELETE FROM apps WHERE host_id = ?1 AND name = ?2",
            params![host_id, app],
        )?;
        preload::app_written(ctx, host_id, app, None);
        ctx.conn.execute(
            "DELETE FROM aspects WHERE host_id = ?1 AND app = ?2",
            params![host_id, app],
        )?;
        preload::app_aspects_deleted(ctx, host_id, app);
        crate::store::alerts::resolve_app(ctx.conn, host, app, at_ms)?;
        record_event_with(
            ctx,
            NewEvent {
                at_ms,
                severity: Severity::Info,
                source: "poll",
                kind: FleetEventKind::AppUnwatched,
                host,
                app: Some(app),
                from: None,
                to: None,
                exit: None,
                message: format!(
                    "{app} on {host} is no longer watched: the agent no longer reports it \
                     (removed from its agent.toml, or a discovered app that is gone)"
                ),
            },
            &Detail::default(),
        )?;
        ctx.notify(Notice::Alert(AlertInput::Unwatched {
            host: host.to_owned(),
            app: app.clone(),
        }));
    }
    Ok(())
}

/// Applies one observation of an app. `observed_ms` is when the agent saw it (its clock).
pub(super) fn apply_app(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    status: AppStatus,
    observed_ms: u64,
    source: &str,
    seen: &Seen,
) -> Result<(), StoreError> {
    let row = preload::app_row(ctx, host_id, &status.name)?;
    let new_state = status.state;
    let json = serde_json::to_string(&status)
        .map_err(|e| StoreError::Invalid(format!("cannot encode an app status: {e}")))?;
    let Some((old, old_observed, old_since)) = row else {
        // First sight of the app: history starts here. It is an event and an alert only when the
        // app is already in trouble (listed but never deployed, failed, stopped while it
        // should run): a new host's broken app must not wait for a change to be heard of.
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
        let written = (
            new_state.as_str().to_owned(),
            observed_ms as i64,
            since as i64,
        );
        preload::app_written(ctx, host_id, &status.name, Some(written));
        next_interval(ctx, host_id, &status.name, new_state.as_str(), since)?;
        let (health, severity, detail) = classify(&status, new_state, seen);
        if health == Health::Problem {
            let mut message = format!("{} on {host} is {new_state} when first seen", status.name);
            if let Some(exit) = status.last_exit {
                message.push_str(&format!(" ({})", describe_exit(exit)));
            }
            if let Some(reason) = &detail.reason {
                message.push_str(&format!(": {reason}"));
            }
            record_event_with(
                ctx,
                NewEvent {
                    at_ms: since,
                    severity,
                    source,
                    kind: FleetEventKind::Transition,
                    host,
                    app: Some(&status.name),
                    from: None,
                    to: Some(new_state.as_str()),
                    exit: status.last_exit,
                    message,
                },
                &detail,
            )?;
            ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
                Transition {
                    host: host.to_owned(),
                    app: Some(status.name.clone()),
                    state: new_state.as_str().to_owned(),
                    health,
                    exit: status.last_exit,
                    at_ms: since,
                    aspect: Aspect::State,
                    severity,
                    detail,
                },
            ))));
        }
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
        preload::touch_app(
            ctx,
            host_id,
            &status.name,
            old.clone(),
            old_since,
            observed_ms as i64,
            json,
        )?;
        // After an outage (history `unknown`) or a partial replay, history follows the app again.
        if open_state(ctx, host_id, &status.name)?.as_deref() != Some(new_state.as_str()) {
            next_interval(ctx, host_id, &status.name, new_state.as_str(), observed_ms)?;
        }
        if seen.restarted && (observed_ms as i64) > old_observed {
            let (health, severity, detail) = classify(&status, new_state, seen);
            // A run already back shows no exit: the crash's is in its context.
            let exit = status
                .last_exit
                .or(seen.crash.as_ref().and_then(|c| c.exit));
            let mut message = format!("{} on {host} restarted", status.name);
            if health == Health::Blip {
                message = format!("{} on {host} crashed and was restarted", status.name);
                if let Some(exit) = exit {
                    message.push_str(&format!(" ({})", describe_exit(exit)));
                }
            }
            record_event_with(
                ctx,
                NewEvent {
                    at_ms: observed_ms,
                    severity: if health == Health::Blip {
                        Severity::Warning
                    } else {
                        Severity::Info
                    },
                    source,
                    kind: FleetEventKind::Restarted,
                    host,
                    app: Some(&status.name),
                    from: Some(new_state.as_str()),
                    to: Some(new_state.as_str()),
                    exit,
                    message,
                },
                &detail,
            )?;
            if health == Health::Blip {
                ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
                    Transition {
                        host: host.to_owned(),
                        app: Some(status.name.clone()),
                        state: new_state.as_str().to_owned(),
                        health,
                        exit,
                        at_ms: observed_ms,
                        aspect: Aspect::State,
                        severity,
                        detail,
                    },
                ))));
            }
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
    let written = (new_state.as_str().to_owned(), observed_ms as i64, at as i64);
    preload::app_written(ctx, host_id, &status.name, Some(written));
    next_interval(ctx, host_id, &status.name, new_state.as_str(), at)?;
    let (health, severity, detail) = classify(&status, new_state, seen);
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
        if let Some(reason) = &detail.reason {
            message.push_str(&format!(": {reason}"));
        }
        let event_severity = match health {
            Health::Problem if new_state == AppState::Stopped => Severity::Critical,
            Health::Problem if new_state == AppState::NotFound => Severity::Critical,
            Health::Blip => Severity::Warning,
            _ => severity_of(new_state),
        };
        record_event_with(
            ctx,
            NewEvent {
                at_ms: at,
                severity: event_severity,
                source,
                kind: FleetEventKind::Transition,
                host,
                app: Some(&status.name),
                from: Some(old_state.as_str()),
                to: Some(new_state.as_str()),
                exit,
                message,
            },
            &detail,
        )?;
    }
    ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
        Transition {
            host: host.to_owned(),
            app: Some(status.name.clone()),
            state: new_state.as_str().to_owned(),
            health,
            exit: status.last_exit,
            at_ms: at,
            aspect: Aspect::State,
            severity,
            detail,
        },
    ))));
    Ok(())
}

//! A host answering a poll or missing it: up/down, its metrics, and its apps' statuses.

use crate::store::db::params;
use fleetdeck_proto::Severity as AlertSeverity;
use fleetdeck_proto::{FleetEventKind, Severity};

use super::apps::{apply_app, Seen};
use super::aspects::{apply_checks_of, apply_sources};
use super::samples::insert_samples;
use super::{host_row, next_interval, record_event, HostRow, Polled, SampleCursor};
use crate::alerting::rules::{Aspect, Detail, Health, Transition};
use crate::alerting::AlertInput;
use crate::store::{Notice, StoreError, WriteCtx};

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
    super::preload::load(ctx, host_id)?;
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
        Some(snapshot.taken_unix_ms),
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
    if let Some(info) = &polled.info {
        ctx.conn.execute(
            "UPDATE hosts SET agent_version = ?2, wire_version = ?3 WHERE id = ?1",
            params![host_id, info.agent_version, i64::from(info.wire_version)],
        )?;
    }
    apply_sources(
        ctx,
        host_id,
        host,
        &snapshot.sources,
        snapshot.taken_unix_ms,
    )?;
    let reported: Vec<String> = snapshot.apps.iter().map(|a| a.name.clone()).collect();
    for app in snapshot.apps {
        // Checks first: their changes are events of their own, and an app that no longer
        // reads is still checked.
        apply_checks_of(ctx, host_id, host, &app, snapshot.taken_unix_ms)?;
        apply_app(
            ctx,
            host_id,
            host,
            app,
            snapshot.taken_unix_ms,
            "poll",
            &Seen::default(),
        )?;
    }
    super::apps::unwatch_missing(ctx, host_id, host, &reported, now_ms)?;
    Ok(SampleCursor {
        instance_id: polled.samples_instance,
        last_seq,
    })
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
        params![host_id, i64::from(missed), error],
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
        ctx.conn.query_map(
            "SELECT name FROM apps WHERE host_id = ?1",
            params![host_id],
            |r| r.get(0),
        )?
    };
    for name in apps {
        next_interval(ctx, host_id, &name, "unknown", now_ms)?;
    }
    Ok(())
}

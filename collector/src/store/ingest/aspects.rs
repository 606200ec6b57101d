//! The aspects of a host or app beside its state: endpoint checks, status sources, the agent's
//! clock. Each one's last state is in the `aspects` table (migration 0004), so a change is one
//! event and one transition for the alerter whether the event stream or a poll saw it first, and
//! an observation older than the recorded one (by the agent's clock) changes nothing.
//!
//! Severities (issue 14): a failing check is a warning problem (the alert goes out when it still
//! fails after the grace period, which at the default 30 s interval is about when its second
//! failure makes the app `degraded`); a source down is a host-level warning; a clock off by more
//! than [`SKEW_LIMIT_MS`] is a warning, clear again below [`SKEW_CLEAR_MS`]; an HTTPS check's
//! certificate expiring within [`CERT_WARNING_DAYS`] is a warning and within
//! [`CERT_CRITICAL_DAYS`] (or expired) a second, critical problem, each ending when the
//! certificate is renewed.

use crate::store::db::params;
use fleetdeck_proto::Severity as AlertSeverity;
use fleetdeck_proto::{AppStatus, CheckResult, FleetEventKind, Severity, SourceHealth, Sources};

use super::{preload, record_event_with, NewEvent};
use crate::alerting::rules::{Aspect, Detail, Health, Transition};
use crate::alerting::AlertInput;
use crate::store::{Notice, StoreError, WriteCtx};

/// An agent clock further off than this (either way) is a problem.
pub const SKEW_LIMIT_MS: i64 = 30_000;
/// ... that clears only once the clock is within this again (hysteresis).
pub const SKEW_CLEAR_MS: i64 = 20_000;

/// A certificate expiring within this many days is a warning problem...
pub const CERT_WARNING_DAYS: u64 = 14;
/// ... and within this many a critical one.
pub const CERT_CRITICAL_DAYS: u64 = 3;

/// Records an observation of one aspect; answers whether its state changed. A first sight counts
/// as a change only when it is not ok (a check's first result counts when it fails).
#[allow(clippy::too_many_arguments)]
fn observe(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    aspect: &str,
    ok: bool,
    observed_ms: u64,
    reason: Option<&str>,
) -> Result<bool, StoreError> {
    let row = preload::aspect(ctx, host_id, app, aspect)?;
    let changed = match row {
        Some((_, seen)) if (observed_ms as i64) < seen => return Ok(false),
        Some((was, _)) => was != ok,
        None => !ok,
    };
    if changed || row.is_none() {
        preload::aspect_written(ctx, host_id, app, aspect, Some((ok, observed_ms as i64)));
        ctx.conn.execute(
            "INSERT INTO aspects (host_id, app, aspect, ok, since_ms, observed_ms, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
             ON CONFLICT (host_id, app, aspect) DO UPDATE SET ok = excluded.ok,
             since_ms = excluded.since_ms, observed_ms = excluded.observed_ms, reason = excluded.reason",
            params![host_id, app, aspect, ok, observed_ms as i64, reason],
        )?;
    } else {
        // Unchanged: `ok` is what the row holds already.
        preload::touch_aspect(ctx, host_id, app, aspect, ok, observed_ms as i64, reason)?;
    }
    Ok(changed)
}

/// One check result of `app`, from a `check` event or a poll's snapshot.
pub fn apply_check(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    app: &str,
    result: &CheckResult,
    observed_ms: u64,
    source: &str,
) -> Result<(), StoreError> {
    apply_cert(ctx, host_id, host, app, result, observed_ms, source)?;
    let aspect = format!("check:{}", result.name);
    let error = result.error.as_deref();
    if !observe(ctx, host_id, app, &aspect, result.ok, observed_ms, error)? {
        return Ok(());
    }
    let at = result.checked_unix_ms.min(observed_ms).max(1);
    let (kind, severity, state, health) = if result.ok {
        (
            FleetEventKind::CheckPassed,
            Severity::Info,
            "passing",
            Health::Ok,
        )
    } else {
        (
            FleetEventKind::CheckFailed,
            Severity::Warning,
            "failing",
            Health::Problem,
        )
    };
    let mut message = format!("check {} of {app} on {host} is {state}", result.name);
    if let Some(error) = error.filter(|_| !result.ok) {
        message.push_str(&format!(": {error}"));
    }
    let detail = Detail {
        check: Some(result.clone()),
        ..Detail::default()
    };
    report(
        ctx,
        NewEvent {
            at_ms: at,
            severity,
            source,
            kind,
            host,
            app: Some(app),
            from: None,
            to: Some(state),
            exit: None,
            message,
        },
        Aspect::Check(result.name.clone()),
        health,
        detail,
        Severity::Warning,
    )?;
    Ok(())
}

/// The certificate an HTTPS check saw: expiring within [`CERT_WARNING_DAYS`] is one problem (a
/// warning), within [`CERT_CRITICAL_DAYS`] another (critical); each ends when a later run sees a
/// certificate beyond its limit. A run that got no certificate (connection refused) changes
/// neither.
fn apply_cert(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    app: &str,
    result: &CheckResult,
    observed_ms: u64,
    source: &str,
) -> Result<(), StoreError> {
    let Some(not_after) = result.cert_not_after_unix_ms else {
        return Ok(());
    };
    let checked = result.checked_unix_ms.min(observed_ms).max(1);
    let left_ms = not_after as i64 - checked as i64;
    let when = crate::alerting::notify::text::cert_when(not_after, checked);
    let name = &result.name;
    for (limit_days, severity, aspect, key) in [
        (
            CERT_WARNING_DAYS,
            Severity::Warning,
            Aspect::CertExpiring(name.clone()),
            format!("cert:{name}"),
        ),
        (
            CERT_CRITICAL_DAYS,
            Severity::Critical,
            Aspect::CertCritical(name.clone()),
            format!("cert-critical:{name}"),
        ),
    ] {
        let ok = left_ms > (limit_days * 86_400_000) as i64;
        let reason = format!("certificate {when}");
        if !observe(ctx, host_id, app, &key, ok, observed_ms, Some(&reason))? {
            continue;
        }
        let (kind, event_severity, state, health) = if ok {
            (
                FleetEventKind::CertRenewed,
                Severity::Info,
                "renewed",
                Health::Ok,
            )
        } else {
            (
                FleetEventKind::CertExpiring,
                severity,
                "expiring",
                Health::Problem,
            )
        };
        let message = if ok {
            format!("the certificate of check {name} of {app} on {host} was renewed: it {when}")
        } else {
            format!(
                "the certificate of check {name} of {app} on {host} {when} \
                 (limit: {limit_days} days)"
            )
        };
        let detail = Detail {
            check: Some(result.clone()),
            reason: Some(reason),
            ..Detail::default()
        };
        report(
            ctx,
            NewEvent {
                at_ms: checked,
                severity: event_severity,
                source,
                kind,
                host,
                app: Some(app),
                from: None,
                to: Some(state),
                exit: None,
                message,
            },
            aspect,
            health,
            detail,
            severity,
        )?;
    }
    Ok(())
}

/// Every check in a polled app, and the end of checks no longer configured (their problems
/// close).
pub fn apply_checks_of(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    app: &AppStatus,
    observed_ms: u64,
) -> Result<(), StoreError> {
    for check in &app.checks {
        apply_check(ctx, host_id, host, &app.name, check, observed_ms, "poll")?;
    }
    // A check's own row and its certificate's two rows end with the check.
    let gone: Vec<(Aspect, String, bool)> = {
        let rows = preload::aspects_of(
            ctx,
            host_id,
            &app.name,
            &["check:", "cert:", "cert-critical:"],
        )?;
        rows.into_iter()
            .filter_map(|(key, ok)| {
                let (kind, name) = key.split_once(':')?;
                if app.checks.iter().any(|c| c.name == name) {
                    return None;
                }
                let aspect = match kind {
                    "check" => Aspect::Check(name.to_owned()),
                    "cert" => Aspect::CertExpiring(name.to_owned()),
                    _ => Aspect::CertCritical(name.to_owned()),
                };
                Some((aspect, key, ok))
            })
            .collect()
    };
    for (aspect, key, ok) in gone {
        ctx.conn.execute(
            "DELETE FROM aspects WHERE host_id = ?1 AND app = ?2 AND aspect = ?3",
            params![host_id, app.name, key],
        )?;
        preload::aspect_written(ctx, host_id, &app.name, &key, None);
        if !ok {
            notify(
                ctx,
                host,
                Some(&app.name),
                aspect,
                "removed",
                Health::Other,
                observed_ms,
                Detail::default(),
                Severity::Warning,
            );
        }
    }
    Ok(())
}

/// A status source (`systemd`, `docker`) up or down, from a `source` event or a poll.
#[allow(clippy::too_many_arguments)]
pub fn apply_source(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    name: &str,
    up: bool,
    error: Option<&str>,
    observed_ms: u64,
    source: &str,
) -> Result<(), StoreError> {
    let aspect = format!("source:{name}");
    if !observe(ctx, host_id, "", &aspect, up, observed_ms, error)? {
        return Ok(());
    }
    let (kind, severity, state, health) = if up {
        (FleetEventKind::SourceUp, Severity::Info, "up", Health::Ok)
    } else {
        (
            FleetEventKind::SourceDown,
            Severity::Warning,
            "down",
            Health::Problem,
        )
    };
    let mut message = format!("the {name} source of {host} is {state}");
    if let Some(error) = error.filter(|_| !up) {
        message.push_str(&format!(": {error}"));
    }
    let detail = Detail {
        reason: error.filter(|_| !up).map(str::to_owned),
        ..Detail::default()
    };
    report(
        ctx,
        NewEvent {
            at_ms: observed_ms,
            severity,
            source,
            kind,
            host,
            app: None,
            from: None,
            to: Some(state),
            exit: None,
            message,
        },
        Aspect::Source(name.to_owned()),
        health,
        detail,
        Severity::Warning,
    )?;
    Ok(())
}

/// The sources a snapshot reports (an unused source counts as up: nothing needs it).
pub fn apply_sources(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    sources: &Sources,
    observed_ms: u64,
) -> Result<(), StoreError> {
    for (name, health) in [("systemd", &sources.systemd), ("docker", &sources.docker)] {
        let (up, error) = match health {
            SourceHealth::Down { error } => (false, Some(error.as_str())),
            SourceHealth::Up | SourceHealth::Unused => (true, None),
        };
        apply_source(ctx, host_id, host, name, up, error, observed_ms, "poll")?;
    }
    Ok(())
}

/// How far the agent's clock is from the collector's (positive: ahead), measured at a poll: the
/// agent stamps its snapshot when its reads begin, which must fall between the collector's
/// sending the request and reading the answer. Inside that window the skew is taken as zero.
pub fn clock_skew_ms(agent_ms: u64, sent_ms: u64, answered_ms: u64) -> i64 {
    if agent_ms < sent_ms {
        -((sent_ms - agent_ms) as i64)
    } else if agent_ms > answered_ms {
        (agent_ms - answered_ms) as i64
    } else {
        0
    }
}

/// One measurement of the agent's clock: a problem beyond [`SKEW_LIMIT_MS`], ok again below
/// [`SKEW_CLEAR_MS`] (in between it stays as it was).
pub fn apply_clock(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    host: &str,
    skew_ms: i64,
    now_ms: u64,
) -> Result<(), StoreError> {
    let was_ok = preload::aspect(ctx, host_id, "", "clock")?.is_none_or(|(ok, _)| ok);
    let off = skew_ms.abs();
    let ok = if was_ok {
        off <= SKEW_LIMIT_MS
    } else {
        off < SKEW_CLEAR_MS
    };
    let reason = format!(
        "agent clock {} s {}",
        (off + 500) / 1000,
        if skew_ms >= 0 { "ahead" } else { "behind" }
    );
    if !observe(ctx, host_id, "", "clock", ok, now_ms, Some(&reason))? {
        return Ok(());
    }
    let (kind, severity, state, health) = if ok {
        (FleetEventKind::ClockOk, Severity::Info, "ok", Health::Ok)
    } else {
        (
            FleetEventKind::ClockSkew,
            Severity::Warning,
            "skewed",
            Health::Problem,
        )
    };
    let message = format!("the clock of {host} is {state}: {reason}");
    let detail = Detail {
        reason: Some(reason),
        ..Detail::default()
    };
    report(
        ctx,
        NewEvent {
            at_ms: now_ms,
            severity,
            source: "collector",
            kind,
            host,
            app: None,
            from: None,
            to: Some(state),
            exit: None,
            message,
        },
        Aspect::Clock,
        health,
        detail,
        Severity::Warning,
    )?;
    Ok(())
}

/// Records one change of an aspect in the event log and tells the alerter: the event's `host`,
/// `app`, `to` (the new state) and time are the transition's.
fn report(
    ctx: &mut WriteCtx<'_>,
    event: NewEvent<'_>,
    aspect: Aspect,
    health: Health,
    detail: Detail,
    severity: AlertSeverity,
) -> Result<(), StoreError> {
    let (host, app, state, at_ms) = (event.host, event.app, event.to.unwrap_or(""), event.at_ms);
    record_event_with(ctx, event, &detail)?;
    notify(
        ctx, host, app, aspect, state, health, at_ms, detail, severity,
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn notify(
    ctx: &mut WriteCtx<'_>,
    host: &str,
    app: Option<&str>,
    aspect: Aspect,
    state: &str,
    health: Health,
    at_ms: u64,
    detail: Detail,
    severity: AlertSeverity,
) {
    ctx.notify(Notice::Alert(AlertInput::Transition(Box::new(
        Transition {
            host: host.to_owned(),
            app: app.map(str::to_owned),
            state: state.to_owned(),
            health,
            exit: None,
            at_ms,
            aspect,
            severity,
            detail,
        },
    ))));
}

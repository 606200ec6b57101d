//! What a poll reads of its own host, read up front: one statement per table (apps, open history
//! intervals, aspects) instead of one or two per app and aspect. On PostgreSQL each statement is a
//! round trip the writer waits for, and those reads were most of a steady poll's (issue 17,
//! docs/benchmarks.md).
//!
//! Writes that only say "seen again" (an app's or an aspect's `observed_ms`, an unchanged app's
//! status, an aspect's reason) wait in the preload and go out as one statement per table when
//! the job's work is done ([`finish`]); any other write of the same row replaces its waiting one,
//! which it supersedes.
//!
//! The copy is written through: every function of this module's siblings that writes one of
//! these rows while a preload is set updates the copy in the same step, so a later read in the
//! same job sees what the database holds. Only a poll's job sets it ([`load`]), and it is dropped
//! when the job ends ([`crate::store::WriteCtx`]), so it never outlives the transaction whose
//! reads it stands for. Within the job nothing else writes these rows: the writer thread is
//! their only writer.

use std::collections::HashMap;

use crate::store::db::{params, Param};
use crate::store::{StoreError, WriteCtx};

/// An app's row as a poll compares against it: state, observed_ms, state_since_ms.
pub(super) type AppRow = (String, i64, i64);

/// One host's rows, as the job's transaction sees them.
#[derive(Debug, Default)]
pub struct Preload {
    host_id: i64,
    apps: HashMap<String, AppRow>,
    /// App ("" for the host itself) → its open interval's state and start.
    open: HashMap<String, (String, i64)>,
    /// (app, aspect) → ok, observed_ms.
    aspects: HashMap<(String, String), (bool, i64)>,
    /// App → observed_ms and status_json, to write at [`finish`].
    app_touches: HashMap<String, (i64, String)>,
    /// (app, aspect) → observed_ms and reason, to write at [`finish`].
    aspect_touches: HashMap<(String, String), (i64, Option<String>)>,
}

/// Rows one "seen again" statement writes (a poll has a few; a host with hundreds of apps takes
/// more than one statement).
const TOUCHES_PER_UPDATE: usize = 400;

/// Reads the host's rows into the job's preload (three statements).
pub(super) fn load(ctx: &mut WriteCtx<'_>, host_id: i64) -> Result<(), StoreError> {
    // A second poll in one job: the first one's waiting writes go out first.
    finish(ctx)?;
    let apps = ctx.conn.query_map(
        "SELECT name, state, observed_ms, state_since_ms FROM apps WHERE host_id = ?1",
        params![host_id],
        |r| Ok((r.get::<String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
    )?;
    let open = ctx.conn.query_map(
        "SELECT app, state, start_ms FROM status_history WHERE host_id = ?1 AND end_ms IS NULL",
        params![host_id],
        |r| Ok((r.get::<String>(0)?, (r.get(1)?, r.get(2)?))),
    )?;
    let aspects = ctx.conn.query_map(
        "SELECT app, aspect, ok, observed_ms FROM aspects WHERE host_id = ?1",
        params![host_id],
        |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))),
    )?;
    ctx.preload = Some(Preload {
        host_id,
        apps: apps.into_iter().collect(),
        open: open.into_iter().collect(),
        aspects: aspects.into_iter().collect(),
        app_touches: HashMap::new(),
        aspect_touches: HashMap::new(),
    });
    Ok(())
}

/// Writes what waits: each table's "seen again" rows in one statement. Called when a job's work
/// succeeded, before its savepoint is released; the preload ends with the job either way.
pub(crate) fn finish(ctx: &mut WriteCtx<'_>) -> Result<(), StoreError> {
    let Some(p) = ctx.preload.take() else {
        return Ok(());
    };
    let mut apps: Vec<_> = p.app_touches.into_iter().collect();
    apps.sort();
    for chunk in apps.chunks(TOUCHES_PER_UPDATE) {
        let mut values: Vec<&dyn Param> = vec![&p.host_id];
        let mut rows = Vec::with_capacity(chunk.len());
        for (name, (observed, json)) in chunk {
            let at = values.len() + 1;
            rows.push(format!("(?{at}, CAST(?{} AS BIGINT), ?{})", at + 1, at + 2));
            values.extend([name as &dyn Param, observed, json]);
        }
        ctx.conn.execute(
            &format!(
                "UPDATE apps SET observed_ms = v.column2, status_json = v.column3
                 FROM (VALUES {}) AS v WHERE apps.host_id = ?1 AND apps.name = v.column1",
                rows.join(", ")
            ),
            &values,
        )?;
    }
    let mut aspects: Vec<_> = p.aspect_touches.into_iter().collect();
    aspects.sort();
    for chunk in aspects.chunks(TOUCHES_PER_UPDATE) {
        let mut values: Vec<&dyn Param> = vec![&p.host_id];
        let mut rows = Vec::with_capacity(chunk.len());
        for ((app, aspect), (observed, reason)) in chunk {
            let at = values.len() + 1;
            rows.push(format!(
                "(?{at}, ?{}, CAST(?{} AS BIGINT), ?{})",
                at + 1,
                at + 2,
                at + 3
            ));
            values.extend([app as &dyn Param, aspect, observed, reason]);
        }
        ctx.conn.execute(
            &format!(
                "UPDATE aspects SET observed_ms = v.column3, reason = v.column4
                 FROM (VALUES {}) AS v
                 WHERE aspects.host_id = ?1 AND aspects.app = v.column1 AND aspects.aspect = v.column2",
                rows.join(", ")
            ),
            &values,
        )?;
    }
    Ok(())
}

fn of<'c>(ctx: &'c mut WriteCtx<'_>, host_id: i64) -> Option<&'c mut Preload> {
    ctx.preload.as_mut().filter(|p| p.host_id == host_id)
}

/// The app's row: from the preload, or read.
pub(super) fn app_row(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    name: &str,
) -> Result<Option<AppRow>, StoreError> {
    if let Some(p) = of(ctx, host_id) {
        return Ok(p.apps.get(name).cloned());
    }
    ctx.conn.query_opt(
        "SELECT state, observed_ms, state_since_ms FROM apps WHERE host_id = ?1 AND name = ?2",
        params![host_id, name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// An unchanged app seen again: its `observed_ms` and status, written now or, with a preload, at
/// [`finish`].
pub(super) fn touch_app(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    name: &str,
    state: String,
    since_ms: i64,
    observed_ms: i64,
    status_json: String,
) -> Result<(), StoreError> {
    if let Some(p) = of(ctx, host_id) {
        p.apps
            .insert(name.to_owned(), (state, observed_ms, since_ms));
        p.app_touches
            .insert(name.to_owned(), (observed_ms, status_json));
        return Ok(());
    }
    ctx.conn.execute(
        "UPDATE apps SET observed_ms = ?3, status_json = ?4 WHERE host_id = ?1 AND name = ?2",
        params![host_id, name, observed_ms, status_json],
    )?;
    Ok(())
}

/// The app's row was written (`None`: deleted); a waiting touch of it is superseded.
pub(super) fn app_written(ctx: &mut WriteCtx<'_>, host_id: i64, name: &str, row: Option<AppRow>) {
    if let Some(p) = of(ctx, host_id) {
        p.app_touches.remove(name);
        match row {
            Some(row) => p.apps.insert(name.to_owned(), row),
            None => p.apps.remove(name),
        };
    }
}

/// The names of the host's apps.
pub(super) fn app_names(ctx: &mut WriteCtx<'_>, host_id: i64) -> Result<Vec<String>, StoreError> {
    if let Some(p) = of(ctx, host_id) {
        let mut names: Vec<String> = p.apps.keys().cloned().collect();
        names.sort();
        return Ok(names);
    }
    ctx.conn.query_map(
        "SELECT name FROM apps WHERE host_id = ?1 ORDER BY name",
        params![host_id],
        |r| r.get(0),
    )
}

/// The subject's open interval (`app` "" for the host): its state and start.
pub(super) fn open_interval(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    if let Some(p) = of(ctx, host_id) {
        return Ok(p.open.get(app).cloned());
    }
    ctx.conn.query_opt(
        "SELECT state, start_ms FROM status_history WHERE host_id = ?1 AND app = ?2 AND end_ms IS NULL",
        params![host_id, app],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The subject's open interval was closed (`None`) or a new one opened.
pub(super) fn interval_written(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    open: Option<(String, i64)>,
) {
    if let Some(p) = of(ctx, host_id) {
        match open {
            Some(open) => p.open.insert(app.to_owned(), open),
            None => p.open.remove(app),
        };
    }
}

/// An aspect's ok and observed_ms.
pub(super) fn aspect(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    aspect: &str,
) -> Result<Option<(bool, i64)>, StoreError> {
    if let Some(p) = of(ctx, host_id) {
        return Ok(p.aspects.get(&(app.to_owned(), aspect.to_owned())).copied());
    }
    ctx.conn.query_opt(
        "SELECT ok, observed_ms FROM aspects WHERE host_id = ?1 AND app = ?2 AND aspect = ?3",
        params![host_id, app, aspect],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// An unchanged aspect seen again: its `observed_ms` and reason, written now or, with a preload,
/// at [`finish`].
pub(super) fn touch_aspect(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    aspect: &str,
    ok: bool,
    observed_ms: i64,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(p) = of(ctx, host_id) {
        let key = (app.to_owned(), aspect.to_owned());
        p.aspects.insert(key.clone(), (ok, observed_ms));
        p.aspect_touches
            .insert(key, (observed_ms, reason.map(str::to_owned)));
        return Ok(());
    }
    ctx.conn.execute(
        "UPDATE aspects SET observed_ms = ?4, reason = ?5
         WHERE host_id = ?1 AND app = ?2 AND aspect = ?3",
        params![host_id, app, aspect, observed_ms, reason],
    )?;
    Ok(())
}

/// The aspect was written (`None`: deleted); a waiting touch of it is superseded.
pub(super) fn aspect_written(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    aspect: &str,
    row: Option<(bool, i64)>,
) {
    if let Some(p) = of(ctx, host_id) {
        let key = (app.to_owned(), aspect.to_owned());
        p.aspect_touches.remove(&key);
        match row {
            Some(row) => p.aspects.insert(key, row),
            None => p.aspects.remove(&key),
        };
    }
}

/// Every aspect of the app was deleted.
pub(super) fn app_aspects_deleted(ctx: &mut WriteCtx<'_>, host_id: i64, app: &str) {
    if let Some(p) = of(ctx, host_id) {
        p.aspects.retain(|(a, _), _| a != app);
        p.aspect_touches.retain(|(a, _), _| a != app);
    }
}

/// The app's aspects whose names start with one of `prefixes`: name and ok.
pub(super) fn aspects_of(
    ctx: &mut WriteCtx<'_>,
    host_id: i64,
    app: &str,
    prefixes: &[&str],
) -> Result<Vec<(String, bool)>, StoreError> {
    if let Some(p) = of(ctx, host_id) {
        let mut rows: Vec<(String, bool)> = p
            .aspects
            .iter()
            .filter(|((a, name), _)| a == app && prefixes.iter().any(|x| name.starts_with(x)))
            .map(|((_, name), (ok, _))| (name.clone(), *ok))
            .collect();
        rows.sort();
        return Ok(rows);
    }
    let rows: Vec<(String, bool)> = ctx.conn.query_map(
        "SELECT aspect, ok FROM aspects WHERE host_id = ?1 AND app = ?2 ORDER BY aspect",
        params![host_id, app],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter(|(name, _)| prefixes.iter().any(|x| name.starts_with(x)))
        .collect())
}

//! `fleetdeck-collector silence add|list|rm`: the silences, at the command line on the
//! collector's host. They are written to the database the running collector reads them from, so
//! they take effect there within [`crate::alerting::HELD_CHECK`]; each change is audited under
//! the command line's name.

use std::path::Path;

use fleetdeck_proto::{NewSilence, Silence};

use crate::alerting::silence;
use crate::config::Config;
use crate::store::audit::{self, Who};
use crate::store::{alerts, now_ms, Store};

/// What to do.
#[derive(Debug, Clone)]
pub enum SilenceCommand {
    Add(NewSilence),
    List,
    Rm(i64),
}

/// Carries out `command` on the database of the collector configured at `config_path` and
/// answers what to print.
pub fn run(config_path: &Path, command: SilenceCommand) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database)?;
    let who = Who::command_line();
    let now = now_ms();
    match command {
        SilenceCommand::Add(new) => {
            let checked = silence::check(&new, now).map_err(|e| anyhow::anyhow!(e))?;
            let s = store.with_conn_blocking(|conn| {
                let s = alerts::add_silence(conn, &checked, &who.key_name, now)?;
                audit::record(
                    conn,
                    &who,
                    "silence.add",
                    &silence::audit_target(&s),
                    "ok",
                    now,
                )?;
                Ok(s)
            })?;
            Ok(format!("added {}", line(&s, now)))
        }
        SilenceCommand::List => {
            let all = store.with_conn_blocking(|conn| alerts::silences(conn, now))?;
            if all.is_empty() {
                return Ok("no silence in force or to come".to_owned());
            }
            Ok(all
                .iter()
                .map(|s| line(s, now))
                .collect::<Vec<_>>()
                .join("\n"))
        }
        SilenceCommand::Rm(id) => {
            let removed = store.with_conn_blocking(|conn| {
                let removed = alerts::remove_silence(conn, id, &who.key_name, now)?;
                let outcome = if removed.is_some() {
                    "ok"
                } else {
                    "failed: no such silence in force"
                };
                audit::record(
                    conn,
                    &who,
                    "silence.remove",
                    &format!("silence {id}"),
                    outcome,
                    now,
                )?;
                Ok(removed)
            })?;
            match removed {
                Some(s) => Ok(format!("removed {}", line(&s, now))),
                None => Err(anyhow::anyhow!(
                    "no silence {id} in force or to come; `silence list` shows them"
                )),
            }
        }
    }
}

/// `#3 hosts=db-* apps=* kind=* until 2026-12-04T18:00:00Z (in 2h 0m) by alice: reason`.
fn line(s: &Silence, now: u64) -> String {
    let until = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(s.ends_unix_ms),
    );
    let left = s.ends_unix_ms.saturating_sub(now) / 60_000;
    format!(
        "#{} hosts={} apps={} kind={} until {until} (in {}h {}m) by {}: {}",
        s.id,
        s.hosts,
        s.apps.as_deref().unwrap_or("*"),
        s.kind.as_deref().unwrap_or("*"),
        left / 60,
        left % 60,
        s.created_by,
        s.reason
    )
}

//! Watching units: `Manager.Subscribe()` plus the `PropertiesChanged` signals of the configured
//! units' objects. Each signal for a unit calls back with the unit's name; the callback re-reads
//! the unit, so a crash is seen within milliseconds instead of at the next poll. A signal of the
//! `Service` interface carries the main process's exit as it was when sent: a unit its restart
//! policy brings back at once is running again by the time it is read, so the exit is passed on
//! from the signal (see [`main_exit`]).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::{connect, ManagerProxy, SystemdError};
use crate::config::SystemdScope;
use fleetdeck_proto::Exit;
use futures_util::StreamExt;
use zbus::zvariant::OwnedValue;

/// How a unit's main process ended and when (Unix ms), from a change signal.
pub type UnitExit = (Exit, u64);

/// Watches `units` until the process ends, reconnecting with backoff after a failure. When the
/// bus cannot be reached, `on_down` hears why (the first pass after a reconnection re-reads
/// every unit, which tells the agent the bus is back).
pub async fn watch_units<F, Fut, D>(
    scope: SystemdScope,
    units: Vec<String>,
    on_change: F,
    on_down: D,
) where
    F: Fn(String, Option<UnitExit>) -> Fut,
    Fut: Future<Output = ()>,
    D: Fn(String),
{
    let mut backoff = Duration::from_millis(500);
    loop {
        match watch_once(scope, &units, &on_change, &on_down).await {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "systemd watch failed; unit changes are seen by polling until it is back");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn watch_once<F, Fut, D>(
    scope: SystemdScope,
    units: &[String],
    on_change: &F,
    on_down: &D,
) -> Result<(), SystemdError>
where
    F: Fn(String, Option<UnitExit>) -> Fut,
    Fut: Future<Output = ()>,
    D: Fn(String),
{
    let conn = connect(scope)
        .await
        .inspect_err(|e| on_down(e.to_string()))?;
    let manager = ManagerProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    // Without Subscribe the manager sends no unit signals to this client.
    manager.subscribe().await?;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.freedesktop.DBus.Properties")?
        .member("PropertiesChanged")?
        .path_namespace("/org/freedesktop/systemd1/unit")?
        .build();
    let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, Some(1024)).await?;
    let mut by_path: HashMap<String, String> = HashMap::new();
    for unit in units {
        by_path.insert(manager.load_unit(unit).await?.to_string(), unit.clone());
    }
    tracing::debug!(units = units.len(), "watching systemd units");
    // Anything that changed before the match rule was in place is caught by this first pass.
    for unit in units {
        on_change(unit.clone(), None).await;
    }
    while let Some(message) = stream.next().await {
        let message = message.inspect_err(|e| on_down(format!("D-Bus connection failed: {e}")))?;
        let header = message.header();
        let Some(path) = header.path() else { continue };
        if let Some(unit) = by_path.get(path.as_str()) {
            let exit = message
                .body()
                .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
                .ok()
                .and_then(|(interface, changed, _)| main_exit(&interface, &changed));
            on_change(unit.clone(), exit).await;
        }
    }
    let closed = SystemdError::Call(zbus::Error::Failure("the D-Bus connection closed".into()));
    on_down(closed.to_string());
    Err(closed)
}

/// The main process's exit in a `PropertiesChanged` of the `Service` interface: `ExecMainCode`
/// (`CLD_EXITED` = 1, `CLD_KILLED` = 2, `CLD_DUMPED` = 3), `ExecMainStatus` and
/// `ExecMainExitTimestamp` (µs). None while the process runs (code 0) or never ran.
pub fn main_exit(interface: &str, changed: &HashMap<String, OwnedValue>) -> Option<UnitExit> {
    if interface != "org.freedesktop.systemd1.Service" {
        return None;
    }
    let code = i32::try_from(changed.get("ExecMainCode")?).ok()?;
    let status = i32::try_from(changed.get("ExecMainStatus")?).ok()?;
    let at_us = u64::try_from(changed.get("ExecMainExitTimestamp")?).ok()?;
    let exit = match code {
        1 => Exit::Code(status),
        2 | 3 => Exit::Signal(status),
        _ => return None,
    };
    (at_us > 0).then_some((exit, at_us / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    fn changed(code: i32, status: i32, at_us: u64) -> HashMap<String, OwnedValue> {
        [
            ("ExecMainCode", Value::from(code)),
            ("ExecMainStatus", Value::from(status)),
            ("ExecMainExitTimestamp", Value::from(at_us)),
            ("ExecMainPID", Value::from(0u32)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), OwnedValue::try_from(v).expect("owned")))
        .collect()
    }

    #[test]
    fn the_exit_is_read_from_a_service_signal() {
        let service = "org.freedesktop.systemd1.Service";
        assert_eq!(
            main_exit(service, &changed(1, 3, 5_000_000)),
            Some((Exit::Code(3), 5_000))
        );
        assert_eq!(
            main_exit(service, &changed(2, 9, 5_000_000)),
            Some((Exit::Signal(9), 5_000))
        );
        // Running (no exit yet), never exited, another interface, missing properties.
        assert_eq!(main_exit(service, &changed(0, 0, 5_000_000)), None);
        assert_eq!(main_exit(service, &changed(1, 3, 0)), None);
        assert_eq!(
            main_exit("org.freedesktop.systemd1.Unit", &changed(1, 3, 5_000_000)),
            None
        );
        assert_eq!(main_exit(service, &HashMap::new()), None);
    }
}

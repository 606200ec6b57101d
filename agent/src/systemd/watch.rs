//! Watching units: `Manager.Subscribe()` plus the `PropertiesChanged` signals of the configured
//! units' objects. Each signal for a unit calls back with the unit's name; the callback re-reads
//! the unit, so a crash is seen within milliseconds instead of at the next poll.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::{connect, ManagerProxy, SystemdError};
use crate::config::SystemdScope;
use futures_util::StreamExt;

/// Watches `units` until the process ends, reconnecting with backoff after a failure. When the
/// bus cannot be reached, `on_down` hears why (the first pass after a reconnection re-reads
/// every unit, which tells the agent the bus is back).
pub async fn watch_units<F, Fut, D>(
    scope: SystemdScope,
    units: Vec<String>,
    on_change: F,
    on_down: D,
) where
    F: Fn(String) -> Fut,
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
    F: Fn(String) -> Fut,
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
        on_change(unit.clone()).await;
    }
    while let Some(message) = stream.next().await {
        let message = message.inspect_err(|e| on_down(format!("D-Bus connection failed: {e}")))?;
        let header = message.header();
        let Some(path) = header.path() else { continue };
        if let Some(unit) = by_path.get(path.as_str()) {
            on_change(unit.clone()).await;
        }
    }
    let closed = SystemdError::Call(zbus::Error::Failure("the D-Bus connection closed".into()));
    on_down(closed.to_string());
    Err(closed)
}

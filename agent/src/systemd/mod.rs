//! systemd units over D-Bus (zbus): the properties of each configured unit, read fresh at every
//! snapshot on the configured bus (system, or the user manager's session bus).

mod status;

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::config::SystemdScope;

pub use status::{app_state, UnitProps};

/// How long one D-Bus call may take before the source counts as down for this snapshot.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.DBus.Properties",
    default_service = "org.freedesktop.systemd1"
)]
trait UnitProperties {
    fn get_all(&self, interface: &str) -> zbus::Result<HashMap<String, OwnedValue>>;
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to the {scope} D-Bus: {source}")]
    Connect {
        scope: &'static str,
        source: zbus::Error,
    },
    #[error("D-Bus call failed: {0}")]
    Call(#[from] zbus::Error),
    #[error("D-Bus call timed out after {0:?}")]
    Timeout(Duration),
}

/// The systemd manager on one bus, with a connection opened on first use and reopened after a failure.
#[derive(Debug)]
pub struct Systemd {
    scope: SystemdScope,
    conn: Mutex<Option<zbus::Connection>>,
    paths: Mutex<HashMap<String, OwnedObjectPath>>,
}

impl Systemd {
    pub fn new(scope: SystemdScope) -> Self {
        Self {
            scope,
            conn: Mutex::new(None),
            paths: Mutex::new(HashMap::new()),
        }
    }

    fn scope_name(&self) -> &'static str {
        match self.scope {
            SystemdScope::System => "system",
            SystemdScope::User => "user (session)",
        }
    }

    async fn connection(&self) -> Result<zbus::Connection, SystemdError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let connect = async {
            match self.scope {
                SystemdScope::System => zbus::Connection::system().await,
                SystemdScope::User => zbus::Connection::session().await,
            }
        };
        let conn = tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .map_err(|_| SystemdError::Timeout(CALL_TIMEOUT))?
            .map_err(|source| SystemdError::Connect {
                scope: self.scope_name(),
                source,
            })?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection so the next call reconnects (the bus or the manager restarted).
    async fn reset(&self) {
        self.conn.lock().await.take();
        self.paths.lock().await.clear();
    }

    /// Reads the properties of `unit`; a unit that does not exist comes back with
    /// `load_state = "not-found"`, not as an error.
    pub async fn unit(&self, unit: &str) -> Result<UnitProps, SystemdError> {
        let result = tokio::time::timeout(CALL_TIMEOUT, self.unit_inner(unit))
            .await
            .unwrap_or(Err(SystemdError::Timeout(CALL_TIMEOUT)));
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn unit_inner(&self, unit: &str) -> Result<UnitProps, SystemdError> {
        let conn = self.connection().await?;
        let path = self.unit_path(&conn, unit).await?;
        let props = UnitPropertiesProxy::builder(&conn)
            .path(path)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let unit_props = props.get_all(UNIT_IFACE).await?;
        let service_props = if unit.ends_with(".service") {
            props.get_all(SERVICE_IFACE).await?
        } else {
            HashMap::new()
        };
        Ok(UnitProps::from_maps(&unit_props, &service_props))
    }

    async fn unit_path(
        &self,
        conn: &zbus::Connection,
        unit: &str,
    ) -> Result<OwnedObjectPath, SystemdError> {
        if let Some(p) = self.paths.lock().await.get(unit) {
            return Ok(p.clone());
        }
        let manager = ManagerProxy::builder(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let path = manager.load_unit(unit).await?;
        self.paths
            .lock()
            .await
            .insert(unit.to_owned(), path.clone());
        Ok(path)
    }
}

//! systemd units over D-Bus (zbus): the properties of each configured unit, read fresh at every
//! snapshot on the configured bus (system, or the user manager's session bus).

mod status;
pub mod watch;

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use zbus::zvariant::OwnedObjectPath;

use crate::config::SystemdScope;

pub use status::{app_state, ServiceIface, UnitIface, UnitProps};

/// How long one D-Bus call may take before the source counts as down for this snapshot.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";

// Only the async proxies: the blocking ones would double the code (the agent is size-bound).
#[zbus::proxy(
    gen_blocking = false,
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn subscribe(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    #[allow(clippy::type_complexity)] // systemd's own a(ssssssouso)
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;
    fn list_unit_files_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<Vec<(String, String)>>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    gen_blocking = false,
    interface = "org.freedesktop.DBus.Properties",
    default_service = "org.freedesktop.systemd1"
)]
trait UnitProperties {
    #[zbus(name = "GetAll")]
    fn get_all_unit(&self, interface: &str) -> zbus::Result<UnitIface>;
    #[zbus(name = "GetAll")]
    fn get_all_service(&self, interface: &str) -> zbus::Result<ServiceIface>;
    #[zbus(name = "GetAll")]
    fn get_all_origin(&self, interface: &str) -> zbus::Result<UnitOrigin>;
    #[zbus(name = "GetAll")]
    fn get_all_service_env(&self, interface: &str) -> zbus::Result<ServiceEnv>;
}

/// Where a unit comes from and whether it runs or is enabled: what discovery asks of it.
#[derive(Debug, Default, Clone, zbus::zvariant::DeserializeDict, zbus::zvariant::Type)]
#[zvariant(signature = "a{sv}", rename_all = "PascalCase")]
pub struct UnitOrigin {
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub unit_file_state: Option<String>,
    /// The unit file systemd loaded it from (empty for a transient or generated-only unit).
    pub fragment_path: Option<String>,
}

/// A service's `EnvironmentFile=` entries.
#[derive(Debug, Default, zbus::zvariant::DeserializeDict, zbus::zvariant::Type)]
#[zvariant(signature = "a{sv}", rename_all = "PascalCase")]
pub struct ServiceEnv {
    /// (path, optional: written with a leading `-`).
    pub environment_files: Option<Vec<(String, bool)>>,
}

/// A unit discovery found, with what a stanza for it needs.
#[derive(Debug, Clone, Default)]
pub struct FoundUnit {
    pub name: String,
    pub origin: UnitOrigin,
    /// `EnvironmentFile=` paths, in order.
    pub env_files: Vec<String>,
}

impl FoundUnit {
    /// Running (or failing, or on its way) now, or enabled to start.
    pub fn in_use(&self) -> bool {
        let active = self.origin.active_state.as_deref().unwrap_or("");
        let enabled = self.origin.unit_file_state.as_deref().unwrap_or("");
        matches!(
            active,
            "active" | "activating" | "reloading" | "deactivating" | "failed"
        ) || matches!(enabled, "enabled" | "enabled-runtime")
    }
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
    #[error("systemd's {action} job for {unit} did not finish within {timeout:?}; it may still be running")]
    JobTimeout {
        action: &'static str,
        unit: String,
        timeout: Duration,
    },
}

impl SystemdError {
    /// systemd answered that the unit does not exist (no unit file, or a transient unit that is
    /// gone): the host lacks the target, systemd itself did not fail.
    pub fn is_no_such_unit(&self) -> bool {
        matches!(self, Self::Call(zbus::Error::MethodError(name, _, _)) if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit")
    }
}

/// How long a start, stop or restart job may take before the agent stops waiting for it.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);

fn scope_name(scope: SystemdScope) -> &'static str {
    match scope {
        SystemdScope::System => "system",
        SystemdScope::User => "user (session)",
    }
}

/// Opens a connection to the bus of `scope`'s manager, within [`CALL_TIMEOUT`].
async fn connect(scope: SystemdScope) -> Result<zbus::Connection, SystemdError> {
    let connect = async {
        match scope {
            SystemdScope::System => zbus::Connection::system().await,
            SystemdScope::User => zbus::Connection::session().await,
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, connect)
        .await
        .map_err(|_| SystemdError::Timeout(CALL_TIMEOUT))?
        .map_err(|source| SystemdError::Connect {
            scope: scope_name(scope),
            source,
        })
}

/// The systemd manager on one bus, with a connection opened on first use and reopened after a failure.
#[derive(Debug)]
pub struct Systemd {
    scope: SystemdScope,
    conn: Mutex<Option<zbus::Connection>>,
    paths: Mutex<HashMap<String, OwnedObjectPath>>,
    cpu: std::sync::Mutex<HashMap<String, CpuBaseline>>,
}

/// A unit's CPU time at a reading at least [`CPU_WINDOW`] old, and the rate it gave.
#[derive(Debug, Clone, Copy)]
struct CpuBaseline {
    at: std::time::Instant,
    nsec: u64,
    percent: Option<f64>,
}

/// CPU rates are taken over at least this long, so two reads a moment apart (a signal, then a
/// poll) still give a meaningful figure.
const CPU_WINDOW: Duration = Duration::from_secs(1);

impl Systemd {
    pub fn new(scope: SystemdScope) -> Self {
        Self {
            scope,
            conn: Mutex::new(None),
            paths: Mutex::new(HashMap::new()),
            cpu: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The unit's CPU use since a baseline at least [`CPU_WINDOW`] old, in percent of one core.
    fn cpu_percent(&self, unit: &str, nsec: Option<u64>) -> Option<f64> {
        let mut cpu = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
        let Some(nsec) = nsec else {
            cpu.remove(unit);
            return None;
        };
        let now = std::time::Instant::now();
        let Some(base) = cpu.get(unit).copied() else {
            cpu.insert(
                unit.to_owned(),
                CpuBaseline {
                    at: now,
                    nsec,
                    percent: None,
                },
            );
            return None;
        };
        let window = now.duration_since(base.at);
        if window < CPU_WINDOW {
            return base.percent;
        }
        // A counter that went back (a new cgroup for a restarted unit) gives no figure this time.
        let percent = nsec
            .checked_sub(base.nsec)
            .map(|d| (d as f64 / window.as_nanos() as f64 * 1000.0).round() / 10.0);
        cpu.insert(
            unit.to_owned(),
            CpuBaseline {
                at: now,
                nsec,
                percent,
            },
        );
        percent
    }

    async fn connection(&self) -> Result<zbus::Connection, SystemdError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let conn = connect(self.scope).await?;
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
        let unit_props = props.get_all_unit(UNIT_IFACE).await?;
        let service_props = if unit.ends_with(".service") {
            props.get_all_service(SERVICE_IFACE).await?
        } else {
            ServiceIface::default()
        };
        let mut props = UnitProps::from_ifaces(unit_props, service_props);
        props.cpu_percent = self.cpu_percent(unit, props.cpu_usage_nsec);
        Ok(props)
    }

    /// Starts, stops or restarts `unit` (job mode "replace") and waits for the job to finish;
    /// returns systemd's job result (`done`, `failed`, ...).
    pub async fn act(
        &self,
        unit: &str,
        action: fleetdeck_proto::AppAction,
    ) -> Result<String, SystemdError> {
        use fleetdeck_proto::AppAction;
        use futures_util::StreamExt;

        let conn = self.connection().await?;
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        // JobRemoved reaches subscribed clients only. This connection may have subscribed for an
        // earlier action already, which systemd answers with AlreadySubscribed: fine.
        if let Err(e) = manager.subscribe().await {
            let already = matches!(&e, zbus::Error::MethodError(name, _, _) if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed");
            if !already {
                return Err(e.into());
            }
        }
        // Listen before asking, so a quick job's JobRemoved cannot be missed.
        let mut removed = manager.receive_job_removed().await?;
        let job = match action {
            AppAction::Start => manager.start_unit(unit, "replace").await,
            AppAction::Stop => manager.stop_unit(unit, "replace").await,
            AppAction::Restart | AppAction::Apply => manager.restart_unit(unit, "replace").await,
        };
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                self.reset().await;
                return Err(e.into());
            }
        };
        let wait = async {
            while let Some(signal) = removed.next().await {
                let args = signal.args()?;
                if args.job == job {
                    return Ok(args.result);
                }
            }
            Err(SystemdError::Call(zbus::Error::Failure(
                "the D-Bus connection closed".into(),
            )))
        };
        tokio::time::timeout(JOB_TIMEOUT, wait)
            .await
            .unwrap_or(Err(SystemdError::JobTimeout {
                action: action.as_str(),
                unit: unit.to_owned(),
                timeout: JOB_TIMEOUT,
            }))
    }

    /// The units whose names match `patterns` (globs, as systemctl takes them), loaded or with a
    /// unit file, with where they come from and their env files; templates (`name@.service`)
    /// are left out: only their instances run.
    pub async fn units_matching(
        &self,
        patterns: &[String],
    ) -> Result<Vec<FoundUnit>, SystemdError> {
        let result = tokio::time::timeout(CALL_TIMEOUT * 4, self.units_matching_inner(patterns))
            .await
            .unwrap_or(Err(SystemdError::Timeout(CALL_TIMEOUT * 4)));
        if result.is_err() {
            self.reset().await;
        }
        result
    }

    async fn units_matching_inner(
        &self,
        patterns: &[String],
    ) -> Result<Vec<FoundUnit>, SystemdError> {
        let conn = self.connection().await?;
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let mut names: std::collections::BTreeSet<String> = manager
            .list_units_by_patterns(&[], &patterns)
            .await?
            .into_iter()
            .map(|u| u.0)
            .collect();
        for (path, _state) in manager.list_unit_files_by_patterns(&[], &patterns).await? {
            if let Some(name) = std::path::Path::new(&path).file_name() {
                names.insert(name.to_string_lossy().into_owned());
            }
        }
        let mut found = Vec::new();
        for name in names {
            let template = name
                .split_once('@')
                .is_some_and(|(_, rest)| rest.starts_with('.'));
            if template {
                continue;
            }
            let path = self.unit_path(&conn, &name).await?;
            let props = UnitPropertiesProxy::builder(&conn)
                .path(path)?
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let origin = props.get_all_origin(UNIT_IFACE).await?;
            if origin.load_state.as_deref() != Some("loaded") {
                continue;
            }
            let env_files = if name.ends_with(".service") {
                props
                    .get_all_service_env(SERVICE_IFACE)
                    .await?
                    .environment_files
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(path, _optional)| path)
                    .collect()
            } else {
                Vec::new()
            };
            found.push(FoundUnit {
                name,
                origin,
                env_files,
            });
        }
        Ok(found)
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

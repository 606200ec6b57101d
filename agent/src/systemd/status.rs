//! From systemd's unit properties to Fleetdeck's one status.

use fleetdeck_proto::{AppState, Exit, SystemdDetail};

/// The properties of one unit that the agent reports (`Unit` and, for services, `Service`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitProps {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: Option<String>,
    pub n_restarts: Option<u32>,
    pub exec_main_code: Option<i32>,
    pub exec_main_status: Option<i32>,
    pub main_pid: Option<u32>,
    pub memory_current: Option<u64>,
    pub memory_limit: Option<u64>,
    pub cpu_usage_nsec: Option<u64>,
    /// Filled by [`super::Systemd::unit`] from the previous reading of the same unit.
    pub cpu_percent: Option<f64>,
    pub state_change_usec: Option<u64>,
    pub invocation_id: Option<String>,
}

/// The `org.freedesktop.systemd1.Unit` properties the agent reads, decoded straight from the
/// `GetAll` reply: the dozens of others are skipped without being built into values.
#[derive(Debug, Default, zbus::zvariant::DeserializeDict, zbus::zvariant::Type)]
#[zvariant(signature = "a{sv}", rename_all = "PascalCase")]
pub struct UnitIface {
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    pub state_change_timestamp: Option<u64>,
    #[zvariant(rename = "InvocationID")]
    pub invocation_id: Option<Vec<u8>>,
}

/// The `org.freedesktop.systemd1.Service` properties the agent reads (of some 270).
#[derive(Debug, Default, zbus::zvariant::DeserializeDict, zbus::zvariant::Type)]
#[zvariant(signature = "a{sv}", rename_all = "PascalCase")]
pub struct ServiceIface {
    pub result: Option<String>,
    #[zvariant(rename = "NRestarts")]
    pub n_restarts: Option<u32>,
    pub exec_main_code: Option<i32>,
    pub exec_main_status: Option<i32>,
    #[zvariant(rename = "MainPID")]
    pub main_pid: Option<u32>,
    pub memory_current: Option<u64>,
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    #[zvariant(rename = "CPUUsageNSec")]
    pub cpu_usage_nsec: Option<u64>,
}

impl UnitProps {
    pub fn from_ifaces(unit: UnitIface, service: ServiceIface) -> Self {
        Self {
            load_state: unit.load_state.unwrap_or_default(),
            active_state: unit.active_state.unwrap_or_default(),
            sub_state: unit.sub_state.unwrap_or_default(),
            result: service.result,
            n_restarts: service.n_restarts,
            exec_main_code: service.exec_main_code,
            exec_main_status: service.exec_main_status,
            main_pid: service.main_pid.filter(|&p| p != 0),
            // systemd says "unknown" with u64::MAX (no memory accounting, or not running).
            memory_current: service.memory_current.filter(|&m| m != u64::MAX),
            // "infinity" is u64::MAX.
            memory_limit: service
                .memory_max
                .filter(|&m| m != u64::MAX)
                .or(service.memory_high.filter(|&m| m != u64::MAX)),
            cpu_usage_nsec: service.cpu_usage_nsec.filter(|&n| n != u64::MAX),
            cpu_percent: None,
            state_change_usec: unit.state_change_timestamp.filter(|&t| t != 0),
            invocation_id: unit
                .invocation_id
                .filter(|id| !id.is_empty())
                .map(|id| id.iter().map(|b| format!("{b:02x}")).collect()),
        }
    }

    /// How the main process last ended, from `ExecMainCode` (`CLD_EXITED` = 1, `CLD_KILLED` = 2,
    /// `CLD_DUMPED` = 3) and `ExecMainStatus`.
    pub fn last_exit(&self) -> Option<Exit> {
        match (self.exec_main_code?, self.exec_main_status?) {
            (1, status) => Some(Exit::Code(status)),
            (2 | 3, signal) => Some(Exit::Signal(signal)),
            _ => None,
        }
    }

    pub fn detail(&self) -> SystemdDetail {
        SystemdDetail {
            load_state: self.load_state.clone(),
            active_state: self.active_state.clone(),
            sub_state: self.sub_state.clone(),
            result: self.result.clone(),
            n_restarts: self.n_restarts,
            exec_main_code: self.exec_main_code,
            exec_main_status: self.exec_main_status,
            main_pid: self.main_pid,
            memory_current_bytes: self.memory_current,
            memory_limit_bytes: self.memory_limit,
            cpu_percent: self.cpu_percent,
            state_change_unix_ms: self.state_change_usec.map(|us| us / 1000),
            invocation_id: self.invocation_id.clone(),
        }
    }
}

/// systemd's (LoadState, ActiveState, SubState) as one status. `activating/auto-restart` is a
/// service waiting `RestartSec` to come back after a failure: it is crash-looping, not starting.
pub fn app_state(load_state: &str, active_state: &str, sub_state: &str) -> AppState {
    match (load_state, active_state, sub_state) {
        ("not-found", "inactive", _) => AppState::NotFound,
        ("error" | "bad-setting", _, _) => AppState::Failed,
        (_, "active" | "reloading" | "refreshing", _) => AppState::Running,
        (_, "activating", "auto-restart") => AppState::CrashLooping,
        (_, "activating", _) => AppState::Starting,
        (_, "deactivating", _) => AppState::Stopping,
        (_, "inactive" | "maintenance", _) => AppState::Stopped,
        (_, "failed", _) => AppState::Failed,
        _ => AppState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_as_an_operator_reads_them() {
        let cases = [
            (("loaded", "active", "running"), AppState::Running),
            (("loaded", "active", "exited"), AppState::Running),
            (("loaded", "reloading", "reload"), AppState::Running),
            (("loaded", "activating", "start"), AppState::Starting),
            (("loaded", "activating", "start-pre"), AppState::Starting),
            (
                ("loaded", "activating", "auto-restart"),
                AppState::CrashLooping,
            ),
            (
                ("loaded", "deactivating", "stop-sigterm"),
                AppState::Stopping,
            ),
            (("loaded", "inactive", "dead"), AppState::Stopped),
            (("masked", "inactive", "dead"), AppState::Stopped),
            (("loaded", "failed", "failed"), AppState::Failed),
            (("not-found", "inactive", "dead"), AppState::NotFound),
            (("bad-setting", "inactive", "dead"), AppState::Failed),
            (("loaded", "weird", "x"), AppState::Unknown),
            (("", "", ""), AppState::Unknown),
        ];
        for ((l, a, s), want) in cases {
            assert_eq!(app_state(l, a, s), want, "{l}/{a}/{s}");
        }
    }

    #[test]
    fn properties_convert_with_systemd_sentinels() {
        let unit = UnitIface {
            load_state: Some("loaded".into()),
            active_state: Some("failed".into()),
            sub_state: Some("failed".into()),
            state_change_timestamp: Some(1_700_000_000_123_456),
            invocation_id: Some(vec![0xab, 0x01]),
        };
        let service = ServiceIface {
            result: Some("signal".into()),
            n_restarts: Some(3),
            exec_main_code: Some(2),
            exec_main_status: Some(9),
            main_pid: Some(0),
            memory_current: Some(u64::MAX),
            memory_max: Some(u64::MAX),
            memory_high: Some(512 << 20),
            cpu_usage_nsec: Some(u64::MAX),
        };
        let p = UnitProps::from_ifaces(unit, service);
        assert_eq!(p.active_state, "failed");
        assert_eq!(p.n_restarts, Some(3));
        assert_eq!(p.main_pid, None, "MainPID 0 means no process");
        assert_eq!(p.memory_current, None, "u64::MAX means unknown");
        assert_eq!(
            p.memory_limit,
            Some(512 << 20),
            "MemoryHigh when MemoryMax is infinity"
        );
        assert_eq!(p.cpu_usage_nsec, None, "u64::MAX means no CPU accounting");
        assert_eq!(p.invocation_id.as_deref(), Some("ab01"));
        assert_eq!(p.last_exit(), Some(Exit::Signal(9)));
        assert_eq!(p.detail().state_change_unix_ms, Some(1_700_000_000_123));
        let exited = UnitProps {
            exec_main_code: Some(1),
            exec_main_status: Some(3),
            ..p.clone()
        };
        assert_eq!(exited.last_exit(), Some(Exit::Code(3)));
        let never = UnitProps {
            exec_main_code: Some(0),
            exec_main_status: Some(0),
            ..p
        };
        assert_eq!(never.last_exit(), None);
    }
}

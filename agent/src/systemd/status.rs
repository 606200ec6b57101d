//! From systemd's unit properties to Fleetdeck's one status.

use std::collections::HashMap;

use fleetdeck_proto::{AppState, Exit, SystemdDetail};
use zbus::zvariant::OwnedValue;

/// The properties of one unit that the agent reports (`Unit` and, for services, `Service`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub state_change_usec: Option<u64>,
    pub invocation_id: Option<String>,
}

fn get<T: TryFrom<OwnedValue>>(map: &HashMap<String, OwnedValue>, key: &str) -> Option<T> {
    map.get(key)?.try_clone().ok()?.try_into().ok()
}

impl UnitProps {
    pub fn from_maps(
        unit: &HashMap<String, OwnedValue>,
        service: &HashMap<String, OwnedValue>,
    ) -> Self {
        let invocation_id: Option<Vec<u8>> = get(unit, "InvocationID");
        Self {
            load_state: get(unit, "LoadState").unwrap_or_default(),
            active_state: get(unit, "ActiveState").unwrap_or_default(),
            sub_state: get(unit, "SubState").unwrap_or_default(),
            result: get(service, "Result"),
            n_restarts: get(service, "NRestarts"),
            exec_main_code: get(service, "ExecMainCode"),
            exec_main_status: get(service, "ExecMainStatus"),
            main_pid: get::<u32>(service, "MainPID").filter(|&p| p != 0),
            // systemd says "unknown" with u64::MAX (no memory accounting, or not running).
            memory_current: get::<u64>(service, "MemoryCurrent").filter(|&m| m != u64::MAX),
            state_change_usec: get::<u64>(unit, "StateChangeTimestamp").filter(|&t| t != 0),
            invocation_id: invocation_id
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
    use zbus::zvariant::Value;

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

    fn owned(v: Value<'_>) -> OwnedValue {
        v.try_to_owned().expect("plain value")
    }

    #[test]
    fn properties_convert_with_systemd_sentinels() {
        let unit: HashMap<String, OwnedValue> = [
            ("LoadState", owned(Value::from("loaded"))),
            ("ActiveState", owned(Value::from("failed"))),
            ("SubState", owned(Value::from("failed"))),
            (
                "StateChangeTimestamp",
                owned(Value::from(1_700_000_000_123_456u64)),
            ),
            ("InvocationID", owned(Value::from(vec![0xabu8, 0x01]))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let service: HashMap<String, OwnedValue> = [
            ("Result", owned(Value::from("signal"))),
            ("NRestarts", owned(Value::from(3u32))),
            ("ExecMainCode", owned(Value::from(2i32))),
            ("ExecMainStatus", owned(Value::from(9i32))),
            ("MainPID", owned(Value::from(0u32))),
            ("MemoryCurrent", owned(Value::from(u64::MAX))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let p = UnitProps::from_maps(&unit, &service);
        assert_eq!(p.active_state, "failed");
        assert_eq!(p.n_restarts, Some(3));
        assert_eq!(p.main_pid, None, "MainPID 0 means no process");
        assert_eq!(p.memory_current, None, "u64::MAX means unknown");
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

//! From the Docker API's container state to Fleetdeck's one status.

use bollard::models::ContainerInspectResponse;
use fleetdeck_proto::{AppState, DockerDetail, Exit};

/// What the agent knows of one container, free of bollard's types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerFacts {
    pub id: Option<String>,
    pub image: Option<String>,
    pub state: String,
    pub health: Option<String>,
    pub restart_count: Option<u64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// It was stopped on purpose (a `stop` event or the agent's own stop action), so a non-zero
    /// exit code is the stop signal's, not a crash.
    pub stopped_on_purpose: bool,
    pub started_unix_ms: Option<u64>,
    pub finished_unix_ms: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub net_rx_bytes_per_sec: Option<f64>,
    pub net_tx_bytes_per_sec: Option<f64>,
}

impl ContainerFacts {
    pub fn from_inspect(i: &ContainerInspectResponse) -> Self {
        let state = i.state.as_ref();
        Self {
            id: i.id.clone(),
            image: i
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .or_else(|| i.image.clone()),
            state: state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|h| h.to_string())
                .filter(|h| !h.is_empty() && h != "none"),
            restart_count: i.restart_count.and_then(|n| u64::try_from(n).ok()),
            exit_code: state.and_then(|s| s.exit_code),
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            started_unix_ms: state
                .and_then(|s| s.started_at.as_deref())
                .and_then(parse_docker_time),
            finished_unix_ms: state
                .and_then(|s| s.finished_at.as_deref())
                .and_then(parse_docker_time),
            cpu_percent: None,
            memory_bytes: None,
            // HostConfig.Memory: the limit also when the container is not running (0 = none).
            memory_limit_bytes: i
                .host_config
                .as_ref()
                .and_then(|h| h.memory)
                .and_then(|m| u64::try_from(m).ok())
                .filter(|&m| m > 0),
            net_rx_bytes_per_sec: None,
            net_tx_bytes_per_sec: None,
            stopped_on_purpose: false,
        }
    }

    pub fn app_state(&self) -> AppState {
        let state = app_state(
            &self.state,
            self.health.as_deref(),
            self.exit_code,
            self.oom_killed,
        );
        if state == AppState::Failed
            && self.stopped_on_purpose
            && self.state == "exited"
            && !self.oom_killed
        {
            return AppState::Stopped;
        }
        state
    }

    /// How the container's process ended, while it is not running (a running container's exit
    /// code is stale or zeroed by the engine). Docker reports a death by signal N as exit code
    /// 128 + N, which is what it is shown as here too.
    pub fn last_exit(&self) -> Option<Exit> {
        if self.finished_unix_ms.is_none() || matches!(self.state.as_str(), "running" | "paused") {
            return None;
        }
        let code = i32::try_from(self.exit_code?).ok()?;
        Some(Exit::Code(code))
    }

    /// When the container entered its current state.
    pub fn since_unix_ms(&self) -> Option<u64> {
        match self.state.as_str() {
            "running" | "paused" | "restarting" => self.started_unix_ms,
            "exited" | "dead" => self.finished_unix_ms,
            _ => None,
        }
    }

    pub fn detail(&self) -> DockerDetail {
        DockerDetail {
            id: self.id.clone(),
            image: self.image.clone(),
            state: self.state.clone(),
            health: self.health.clone(),
            restart_count: self.restart_count,
            exit_code: self.exit_code,
            oom_killed: self.oom_killed,
            started_unix_ms: self.started_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            cpu_percent: self.cpu_percent,
            memory_bytes: self.memory_bytes,
            memory_limit_bytes: self.memory_limit_bytes,
            net_rx_bytes_per_sec: self.net_rx_bytes_per_sec,
            net_tx_bytes_per_sec: self.net_tx_bytes_per_sec,
        }
    }
}

/// A container's state as one status. A container that fails its health check is `failed` (it
/// is up but not serving); one that exited non-zero or was OOM-killed is `failed`; a clean exit
/// (code 0, or death by SIGTERM, SIGINT, SIGHUP or SIGPIPE, as systemd counts it) is `stopped`.
pub fn app_state(
    state: &str,
    health: Option<&str>,
    exit_code: Option<i64>,
    oom_killed: bool,
) -> AppState {
    match state {
        "running" => match health {
            Some("starting") => AppState::Starting,
            Some("unhealthy") => AppState::Failed,
            _ => AppState::Running,
        },
        "restarting" => AppState::CrashLooping,
        "created" | "paused" => AppState::Stopped,
        "removing" | "stopping" => AppState::Stopping,
        // As systemd counts them for services: exit 0, or death by SIGHUP, SIGINT, SIGPIPE or
        // SIGTERM (128 + 1, 2, 13, 15), is a clean stop.
        "exited" if matches!(exit_code, Some(0 | 129 | 130 | 141 | 143)) && !oom_killed => {
            AppState::Stopped
        }
        "exited" | "dead" => AppState::Failed,
        _ => AppState::Unknown,
    }
}

/// Parses the API's RFC 3339 times (`2024-05-01T10:00:00.123456789Z`, or with a `+02:00` offset)
/// into Unix milliseconds; Docker's "never" (`0001-01-01T00:00:00Z`) is `None`.
pub fn parse_docker_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.starts_with("0001-01-01") {
        return None;
    }
    let (base, offset_secs) = split_offset(s)?;
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let ms = i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    u64::try_from(ms.checked_sub(offset_secs.checked_mul(1000)?)?).ok()
}

/// Splits `...Z` or `...+HH:MM` / `...-HH:MM` into the local part and its offset from UTC.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(base) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((base, 0));
    }
    let tpos = s.find('T')?;
    let pos = s[tpos..].rfind(['+', '-']).map(|p| p + tpos)?;
    let (base, off) = s.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let (h, m) = off[1..].split_once(':')?;
    // Checked: an absurd offset is no time, not an overflow (found by fuzzing).
    let secs = h
        .parse::<i64>()
        .ok()?
        .checked_mul(3600)?
        .checked_add(m.parse::<i64>().ok()?.checked_mul(60)?)?;
    Some((base, sign * secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_as_an_operator_reads_them() {
        let cases = [
            (("running", None, Some(0), false), AppState::Running),
            (
                ("running", Some("healthy"), Some(0), false),
                AppState::Running,
            ),
            (
                ("running", Some("starting"), None, false),
                AppState::Starting,
            ),
            (
                ("running", Some("unhealthy"), None, false),
                AppState::Failed,
            ),
            (("restarting", None, Some(1), false), AppState::CrashLooping),
            (("created", None, Some(0), false), AppState::Stopped),
            (("paused", None, Some(0), false), AppState::Stopped),
            (("exited", None, Some(0), false), AppState::Stopped),
            (("exited", None, Some(137), false), AppState::Failed),
            (("exited", None, Some(143), false), AppState::Stopped),
            (("exited", None, Some(130), false), AppState::Stopped),
            (("exited", None, Some(143), true), AppState::Failed),
            (("exited", None, Some(139), false), AppState::Failed),
            (("exited", None, Some(0), true), AppState::Failed),
            (("exited", None, Some(1), false), AppState::Failed),
            (("dead", None, None, false), AppState::Failed),
            (("removing", None, None, false), AppState::Stopping),
            (("", None, None, false), AppState::Unknown),
        ];
        for ((s, h, c, oom), want) in cases {
            assert_eq!(app_state(s, h, c, oom), want, "{s} {h:?} {c:?} {oom}");
        }
    }

    #[test]
    fn docker_times() {
        assert_eq!(parse_docker_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_docker_time(""), None);
        // Found by fuzzing (fuzz/, log_cursors): offsets too large for i64 arithmetic panicked.
        for absurd in [
            "2024-05-01T10:00:00+9999999999999999:00",
            "2024-05-01T10:00:00-00:9999999999999999999",
            "2024-05-01T10:00:00+3000000000000000:00",
        ] {
            assert_eq!(parse_docker_time(absurd), None, "{absurd}");
        }
        assert_eq!(
            parse_docker_time("2024-05-01T10:00:00Z"),
            Some(1_714_557_600_000)
        );
        assert_eq!(
            parse_docker_time("2024-05-01T10:00:00.123456789Z"),
            Some(1_714_557_600_123)
        );
        assert_eq!(
            parse_docker_time("2024-05-01T12:00:00.5+02:00"),
            Some(1_714_557_600_500)
        );
        assert_eq!(
            parse_docker_time("2024-05-01T05:30:00-04:30"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_docker_time("yesterday"), None);
    }

    #[test]
    fn exit_only_after_a_finish() {
        let f = ContainerFacts {
            state: "running".into(),
            exit_code: Some(0),
            ..Default::default()
        };
        assert_eq!(f.last_exit(), None);
        let f = ContainerFacts {
            state: "exited".into(),
            exit_code: Some(137),
            finished_unix_ms: Some(1),
            ..Default::default()
        };
        assert_eq!(f.last_exit(), Some(Exit::Code(137)));
        assert_eq!(f.since_unix_ms(), Some(1));
    }
}

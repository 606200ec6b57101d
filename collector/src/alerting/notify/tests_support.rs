//! Alerts of each kind for the formats' unit tests.

use std::time::UNIX_EPOCH;

use fleetdeck_proto::{CheckKind, CheckResult, CrashContext, Exit, Severity, ThresholdHit};

use crate::alerting::rules::{Alert, AlertKind, Aspect, Detail};

fn ms(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .expect("time")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

fn base(message: &str) -> Alert {
    Alert {
        kind: AlertKind::Problem,
        host: "vm-1".into(),
        app: Some("web".into()),
        state: "failed".into(),
        exit: None,
        message: message.into(),
        at_ms: ms("2026-12-04T00:00:00Z"),
        aspect: Aspect::State,
        severity: Severity::Critical,
        detail: Detail::default(),
        healthy: false,
    }
}

/// A crash killed by the OOM killer with `lines` log lines of about `len` bytes each, the last
/// one `line N: out of memory <boom>`.
pub fn crash_alert(lines: usize, len: usize) -> Alert {
    let mut alert = base("web on vm-1 failed (signal 9)");
    alert.exit = Some(Exit::Signal(9));
    let pad = "é".repeat(len.saturating_sub(30) / 2);
    alert.detail.context = Some(CrashContext {
        exit: Some(Exit::Signal(9)),
        oom_killed: true,
        memory_bytes: Some(33_030_144),
        memory_limit_bytes: Some(32 * 1024 * 1024),
        last_lines: (0..lines)
            .map(|i| format!("{pad}line {i}: out of memory <boom>"))
            .collect(),
        lines_error: None,
    });
    alert
}

pub fn threshold_alert() -> Alert {
    let mut alert = base("/var on db-1 is 93.2% full (rule disk-full: above 90% for 5 min)");
    alert.host = "db-1".into();
    alert.app = None;
    alert.state = "firing".into();
    alert.severity = Severity::Warning;
    alert.aspect = Aspect::Threshold {
        rule: "disk-full".into(),
        subject: Some("/var".into()),
    };
    alert.detail.threshold = Some(ThresholdHit {
        rule: "disk-full".into(),
        metric: "disk.used_percent".into(),
        subject: Some("/var".into()),
        value: 93.2,
        threshold: 90.0,
        direction: "above".into(),
        for_secs: 300,
    });
    alert
}

pub fn check_alert() -> Alert {
    let mut alert = base("check health of web on vm-1 fails");
    alert.severity = Severity::Warning;
    alert.aspect = Aspect::Check("health".into());
    alert.detail.check = Some(CheckResult {
        name: "health".into(),
        kind: CheckKind::Https,
        target: "https://web.local/healthz".into(),
        ok: false,
        consecutive_failures: 2,
        status_code: Some(500),
        latency_ms: Some(12.3),
        error: Some("answered 500".into()),
        cert_not_after_unix_ms: Some(ms("2026-12-09T00:00:00Z")),
        checked_unix_ms: ms("2026-12-04T00:00:00Z"),
    });
    alert
}

//! The generic JSON format: every field of the alert, for receivers that parse it themselves.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::Rendered;
use crate::alerting::rules::Alert;

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z); later times are clamped
/// so a wild timestamp cannot make formatting fail.
const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

/// `{"kind", "host", "app", "state", "exit", "message", "at", "at_unix_ms", "severity", "aspect",
/// "detail"}`: `aspect` is `{"aspect": "state" | "check" | "source" | "clock" | "threshold" |
/// "cert-expiring" | "cert-critical", "name": ...}`, `detail` is `{"context", "check", "threshold", "reason"}` (a crash's exit, OOM,
/// memory and last lines; the check's result; the threshold's value and level).
pub(super) fn render(alert: &Alert) -> Rendered {
    let body = json!({
        "kind": alert.kind,
        "host": alert.host,
        "app": alert.app,
        "state": alert.state,
        "exit": alert.exit,
        "message": alert.message,
        "at": rfc3339_millis(alert.at_ms),
        "at_unix_ms": alert.at_ms,
        "severity": alert.severity,
        "aspect": alert.aspect,
        "detail": alert.detail,
    });
    Rendered::json(&body)
}

/// `2024-05-01T12:00:00.000Z`.
pub(crate) fn rfc3339_millis(unix_ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(unix_ms.min(LAST_RFC3339_MS));
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notify::tests_support::{crash_alert, threshold_alert};

    #[test]
    fn fields_carry_severity_aspect_and_detail() {
        let body: serde_json::Value =
            serde_json::from_slice(&render(&crash_alert(3, 10)).body).expect("json");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["aspect"]["aspect"], "state");
        assert_eq!(body["detail"]["context"]["oom_killed"], true);
        assert_eq!(
            body["detail"]["context"]["last_lines"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        let body: serde_json::Value =
            serde_json::from_slice(&render(&threshold_alert()).body).expect("json");
        assert_eq!(body["aspect"]["aspect"], "threshold");
        assert_eq!(body["aspect"]["name"]["rule"], "disk-full");
        assert_eq!(body["detail"]["threshold"]["value"], 93.2);
        assert_eq!(body["severity"], "warning");
    }

    #[test]
    fn times_are_utc_with_millis_and_clamped() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_714_564_800_123),
            "2024-05-01T12:00:00.123Z"
        );
        assert_eq!(rfc3339_millis(u64::MAX), "9999-12-31T23:59:59.999Z");
    }
}

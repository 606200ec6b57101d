//! Discord webhooks: `{"content": ..., "username": "Fleetdeck"}`.

use serde_json::json;

use super::{text, Rendered};
use crate::alerting::rules::{Alert, AlertKind};

/// Discord refuses `content` over 2,000 characters; bytes are counted here, which is stricter.
const MAX_CONTENT: usize = 2_000;

pub(super) fn render(alert: &Alert) -> Rendered {
    let emoji = match alert.kind {
        AlertKind::Problem => "\u{1f534}",         // red circle
        AlertKind::Recovery => "\u{1f7e2}",        // green circle
        AlertKind::Flapping => "\u{26a0}\u{fe0f}", // warning sign
        AlertKind::FlapEnded => "\u{1f535}",       // blue circle
    };
    Rendered::json(&json!({
        "content": content(emoji, alert),
        "username": "Fleetdeck",
        // An alert never pings anyone, whatever a host or app name contains (`@everyone`).
        "allowed_mentions": { "parse": [] },
    }))
}

/// The message, the why lines, then the crash's last lines as a code block, within 2,000.
fn content(emoji: &str, alert: &Alert) -> String {
    let mut text = format!("{emoji} {}", alert.message);
    for line in text::why_lines(alert) {
        text.push('\n');
        text.push_str(&line);
    }
    let mut text = text::cut(&text, MAX_CONTENT / 2).to_owned();
    if let Some(block) = text::code_block(text::last_lines(alert), MAX_CONTENT - text.len() - 1) {
        text.push('\n');
        text.push_str(&block);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notify::tests_support::{check_alert, crash_alert};

    #[test]
    fn long_crash_lines_are_cut_to_discords_limit() {
        let text = content("x", &crash_alert(20, 500));
        assert!(text.len() <= MAX_CONTENT, "{}", text.len());
        assert!(
            text.contains("Exit: signal 9 (SIGKILL), killed by the kernel's OOM killer"),
            "{text}"
        );
        // The newest line is kept, the oldest dropped.
        assert!(text.contains("line 19: out of memory <boom>"), "{text}");
        assert!(!text.contains("line 0:"), "{text}");
        assert_eq!(text.matches("```").count(), 2, "{text}");
    }

    #[test]
    fn a_check_shows_its_error_and_certificate() {
        let text = content("x", &check_alert());
        assert!(text.contains("Check health (https://web.local/healthz): failing (2 in a row), HTTP 500, 12 ms, error: answered 500"), "{text}");
        assert!(
            text.contains("certificate expires on 2026-12-09 (5 days left)"),
            "{text}"
        );
    }
}

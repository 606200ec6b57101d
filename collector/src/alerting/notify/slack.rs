//! Slack incoming webhooks: `{"text": ...}` with an emoji saying what kind of alert it is.

use serde_json::json;

use super::{text, Rendered};
use crate::alerting::rules::{Alert, AlertKind};

/// Slack truncates a message's `text` past 40,000 characters and advises at most 4,000: the
/// whole text stays under this many bytes.
const MAX_TEXT: usize = 3_900;

pub(super) fn render(alert: &Alert) -> Rendered {
    let emoji = match alert.kind {
        AlertKind::Problem => ":red_circle:",
        AlertKind::Recovery => ":large_green_circle:",
        AlertKind::Flapping => ":warning:",
        AlertKind::FlapEnded => ":large_blue_circle:",
    };
    Rendered::json(&json!({ "text": body(emoji, alert) }))
}

/// The message, the why lines, then the crash's last lines as a code block.
fn body(emoji: &str, alert: &Alert) -> String {
    let mut text = format!("{emoji} {}", escape(&alert.message));
    for line in text::why_lines(alert) {
        text.push('\n');
        text.push_str(&escape(&line));
    }
    let mut text = text::cut(&text, MAX_TEXT / 2).to_owned();
    let lines: Vec<String> = text::last_lines(alert).iter().map(|l| escape(l)).collect();
    if let Some(block) = text::code_block(&lines, MAX_TEXT - text.len() - 1) {
        text.push('\n');
        text.push_str(&block);
    }
    text
}

/// Slack reads `<...>` as links and mentions (`<!channel>`), so the three control characters of
/// its markup are escaped, as its documentation asks: a host or app name cannot ping a channel.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notify::tests_support::{crash_alert, threshold_alert};

    #[test]
    fn a_crash_shows_exit_oom_memory_and_the_last_lines() {
        let text = body(":red_circle:", &crash_alert(20, 400));
        assert!(
            text.starts_with(":red_circle: web on vm-1 failed"),
            "{text}"
        );
        assert!(
            text.contains("Exit: signal 9 (SIGKILL), killed by the kernel's OOM killer"),
            "{text}"
        );
        assert!(
            text.contains("Memory: 31.5 MiB of its 32.0 MiB limit (98%)"),
            "{text}"
        );
        assert!(text.contains("```\n") && text.ends_with("\n```"), "{text}");
        assert!(
            text.contains("line 19: out of memory &lt;boom&gt;"),
            "{text}"
        );
        assert!(text.len() <= MAX_TEXT, "{}", text.len());
        assert_eq!(text.matches("```").count(), 2, "{text}");
    }

    #[test]
    fn a_threshold_shows_value_and_level() {
        let text = body(":red_circle:", &threshold_alert());
        assert!(text.contains("/var on db-1 is 93.2% full"), "{text}");
        assert!(
            text.contains(
                "disk.used_percent of /var: 93.2 (level: above 90 for 300 s; rule disk-full)"
            ),
            "{text}"
        );
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("a <!channel> & b>"),
            "a &lt;!channel&gt; &amp; b&gt;"
        );
    }
}

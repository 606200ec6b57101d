//! Slack incoming webhooks: `{"text": ...}` with an emoji saying what kind of alert it is.

use serde_json::json;

use super::Rendered;
use crate::alerting::rules::{Alert, AlertKind};

pub(super) fn render(alert: &Alert) -> Rendered {
    let emoji = match alert.kind {
        AlertKind::Problem => ":red_circle:",
        AlertKind::Recovery => ":large_green_circle:",
        AlertKind::Flapping => ":warning:",
        AlertKind::FlapEnded => ":large_blue_circle:",
    };
    Rendered::json(&json!({ "text": format!("{emoji} {}", escape(&alert.message)) }))
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

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("a <!channel> & b>"),
            "a &lt;!channel&gt; &amp; b&gt;"
        );
    }
}

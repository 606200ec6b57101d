//! Discord webhooks: `{"content": ..., "username": "Fleetdeck"}`.

use serde_json::json;

use super::Rendered;
use crate::alerting::rules::{Alert, AlertKind};

pub(super) fn render(alert: &Alert) -> Rendered {
    let emoji = match alert.kind {
        AlertKind::Problem => "\u{1f534}",         // red circle
        AlertKind::Recovery => "\u{1f7e2}",        // green circle
        AlertKind::Flapping => "\u{26a0}\u{fe0f}", // warning sign
        AlertKind::FlapEnded => "\u{1f535}",       // blue circle
    };
    Rendered::json(&json!({
        "content": format!("{emoji} {}", alert.message),
        "username": "Fleetdeck",
        // An alert never pings anyone, whatever a host or app name contains (`@everyone`).
        "allowed_mentions": { "parse": [] },
    }))
}

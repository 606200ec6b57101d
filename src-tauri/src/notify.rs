//! Native notifications (freedesktop, through notify-rust). The core crate decides which events
//! deserve one; this shows it and opens the app when it is clicked.

use fleetdeck_desktop_core::notice::Notice;
use notify_rust::{Notification, Timeout, Urgency};
use tauri::AppHandle;

use crate::window;

/// Shows the notice on its own thread: notify-rust blocks on D-Bus, and waiting for a click
/// holds the thread until the notification closes.
pub fn show(app: AppHandle, notice: Notice) {
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let mut n = Notification::new();
            n.appname("Fleetdeck")
                .summary(&notice.summary)
                .body(&notice.body)
                .action("default", "Open")
                .urgency(if notice.critical {
                    Urgency::Critical
                } else {
                    Urgency::Normal
                })
                .timeout(Timeout::Milliseconds(if notice.critical { 0 } else { 10_000 }));
            match n.show() {
                Ok(handle) => handle.wait_for_action(|action| {
                    if action == "default" {
                        if notice.target.host.is_empty() {
                            window::show(&app); // about a whole collector
                        } else {
                            window::open(&app, &notice.target);
                        }
                    }
                }),
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot show a notification; is a notification daemon running on the session bus?"
                ),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a notification thread");
    }
}

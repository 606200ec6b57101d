//! The main window: show, hide, and open an app in it.

use fleetdeck_proto::desktop::{AppRef, EVENT_OPEN_APP};
use tauri::{AppHandle, Emitter, Manager};

const MAIN: &str = "main";

pub fn show(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

pub fn toggle(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        if w.is_visible().unwrap_or(false) {
            let _ = w.hide();
        } else {
            show(app);
        }
    }
}

/// Shows the window on that app (or host).
pub fn open(app: &AppHandle, target: &AppRef) {
    show(app);
    if let Err(e) = app.emit(EVENT_OPEN_APP, target.clone()) {
        tracing::warn!(error = %e, "cannot reach the webview");
    }
}

//! The Fleetdeck desktop app. A skeleton window for now; the collector client, tray and
//! notifications arrive with the desktop issue.

/// Opens the main window.
pub fn run() {
    tauri::Builder::default()
        .run(tauri::generate_context!("../tauri.conf.json"))
        .expect("the desktop app failed to start; is a display available?");
}

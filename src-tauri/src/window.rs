//! The main window: create it (with WebKit tuned for a small footprint), show, hide, and open an
//! app in it.

use fleetdeck_proto::desktop::{AppRef, EVENT_OPEN_APP};
use tauri::{AppHandle, Emitter, Manager, WebviewWindowBuilder};
use tauri_plugin_window_state::{AppHandleExt, StateFlags};

const MAIN: &str = "main";

/// What of the window is kept between starts (tauri-plugin-window-state): size, position,
/// maximized and full screen; not whether it was visible (it always opens shown).
pub const KEPT: StateFlags = StateFlags::SIZE
    .union(StateFlags::POSITION)
    .union(StateFlags::MAXIMIZED)
    .union(StateFlags::FULLSCREEN);

/// Writes the window's size and position now: the plugin saves on exit only, and the window is
/// usually hidden to the tray rather than closed.
pub fn save_state(app: &AppHandle) {
    if let Err(e) = app.save_window_state(KEPT) {
        tracing::warn!(error = %e, "cannot save the window's size and position");
    }
}

/// How long the window must stay where it was moved or resized before that is written.
const SAVE_AFTER_CHANGE: std::time::Duration = std::time::Duration::from_secs(1);
/// Counts moves and resizes, so that only the last of a burst (a drag) is written.
static CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The window was moved or resized: writes its state once it has stayed so for
/// [`SAVE_AFTER_CHANGE`], so that an app ended without a clean exit (a session logging out, a
/// crash) still opens where the operator left it.
pub fn changed(app: &AppHandle) {
    use std::sync::atomic::Ordering;
    let this = CHANGES.fetch_add(1, Ordering::Relaxed) + 1;
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SAVE_AFTER_CHANGE).await;
        if CHANGES.load(Ordering::Relaxed) == this {
            save_state(&app);
        }
    });
}

/// Creates the main window from its entry in tauri.conf.json (which has `"create": false`, so
/// that WebKit's process-wide settings are made before its first web view exists).
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    #[cfg(target_os = "linux")]
    webkit::before_first_webview();
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == MAIN)
        .cloned()
        .ok_or_else(|| {
            tauri::Error::WindowNotFound // tauri.conf.json lost its "main" window
        })?;
    let window = WebviewWindowBuilder::from_config(app, &config)?.build()?;
    #[cfg(target_os = "linux")]
    window.with_webview(|webview| webkit::tune(&webview.inner()))?;
    #[cfg(not(target_os = "linux"))]
    let _ = window;
    Ok(())
}

/// WebKitGTK's knobs for a one-page app that loads everything from its own bundle: no back/forward
/// page cache, the smallest memory caches, and memory pressure handling that starts early.
#[cfg(target_os = "linux")]
mod webkit {
    use webkit2gtk::{
        CacheModel, MemoryPressureSettings, SettingsExt, WebContextExt, WebViewExt,
        WebsiteDataManager,
    };

    /// The network process's memory limit (MiB): it only serves the app's own bundle and IPC.
    const NETWORK_PROCESS_LIMIT_MIB: u32 = 64;

    pub fn before_first_webview() {
        let mut settings = MemoryPressureSettings::new();
        settings.set_memory_limit(NETWORK_PROCESS_LIMIT_MIB);
        settings.set_conservative_threshold(0.2);
        settings.set_strict_threshold(0.4);
        settings.set_poll_interval(5.0);
        WebsiteDataManager::set_memory_pressure_settings(&mut settings);
    }

    pub fn tune(view: &webkit2gtk::WebView) {
        if let Some(context) = view.context() {
            // The smallest in-memory caches: nothing is loaded twice from the network.
            context.set_cache_model(CacheModel::DocumentViewer);
        }
        if let Some(settings) = WebViewExt::settings(view) {
            settings.set_enable_page_cache(false);
        }
    }
}

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
            save_state(app);
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

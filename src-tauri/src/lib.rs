//! The Fleetdeck desktop app: a Tauri 2 shell over `fleetdeck-desktop-core`.
//!
//! Everything that decides something (collector client, event stream, notification and tray
//! state, settings, keys) lives in the core crate and is tested natively; this crate only adapts
//! it to Tauri: [`commands`] for the webview, [`hub`] turning watcher updates into webview events,
//! tray changes and notifications, [`tray`] and [`notify`] drawing them.

mod backend;
mod cli;
mod commands;
mod hub;
mod notify;
mod tray;
mod window;

use std::process::ExitCode;
use std::time::Instant;

use tauri::Manager;

use crate::backend::Backend;

/// Parses the command line, opens the window, and runs until Quit.
pub fn run() -> ExitCode {
    let started = Instant::now();
    // WebKitGTK's accelerated compositing costs the web process ~80 MiB (and renders blank windows
    // on some GPU drivers); a dashboard does not need it. FLEETDECK_WEBKIT_COMPOSITING=1 keeps it.
    // Set before any thread starts.
    if std::env::var_os("FLEETDECK_WEBKIT_COMPOSITING").is_none() {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    let args = cli::Args::parse_args();
    init_tracing();

    let backend = match Backend::load(started) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fleetdeck: {}", e.message);
            return ExitCode::from(2);
        }
    };
    if let Some(add) = args.add_collector() {
        let add = match add {
            Ok(add) => add,
            Err(message) => {
                eprintln!("fleetdeck: {message}");
                return ExitCode::from(2);
            }
        };
        let runtime = tauri::async_runtime::handle();
        if let Err(e) = runtime.block_on(backend.add_collector(add, true)) {
            eprintln!("fleetdeck: cannot add the collector: {}", e.message);
            return ExitCode::from(2);
        }
        if args.add_only {
            return ExitCode::SUCCESS;
        }
    }
    if args.check_collectors {
        return check_collectors(&backend);
    }

    let (updates_tx, updates_rx) = tokio::sync::mpsc::unbounded_channel();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_autostart::Builder::new().build())
        .plugin(
            tauri_plugin_window_state::Builder::new()
                .with_state_flags(window::KEPT)
                .build(),
        )
        .invoke_handler(commands::handler())
        .setup(move |app| {
            let handle = app.handle().clone();
            if let Err(e) = window::create(&handle) {
                // Tauri would panic on this error; say what is missing, in the log file too.
                window_failed(&e);
                std::process::exit(1);
            }
            tray::create(&handle)?;
            {
                let _guard = tauri::async_runtime::handle().inner().enter();
                backend.start_watchers(updates_tx);
            }
            app.manage(backend);
            let notifications = notify::Notifications::start(handle.clone())?;
            hub::spawn(handle, notifications, updates_rx);
            Ok(())
        })
        .on_page_load(|webview, payload| {
            // A reloaded page has lost its log views: stop their follows.
            if payload.event() == tauri::webview::PageLoadEvent::Started {
                if let Some(backend) = webview.try_state::<Backend>() {
                    backend.stop_follows();
                }
            }
        })
        .on_window_event(|window, event| {
            match event {
                // Closing the window keeps the app in the tray; Quit is in the tray's menu.
                tauri::WindowEvent::CloseRequested { api, .. } => {
                    api.prevent_close();
                    window::save_state(window.app_handle());
                    if let Err(e) = window.hide() {
                        tracing::warn!(error = %e, "cannot hide the window");
                    }
                }
                tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_) => {
                    window::changed(window.app_handle());
                }
                _ => {}
            }
        })
        .run(tauri::generate_context!("../tauri.conf.json"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            window_failed(&e);
            ExitCode::FAILURE
        }
    }
}

/// Says why the window could not open and what it needs, on stderr and in the log file (a
/// Windows app started from its icon has no console).
fn window_failed(e: &dyn std::fmt::Display) {
    tracing::error!(error = %e, hint = WINDOW_HINT, "the window could not open");
    eprintln!("fleetdeck: the window could not open: {e}. {WINDOW_HINT}");
}

/// What the window needs from the OS, for when it cannot open.
#[cfg(target_os = "windows")]
const WINDOW_HINT: &str = "Fleetdeck shows its window through the Microsoft Edge WebView2 \
                           Runtime, which Windows 10 and 11 ship: install it from \
                           https://developer.microsoft.com/microsoft-edge/webview2 if it was removed.";
#[cfg(target_os = "macos")]
const WINDOW_HINT: &str = "Is Fleetdeck running in a logged-in macOS session?";
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
const WINDOW_HINT: &str = "Is a graphical session (DISPLAY or WAYLAND_DISPLAY) available?";

/// `--check-collectors`: a line per saved collector on stdout (never its key), 0 when all answered.
fn check_collectors(backend: &Backend) -> ExitCode {
    let checked = tauri::async_runtime::handle().block_on(backend.check_collectors());
    if checked.is_empty() {
        eprintln!("fleetdeck: no collector is saved: add one with --add-collector NAME --url URL --key-stdin, or in the app's Settings");
        return ExitCode::FAILURE;
    }
    let mut all_answered = true;
    for (info, fleet) in checked {
        match fleet {
            Ok(fleet) => {
                let s = &fleet.summary;
                println!(
                    "{}: {}: the key in the OS keyring is accepted; {} hosts ({} up), {} apps ({} running)",
                    info.name, info.url, s.hosts, s.hosts_up, s.apps, s.apps_running
                );
            }
            Err(e) => {
                all_answered = false;
                println!("{}: {}: {}", info.name, info.url, e.message);
            }
        }
    }
    if all_answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where the app's log files go: `$XDG_STATE_HOME/fleetdeck` (by default `~/.local/state`) on
/// Linux, the local application data directory elsewhere.
fn log_dir() -> Option<std::path::PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("fleetdeck"))
}

/// Logs to stderr and to a daily file in [`log_dir`] (seven kept). A log directory that cannot be
/// made leaves stderr only, and says so there.
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let mut file_error = None;
    let file = log_dir().and_then(|dir| {
        let appender = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                tracing_appender::rolling::Builder::new()
                    .rotation(tracing_appender::rolling::Rotation::DAILY)
                    .filename_prefix("fleetdeck")
                    .filename_suffix("log")
                    .max_log_files(7)
                    .build(&dir)
                    .map_err(|e| e.to_string())
            });
        match appender {
            Ok(appender) => Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(appender)
                    .with_filter(filter()),
            ),
            Err(e) => {
                file_error = Some(format!("{}: {e}", dir.display()));
                None
            }
        }
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    // A panic reaches the log file too: on Windows, stderr is nowhere to be seen.
    let print_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "fleetdeck panicked");
        print_panic(info);
    }));
    match (file_error, log_dir()) {
        (Some(e), _) => tracing::warn!(error = %e, "the log goes to stderr only"),
        (None, Some(dir)) => tracing::debug!(dir = %dir.display(), "logging to files"),
        (None, None) => tracing::warn!("no state directory: the log goes to stderr only"),
    }
}

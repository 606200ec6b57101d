//! Turns the watchers' updates into what the operator sees: webview events, the tray, and
//! notifications.

use fleetdeck_desktop_core::watch::{WatchKind, WatchUpdate};
use fleetdeck_proto::desktop::{
    CollectorInfo, FleetEventFrom, FleetUpdate, EVENT_COLLECTOR, EVENT_FLEET, EVENT_FLEET_EVENT,
    EVENT_TRAY,
};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::backend::Backend;
use crate::notify::Notifications;
use crate::tray;

/// How often notices that waited (a collector failing past its grace, a problem past the
/// collector's grace, a flapping app settled) are looked for: the most they come late.
const OUTAGE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

pub fn spawn(
    app: AppHandle,
    notifications: Notifications,
    mut updates: UnboundedReceiver<WatchUpdate>,
) {
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(OUTAGE_CHECK);
        loop {
            tokio::select! {
                update = updates.recv() => {
                    let Some(update) = update else { break };
                    let backend = app.state::<Backend>();
                    handle(&app, &backend, &notifications, update);
                }
                _ = tick.tick() => {
                    let backend = app.state::<Backend>();
                    let reasons = backend.failing_reasons();
                    let due = backend
                        .notifier
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .due(crate::backend::now_ms(), &reasons);
                    for notice in due {
                        notifications.show(notice);
                    }
                }
            }
        }
    });
}

fn emit<S: serde::Serialize + Clone>(app: &AppHandle, event: &str, payload: S) {
    if let Err(e) = app.emit(event, payload) {
        tracing::warn!(event, error = %e, "cannot reach the webview");
    }
}

fn handle(app: &AppHandle, backend: &Backend, notifications: &Notifications, update: WatchUpdate) {
    let collector = update.collector;
    match update.kind {
        WatchKind::Fleet(fleet) => {
            if let Some(policy) = fleet.alert_policy {
                backend
                    .notifier
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_policy(&collector, policy);
            }
            if backend.set_fleet(&collector, fleet.clone()) {
                emit(app, EVENT_FLEET, FleetUpdate { collector, fleet });
                refresh_tray(app, backend);
            }
        }
        WatchKind::Status(status) => {
            // A late update of a collector removed meanwhile changes nothing.
            if let Some(info) = backend.set_status(&collector, status.clone()) {
                let notice = backend
                    .notifier
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .on_status(&collector, &status);
                if let Some(notice) = notice {
                    notifications.show(notice);
                }
                emit(app, EVENT_COLLECTOR, info);
                refresh_tray(app, backend);
            }
        }
        WatchKind::Alerts(alerts) => {
            if backend.set_alerts(&collector, alerts) {
                refresh_tray(app, backend);
            }
        }
        WatchKind::Silences(silences) => {
            if backend.has(&collector) {
                backend
                    .notifier
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_silences(&collector, silences);
            }
        }
        WatchKind::Event(event) => {
            if !backend.has(&collector) {
                return;
            }
            let notice = backend
                .notifier
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on_event(&collector, &event);
            if let Some(notice) = notice {
                notifications.show(notice);
            }
            emit(
                app,
                EVENT_FLEET_EVENT,
                FleetEventFrom {
                    collector,
                    event: *event,
                },
            );
        }
    }
}

/// Redraws the tray when its state changed, and tells the webview.
pub fn refresh_tray(app: &AppHandle, backend: &Backend) {
    let (state, changed) = backend.tray_update();
    if changed {
        tray::apply(app, &state);
        emit(app, EVENT_TRAY, state);
    }
}

/// A collector was added: tell the webview and redraw the tray.
pub fn collectors_changed(app: &AppHandle, backend: &Backend, info: &CollectorInfo) {
    emit(app, EVENT_COLLECTOR, info.clone());
    refresh_tray(app, backend);
}

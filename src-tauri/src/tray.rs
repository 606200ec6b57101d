//! The tray icon: its colour is the fleet's health, its menu lists what is down (a click opens
//! it), then Show/Hide and Quit. What to show is decided by the core crate's `tray_state`.

use std::sync::Mutex;

use fleetdeck_proto::desktop::{AppRef, DownItem, TrayHealth, TrayState};
use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};

use crate::window;

const TRAY_ID: &str = "fleet";
const OPEN_PREFIX: &str = "open\u{1f}";
const SIZE: u32 = 32;

/// What the tray shows now. The menu is rebuilt only when the list of what is down changes (a
/// rebuilt menu closes one the operator has open); the summary line is updated in place.
struct Shown {
    health: TrayHealth,
    down: Vec<DownItem>,
    alerts: Vec<DownItem>,
    summary: MenuItem<Wry>,
}

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let initial = TrayState {
        health: TrayHealth::Disconnected,
        tooltip: "Fleetdeck: connecting".into(),
        down: Vec::new(),
        alerts: Vec::new(),
    };
    let (menu, summary) = menu(app, &initial)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(initial.health))
        .tooltip(&initial.tooltip)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu)
        .build(app)?;
    app.manage(Mutex::new(Shown {
        health: initial.health,
        down: initial.down,
        alerts: initial.alerts,
        summary,
    }));
    Ok(())
}

pub fn apply(app: &AppHandle, state: &TrayState) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let shown = app.state::<Mutex<Shown>>();
    let mut shown = shown.lock().unwrap_or_else(|p| p.into_inner());
    let result = (|| -> tauri::Result<()> {
        if shown.health != state.health {
            tray.set_icon(Some(icon(state.health)))?;
            shown.health = state.health;
        }
        tray.set_tooltip(Some(&state.tooltip))?;
        if shown.down == state.down && shown.alerts == state.alerts {
            shown.summary.set_text(&state.tooltip)?;
        } else {
            let (menu, summary) = menu(app, state)?;
            tray.set_menu(Some(menu))?;
            shown.down = state.down.clone();
            shown.alerts = state.alerts.clone();
            shown.summary = summary;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot update the tray");
    }
}

fn menu(app: &AppHandle, state: &TrayState) -> tauri::Result<(Menu<Wry>, MenuItem<Wry>)> {
    let menu = Menu::new(app)?;
    let summary = MenuItem::with_id(app, "summary", &state.tooltip, false, None::<&str>)?;
    menu.append(&summary)?;
    if !state.down.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        for item in &state.down {
            let id = encode(&item.target);
            menu.append(&MenuItem::with_id(
                app,
                id,
                &item.label,
                true,
                None::<&str>,
            )?)?;
        }
    }
    if !state.alerts.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        menu.append(&MenuItem::with_id(
            app,
            "alerts-head",
            "Open alerts, not acknowledged:",
            false,
            None::<&str>,
        )?)?;
        for (i, item) in state.alerts.iter().enumerate() {
            // Distinct ids: an app may be both down and in an alert, or in two alerts.
            let id = format!("{}\u{1f}{i}", encode(&item.target));
            menu.append(&MenuItem::with_id(
                app,
                id,
                &item.label,
                true,
                None::<&str>,
            )?)?;
        }
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        "toggle",
        "Show/Hide",
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?)?;
    Ok((menu, summary))
}

fn on_menu(app: &AppHandle, event: MenuEvent) {
    match event.id.as_ref() {
        "quit" => app.exit(0),
        "toggle" => window::toggle(app),
        id => {
            if let Some(target) = decode(id) {
                window::open(app, &target);
            }
        }
    }
}

/// A menu id carrying the app to open (unit separators cannot occur in names).
fn encode(target: &AppRef) -> String {
    format!(
        "{OPEN_PREFIX}{}\u{1f}{}\u{1f}{}",
        target.collector,
        target.host,
        target.app.as_deref().unwrap_or("")
    )
}

fn decode(id: &str) -> Option<AppRef> {
    let mut parts = id.strip_prefix(OPEN_PREFIX)?.split('\u{1f}');
    let collector = parts.next()?.to_owned();
    let host = parts.next()?.to_owned();
    let app = parts.next().filter(|a| !a.is_empty()).map(str::to_owned);
    Some(AppRef {
        collector,
        host,
        app,
    })
}

/// A filled circle in the health's colour, with a darker rim, on transparency.
fn icon(health: TrayHealth) -> Image<'static> {
    let (r, g, b) = match health {
        TrayHealth::Ok => (0x2e, 0xa0, 0x43),
        TrayHealth::Degraded => (0xe3, 0x9b, 0x12),
        TrayHealth::Down => (0xd1, 0x24, 0x2f),
        TrayHealth::Disconnected => (0x8b, 0x94, 0x9e),
    };
    let mut rgba = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    let c = (SIZE as f32 - 1.0) / 2.0;
    for y in 0..SIZE {
        for x in 0..SIZE {
            let d = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
            let (pr, pg, pb, a) = if d <= c - 3.0 {
                (r, g, b, 255)
            } else if d <= c {
                (r / 2, g / 2, b / 2, 255)
            } else {
                (0, 0, 0, 0)
            };
            rgba.extend_from_slice(&[pr, pg, pb, a]);
        }
    }
    Image::new_owned(rgba, SIZE, SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_ids_round_trip() {
        let target = AppRef {
            collector: "prod eu".into(),
            host: "web-1".into(),
            app: Some("api".into()),
        };
        assert_eq!(decode(&encode(&target)), Some(target));
        let host_only = AppRef {
            collector: "c".into(),
            host: "db".into(),
            app: None,
        };
        assert_eq!(decode(&encode(&host_only)), Some(host_only));
        assert_eq!(decode("quit"), None);
    }

    #[test]
    fn icons_differ_by_health() {
        let centre = |h| {
            let i = icon(h);
            let px = ((SIZE / 2) * SIZE + SIZE / 2) as usize * 4;
            i.rgba()[px..px + 3].to_vec()
        };
        assert_ne!(centre(TrayHealth::Ok), centre(TrayHealth::Down));
        assert_ne!(
            centre(TrayHealth::Degraded),
            centre(TrayHealth::Disconnected)
        );
    }
}

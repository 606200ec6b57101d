//! The window: the top bar, banners and the current view; it subscribes to the backend's events
//! and keeps the selected collector's fleet fresh.

use std::cell::RefCell;
use std::rc::Rc;

use fleetdeck_proto::desktop::{
    AppRef, CollectorInfo, CommandError, ConnState, FleetEventFrom, FleetUpdate, SettingsChange,
    Theme, TrayState, EVENT_COLLECTOR, EVENT_FLEET, EVENT_FLEET_EVENT, EVENT_OPEN_APP, EVENT_TRAY,
};
use gloo_events::EventListener;
use gloo_timers::callback::{Interval, Timeout};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::palette::{Palette, ShortcutsHelp};
use crate::components::status::{conn_class, conn_text};
use crate::state::{Action, BannerKind, Route, UiState};
use crate::views::Reform;
use crate::views::{
    self, admin::AdminView, alerts::AlertsView, app::AppPage, events::EventsView, fleet::FleetView,
    host::HostPage, search::LogsView, settings::SettingsView, Dispatch, Store,
};

/// How often the shown fleet is read again, besides the live `fleet-updated` events.
const FLEET_REFRESH_MS: u32 = 15_000;

/// Reads a collector's fleet into the state; `what` names the failure for a banner, or `None`
/// for background refreshes (the connection pill already says when a collector fails).
pub fn refresh_fleet(dispatch: Dispatch, collector: String, report: bool) {
    spawn_local(async move {
        match api::fleet(&collector).await {
            Ok(fleet) => dispatch.dispatch(Action::FleetLoaded { collector, fleet }),
            Err(e) if report => {
                views::fail(&dispatch, format!("Loading the fleet of {collector}"), e)
            }
            Err(_) => {}
        }
    });
}

async fn subscribe(dispatch: Dispatch) -> Vec<api::Listener> {
    let mut listeners = Vec::new();
    let bad_payload = |dispatch: &Dispatch, event: &str, e: CommandError| {
        views::fail(dispatch, format!("Reading a {event} event"), e)
    };
    macro_rules! sub {
        ($name:expr, $ty:ty, $handle:expr) => {{
            let d = dispatch.clone();
            let handle = $handle;
            match api::listen::<$ty>($name, move |r| match r {
                Ok(payload) => handle(&d, payload),
                Err(e) => bad_payload(&d, $name, e),
            })
            .await
            {
                Ok(l) => listeners.push(l),
                Err(e) => views::fail(&dispatch, format!("Subscribing to {}", $name), e),
            }
        }};
    }
    sub!(EVENT_FLEET, FleetUpdate, |d: &Dispatch, u: FleetUpdate| {
        d.dispatch(Action::FleetLoaded {
            collector: u.collector,
            fleet: u.fleet,
        })
    });
    sub!(
        EVENT_FLEET_EVENT,
        FleetEventFrom,
        |d: &Dispatch, e: FleetEventFrom| {
            // An event means a status changed: read the fleet now rather than at the next update.
            refresh_fleet(d.clone(), e.collector.clone(), false);
            d.dispatch(Action::LiveEvent(e));
        }
    );
    sub!(
        EVENT_COLLECTOR,
        CollectorInfo,
        |d: &Dispatch, c: CollectorInfo| {
            d.dispatch(Action::CollectorStatus(c));
            // A collector may have been added elsewhere (`fleetdeck --add-collector`): the
            // backend's list is the truth, and statuses change rarely.
            let d = d.clone();
            spawn_local(async move {
                if let Ok(list) = api::list_collectors().await {
                    d.dispatch(Action::CollectorsLoaded(list));
                }
            });
        }
    );
    sub!(EVENT_OPEN_APP, AppRef, |d: &Dispatch, r: AppRef| {
        d.dispatch(Action::OpenApp(r))
    });
    sub!(EVENT_TRAY, TrayState, |d: &Dispatch, t: TrayState| {
        d.dispatch(Action::Tray(t))
    });
    listeners
}

#[function_component(Root)]
pub fn root() -> Html {
    let store = use_reducer(UiState::default);
    let listeners = use_mut_ref(Vec::<api::Listener>::new);

    {
        let dispatch = store.dispatcher();
        use_effect_with((), move |_| {
            spawn_local(async move {
                // Subscribe first, so nothing that happens while the lists load is missed.
                *listeners.borrow_mut() = subscribe(dispatch.clone()).await;
                match api::list_collectors().await {
                    Ok(list) => dispatch.dispatch(Action::CollectorsLoaded(list)),
                    Err(e) => {
                        views::fail(&dispatch, "Listing the collectors", e);
                        dispatch.dispatch(Action::CollectorsLoaded(Vec::new()));
                    }
                }
                match api::settings().await {
                    Ok(s) => dispatch.dispatch(Action::Settings(s)),
                    Err(e) => views::fail(&dispatch, "Reading the settings", e),
                }
                if let Ok(t) = api::tray_state().await {
                    dispatch.dispatch(Action::Tray(t));
                }
            });
        });
    }

    {
        // The selected collector's fleet: at once, then every FLEET_REFRESH_MS.
        let dispatch = store.dispatcher();
        let timer: Rc<RefCell<Option<Interval>>> = use_mut_ref(|| None);
        use_effect_with(store.selected.clone(), move |selected| {
            if let Some(collector) = selected.clone() {
                refresh_fleet(dispatch.clone(), collector.clone(), true);
                *timer.borrow_mut() = Some(Interval::new(FLEET_REFRESH_MS, move || {
                    refresh_fleet(dispatch.clone(), collector.clone(), false)
                }));
            }
            move || drop(timer.borrow_mut().take())
        });
    }

    {
        // The view is saved as it changes, once the saved one was opened (so the start's fleet
        // view does not overwrite it).
        let saved = store.view_restored.then(|| store.saved_view());
        use_effect_with(saved, move |saved| {
            if let Some(view) = saved.clone() {
                spawn_local(async move {
                    let change = SettingsChange {
                        last_view: Some(view),
                        ..Default::default()
                    };
                    // Losing the last view costs a click at the next start: not worth a banner.
                    if let Err(e) = api::update_settings(&change).await {
                        web_sys::console::warn_1(&e.message.into());
                    }
                });
            }
        });
    }
    use_theme(store.settings.theme);
    let dialog = use_state(|| Dialog::None);
    use_shortcuts(store.dispatcher(), dialog.clone());
    let close_dialog = {
        let dialog = dialog.clone();
        Callback::from(move |()| dialog.set(Dialog::None))
    };

    let view = match (&store.route, &store.selected, store.collectors_loaded) {
        (Route::Settings, ..) => html! { <SettingsView /> },
        (_, None, false) => html! { <div class="empty-state">{ "Loading…" }</div> },
        (_, None, true) => html! {
            <div class="empty-state">
                <p>{ "No collector is configured yet." }</p>
                <button class="btn primary" onclick={store.dispatcher().reform(|_| Action::Navigate(Route::Settings))}>
                    { "Add one in Settings" }
                </button>
            </div>
        },
        (Route::Fleet, Some(_), _) => html! { <FleetView /> },
        // Keyed by collector too: the same host and app names on another collector are another
        // app (an open .env editor must not be saved to the other one).
        (Route::Host(host), Some(collector), _) => {
            html! { <HostPage key={format!("{collector}\u{1f}{host}")} host={host.clone()} /> }
        }
        (Route::App(host, app), Some(collector), _) => html! {
            <AppPage key={format!("{collector}\u{1f}{host}\u{1f}{app}")} host={host.clone()} app={app.clone()} />
        },
        (Route::Logs, Some(_), _) => html! { <LogsView /> },
        (Route::Events, Some(_), _) => html! { <EventsView /> },
        (Route::Alerts, Some(_), _) => html! { <AlertsView /> },
        (Route::Admin, Some(_), _) => html! { <AdminView /> },
    };

    html! {
        <ContextProvider<Store> context={store.clone()}>
            <div class="shell">
                <TopBar />
                <Banners />
                <main class="content">{ view }</main>
            </div>
            { match *dialog {
                Dialog::None => html! {},
                Dialog::Palette => html! { <Palette on_close={close_dialog} /> },
                Dialog::Help => html! { <ShortcutsHelp on_close={close_dialog} /> },
            } }
        </ContextProvider<Store>>
    }
}

#[function_component(TopBar)]
fn top_bar() -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let nav = |id: &'static str, label: &'static str, route: Route| {
        let current = match (&store.route, &route) {
            (Route::Host(_) | Route::App(..), Route::Fleet) => true,
            (a, b) => a == b,
        };
        let onclick = dispatch.reform(move |_: MouseEvent| Action::Navigate(route.clone()));
        html! {
            <button {id} class={classes!("nav", current.then_some("current"))}
                aria-current={current.then_some("page")} {onclick}>{ label }</button>
        }
    };
    let on_select = dispatch.reform(|e: Event| Action::SelectCollector(views::input_value(&e)));
    let many = store.collectors.len() > 1;
    let pill = match store.selected_info() {
        Some(info) => {
            let tone = conn_class(info.status.state);
            let text = conn_text(info.status.state);
            let title = info
                .status
                .message
                .clone()
                .unwrap_or_else(|| format!("{}: {text}", info.url));
            html! {
                <span id="conn-status" class={classes!("pill", tone)} title={title} role="status">
                    <span class="dot" aria-hidden="true"></span>{ text }
                </span>
            }
        }
        None => html! {
            <span id="conn-status" class="pill off" role="status">
                <span class="dot" aria-hidden="true"></span>{ "no collector" }
            </span>
        },
    };
    html! {
        <header class="topbar">
            <div class="brand">{ "Fleetdeck" }</div>
            <nav class="navs" aria-label="Views">
                { nav("nav-fleet", "Fleet", Route::Fleet) }
                { nav("nav-logs", "Logs", Route::Logs) }
                { nav("nav-events", "Events", Route::Events) }
                { nav("nav-alerts", "Alerts", Route::Alerts) }
                { nav("nav-admin", "Admin", Route::Admin) }
                { nav("nav-settings", "Settings", Route::Settings) }
            </nav>
            <div class="spacer"></div>
            <label class={classes!("collector-pick", (!many).then_some("hidden"))}>
                <span class="sr-only">{ "Collector" }</span>
                <select id="collector-select" onchange={on_select} aria-label="Collector">
                    { for store.collectors.iter().map(|c| html! {
                        <option value={c.name.clone()} selected={store.selected.as_ref() == Some(&c.name)}>
                            { c.name.clone() }
                        </option>
                    }) }
                </select>
            </label>
            { pill }
        </header>
    }
}

/// Which of the window's own dialogs is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialog {
    None,
    Palette,
    Help,
}

/// Sets `data-theme` on the document (the style sheet's light or dark colours): the chosen one,
/// or the system's, followed as it changes.
#[hook]
fn use_theme(theme: Theme) {
    use_effect_with(theme, move |&theme| {
        let window = web_sys::window();
        let query = window
            .as_ref()
            .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten());
        let apply = {
            let query = query.clone();
            move || {
                let dark = match theme {
                    Theme::Dark => true,
                    Theme::Light => false,
                    Theme::System => query.as_ref().is_none_or(|q| q.matches()),
                };
                let root = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.document_element());
                if let Some(root) = root {
                    let _ = root.set_attribute("data-theme", if dark { "dark" } else { "light" });
                }
            }
        };
        apply();
        let listener = (theme == Theme::System)
            .then_some(query)
            .flatten()
            .map(|q| EventListener::new(&q, "change", move |_| apply()));
        move || drop(listener)
    });
}

/// The window's keyboard shortcuts (listed by the help dialog): Ctrl+K, ?, "g" then a view's
/// letter, and / for the log search. Plain keys are ignored while typing in a field.
#[hook]
fn use_shortcuts(dispatch: Dispatch, dialog: UseStateHandle<Dialog>) {
    let pending_g = use_mut_ref(|| false);
    // Made again when a dialog opens or closes, so it knows which is open.
    use_effect_with(*dialog, move |&open| {
        let document = web_sys::window().and_then(|w| w.document());
        let listener = document.map(|document| {
            EventListener::new(&document, "keydown", move |event| {
                use wasm_bindgen::JsCast;
                let Some(e) = event.dyn_ref::<web_sys::KeyboardEvent>() else {
                    return;
                };
                let key = e.key();
                if (e.ctrl_key() || e.meta_key()) && key.eq_ignore_ascii_case("k") {
                    e.prevent_default();
                    dialog.set(Dialog::Palette);
                    return;
                }
                let typing = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                    .is_some_and(|el| {
                        matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                    });
                if typing || e.ctrl_key() || e.meta_key() || e.alt_key() || open != Dialog::None {
                    return;
                }
                let after_g = std::mem::take(&mut *pending_g.borrow_mut());
                let route = match key.as_str() {
                    "?" => {
                        dialog.set(Dialog::Help);
                        return;
                    }
                    "/" => {
                        let search = web_sys::window()
                            .and_then(|w| w.document())
                            .and_then(|d| d.get_element_by_id("log-search"))
                            .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
                        if let Some(search) = search {
                            e.prevent_default();
                            let _ = search.focus();
                        }
                        return;
                    }
                    "g" if !after_g => {
                        *pending_g.borrow_mut() = true;
                        return;
                    }
                    "f" if after_g => Route::Fleet,
                    "l" if after_g => Route::Logs,
                    "e" if after_g => Route::Events,
                    "a" if after_g => Route::Alerts,
                    "s" if after_g => Route::Settings,
                    _ => return,
                };
                dispatch.dispatch(Action::Navigate(route));
            })
        });
        move || drop(listener)
    });
}

/// How long an information banner stays (errors stay until dismissed).
const INFO_BANNER_MS: u32 = 6_000;

#[function_component(Banners)]
fn banners() -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    {
        let info: Vec<u64> = store
            .banners
            .iter()
            .filter(|b| b.kind == BannerKind::Info)
            .map(|b| b.id)
            .collect();
        let dispatch = dispatch.clone();
        use_effect_with(info, move |ids| {
            let timers: Vec<Timeout> = ids
                .iter()
                .map(|&id| {
                    let dispatch = dispatch.clone();
                    Timeout::new(INFO_BANNER_MS, move || {
                        dispatch.dispatch(Action::Dismiss(id))
                    })
                })
                .collect();
            move || drop(timers)
        });
    }
    let failing = store
        .selected_info()
        .filter(|c| c.status.state == ConnState::Failing)
        .map(|c| {
            let why = c
                .status
                .message
                .clone()
                .unwrap_or_else(|| "no answer".into());
            html! {
                <div class="banner error" role="alert">
                    <span>{ format!("Collector {} is failing: {why}", c.name) }</span>
                </div>
            }
        });
    html! {
        <div class="banners">
            { for failing }
            { for store.banners.iter().map(|b| {
                let id = b.id;
                let kind = match b.kind { BannerKind::Error => "error", BannerKind::Info => "info" };
                html! {
                    <div class={classes!("banner", kind)} role={if kind == "error" { "alert" } else { "status" }}>
                        <span>{ b.text.clone() }</span>
                        <button class="btn ghost small" aria-label="Dismiss"
                            onclick={dispatch.reform(move |_: MouseEvent| Action::Dismiss(id))}>{ "✕" }</button>
                    </div>
                }
            }) }
        </div>
    }
}

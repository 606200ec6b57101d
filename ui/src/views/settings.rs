//! Collectors (list, add with a key check, remove), do-not-disturb, start at login and the theme.

use fleetdeck_proto::desktop::{NewCollector, SettingsChange, Theme};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::confirm::ConfirmDialog;
use crate::components::status::{conn_class, conn_text, Badge};
use crate::state::Action;
use crate::views::{self, input_checked, input_value};

#[function_component(SettingsView)]
pub fn settings_view() -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let name = use_state(String::new);
    let url = use_state(String::new);
    let key = use_state(String::new);
    let adding = use_state(|| false);
    let add_error = use_state(|| None::<String>);
    let removing = use_state(|| None::<String>);
    let dnd_busy = use_state(|| false);

    let on_add = {
        let (name, url, key, adding, add_error, dispatch) = (
            name.clone(),
            url.clone(),
            key.clone(),
            adding.clone(),
            add_error.clone(),
            dispatch.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *adding {
                return;
            }
            let new = NewCollector {
                name: name.trim().to_owned(),
                url: url.trim().to_owned(),
                key: key.trim().to_owned(),
                // A pinned collector is added with `fleetdeck --add-collector ... --tls-fingerprint`.
                tls_fingerprint: None,
            };
            if new.name.is_empty() || new.url.is_empty() || new.key.is_empty() {
                add_error.set(Some(
                    "Fill in a name, the collector's URL and an API key.".into(),
                ));
                return;
            }
            adding.set(true);
            add_error.set(None);
            let (name, url, key, adding, add_error, dispatch) = (
                name.clone(),
                url.clone(),
                key.clone(),
                adding.clone(),
                add_error.clone(),
                dispatch.clone(),
            );
            spawn_local(async move {
                let result = api::add_collector(&new).await;
                adding.set(false);
                match result {
                    Ok(info) => {
                        // The key leaves the page at once: it lives in the OS keyring now.
                        name.set(String::new());
                        url.set(String::new());
                        key.set(String::new());
                        dispatch
                            .dispatch(Action::Notice(format!("Collector {} added.", info.name)));
                        dispatch.dispatch(Action::CollectorAdded(info));
                    }
                    Err(e) => add_error.set(Some(e.message)),
                }
            });
        })
    };

    let on_remove = {
        let (removing, dispatch) = (removing.clone(), dispatch.clone());
        Callback::from(move |_: ()| {
            let Some(target) = (*removing).clone() else {
                return;
            };
            removing.set(None);
            let dispatch = dispatch.clone();
            spawn_local(async move {
                match api::remove_collector(&target).await {
                    Ok(()) => dispatch.dispatch(Action::CollectorRemoved(target)),
                    Err(e) => views::fail(&dispatch, format!("Removing collector {target}"), e),
                }
            });
        })
    };

    let settings = store.settings.clone();
    // Theme and start at login: saved at once; a failure says why and shows what is really set.
    let change = {
        let dispatch = dispatch.clone();
        let settings = settings.clone();
        move |what: &'static str, change: SettingsChange| {
            let (dispatch, settings) = (dispatch.clone(), settings.clone());
            spawn_local(async move {
                match api::update_settings(&change).await {
                    Ok(s) => dispatch.dispatch(Action::Settings(s)),
                    Err(e) => {
                        views::fail(&dispatch, what, e);
                        dispatch.dispatch(Action::Settings(settings));
                    }
                }
            });
        }
    };
    let on_theme = {
        let change = change.clone();
        Callback::from(move |e: Event| {
            let theme = match input_value(&e).as_str() {
                "light" => Theme::Light,
                "dark" => Theme::Dark,
                _ => Theme::System,
            };
            change(
                "Changing the theme",
                SettingsChange {
                    theme: Some(theme),
                    ..Default::default()
                },
            )
        })
    };
    let on_autostart = Callback::from(move |e: Event| {
        change(
            "Changing start at login",
            SettingsChange {
                autostart: Some(input_checked(&e)),
                ..Default::default()
            },
        )
    });

    let on_dnd = {
        let (dispatch, dnd_busy) = (dispatch.clone(), dnd_busy.clone());
        let settings = settings.clone();
        Callback::from(move |e: Event| {
            let want = input_checked(&e);
            let settings = settings.clone();
            let (dispatch, dnd_busy) = (dispatch.clone(), dnd_busy.clone());
            dnd_busy.set(true);
            spawn_local(async move {
                match api::set_dnd(want).await {
                    Ok(settings) => dispatch.dispatch(Action::Settings(settings)),
                    Err(e) => {
                        views::fail(&dispatch, "Changing do-not-disturb", e);
                        // Re-render from the state so the switch shows what is really set.
                        dispatch.dispatch(Action::Settings(
                            fleetdeck_proto::desktop::DesktopSettings {
                                dnd: !want,
                                ..settings.clone()
                            },
                        ));
                    }
                }
                dnd_busy.set(false);
            });
        })
    };

    let field = |state: &UseStateHandle<String>| {
        let state = state.clone();
        Callback::from(move |e: InputEvent| state.set(input_value(&e)))
    };

    html! {
        <section id="settings-view" class="view narrow">
            <header class="view-head"><h1>{ "Settings" }</h1></header>
            if store.collectors_loaded && store.collectors.is_empty() {
                <p class="welcome">
                    { "Welcome to Fleetdeck. Connect it to your collector: give it a name, the collector's URL \
                       and an API key (from " }<code>{ "fleetdeck-collector keys create" }</code>{ ")." }
                </p>
            }
            <h2>{ "Collectors" }</h2>
            if store.collectors.is_empty() {
                <p class="muted">{ "No collector yet." }</p>
            } else {
                <table class="collectors">
                    <thead><tr><th>{ "Name" }</th><th>{ "URL" }</th><th>{ "Status" }</th><th><span class="sr-only">{ "Actions" }</span></th></tr></thead>
                    <tbody>
                    { for store.collectors.iter().map(|c| {
                        let name = c.name.clone();
                        let removing = removing.clone();
                        html! {
                            <tr class="collector-row" data-name={c.name.clone()}>
                                <td><b>{ c.name.clone() }</b></td>
                                <td class="url">
                                    { c.url.clone() }
                                    if let Some(w) = &c.warning {
                                        <div class="transport-warning" role="note">{ format!("⚠ {w}") }</div>
                                    }
                                </td>
                                <td><Badge tone={conn_class(c.status.state)} text={conn_text(c.status.state)}
                                    title={c.status.message.clone()} /></td>
                                <td>
                                    <button class="btn small danger-outline collector-remove"
                                        onclick={move |_| removing.set(Some(name.clone()))}>{ "Remove" }</button>
                                </td>
                            </tr>
                        }
                    }) }
                    </tbody>
                </table>
            }
            <h2>{ "Add a collector" }</h2>
            <form class="add-form" onsubmit={on_add} autocomplete="off" novalidate=true>
                <label for="add-name">{ "Name" }</label>
                <input id="add-name" type="text" placeholder="prod" value={(*name).clone()} oninput={field(&name)} />
                <label for="add-url">{ "URL" }</label>
                <input id="add-url" type="text" inputmode="url" spellcheck="false" placeholder="http://collector.tailnet:7080 (a standby's after a comma)" value={(*url).clone()} oninput={field(&url)} />
                <label for="add-key">{ "API key" }</label>
                <input id="add-key" type="password" placeholder="fdk_…" value={(*key).clone()} oninput={field(&key)} />
                <div class="form-actions">
                    <button id="add-submit" class="btn primary" type="submit" disabled={*adding}>
                        { if *adding { "Checking…" } else { "Add collector" } }
                    </button>
                    <span class="muted">{ "The key is checked against the collector, then kept in the OS keyring." }</span>
                </div>
                if let Some(e) = &*add_error {
                    <p id="add-error" class="error-text" role="alert">{ e.clone() }</p>
                }
            </form>
            <h2>{ "Notifications" }</h2>
            <label class="switch">
                <input id="dnd-toggle" type="checkbox" role="switch" checked={store.settings.dnd} disabled={*dnd_busy} onchange={on_dnd} />
                <span>{ "Do not disturb" }</span>
                <span class="muted">{ " — no desktop notifications while on (the tray still shows the fleet's health)." }</span>
            </label>
            <h2>{ "This computer" }</h2>
            <label class="switch">
                <input id="autostart-toggle" type="checkbox" role="switch" checked={settings.autostart} onchange={on_autostart} />
                <span>{ "Start Fleetdeck when I log in" }</span>
                <span class="muted">{ " — in the tray, with crash notifications from the start." }</span>
            </label>
            <label class="field-row">
                <span>{ "Theme" }</span>
                <select id="theme-select" onchange={on_theme} aria-label="Theme">
                    { for [(Theme::System, "system", "As the system"), (Theme::Light, "light", "Light"), (Theme::Dark, "dark", "Dark")]
                        .into_iter().map(|(t, value, label)| html! {
                            <option {value} selected={settings.theme == t}>{ label }</option>
                        }) }
                </select>
            </label>
            if let Some(target) = (*removing).clone() {
                <ConfirmDialog
                    title={format!("Remove collector {target}?")}
                    message="Its key is deleted from the keyring. You can add it again later with a key."
                    confirm_label="Remove"
                    danger=true
                    on_confirm={on_remove}
                    on_cancel={{ let r = removing.clone(); Callback::from(move |_| r.set(None)) }} />
            }
        </section>
    }
}

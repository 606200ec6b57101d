//! The collector's alerts (open first) with Acknowledge and Silence on each, and its silences
//! with who made them, when they end, and Remove.

use fleetdeck_proto::{AlertRecord, AlertState, Silence};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::silence::SilenceMenu;
use crate::components::status::{severity_class, Badge};
use crate::format;
use crate::views::{self, Dispatch};

#[derive(Debug, Clone, PartialEq, Default)]
struct Loaded {
    alerts: Vec<AlertRecord>,
    silences: Vec<Silence>,
}

fn load(dispatch: &Dispatch, collector: String, into: UseStateHandle<Loaded>) {
    let dispatch = dispatch.clone();
    spawn_local(async move {
        let alerts = api::alerts(&collector, None).await;
        let silences = api::silences(&collector).await;
        match (alerts, silences) {
            (Ok(page), Ok(silences)) => into.set(Loaded {
                alerts: page.alerts,
                silences,
            }),
            (Err(e), _) | (_, Err(e)) => {
                views::fail(&dispatch, format!("Loading the alerts of {collector}"), e)
            }
        }
    });
}

#[function_component(AlertsView)]
pub fn alerts_view() -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let collector = store.selected.clone().unwrap_or_default();
    let loaded = use_state(Loaded::default);
    let reload = {
        let (dispatch, collector, loaded) = (dispatch.clone(), collector.clone(), loaded.clone());
        Callback::from(move |()| load(&dispatch, collector.clone(), loaded.clone()))
    };
    {
        let reload = reload.clone();
        use_effect_with(collector.clone(), move |_| reload.emit(()));
    }
    // New events may open or resolve alerts: read again when the event log grows.
    {
        let reload = reload.clone();
        let newest = store.events.events.first().map(|e| e.id);
        use_effect_with(newest, move |_| reload.emit(()));
    }
    let now = views::now_ms();
    let offset = views::tz_offset_min();
    let ack = |id: i64| {
        let (dispatch, collector, reload) = (dispatch.clone(), collector.clone(), reload.clone());
        Callback::from(move |_: MouseEvent| {
            let (dispatch, collector, reload) =
                (dispatch.clone(), collector.clone(), reload.clone());
            spawn_local(async move {
                match api::alert_ack(&collector, id).await {
                    Ok(_) => reload.emit(()),
                    Err(e) => views::fail(&dispatch, format!("Acknowledging alert {id}"), e),
                }
            });
        })
    };
    let silence_menu = |a: &AlertRecord| {
        let reload = reload.clone();
        html! {
            <SilenceMenu collector={collector.clone()} host={a.host.clone()} app={a.app.clone().map(AttrValue::from)}
                class="alert-silence" small=true ondone={Callback::from(move |_| reload.emit(()))} />
        }
    };
    let remove = |id: i64| {
        let (dispatch, collector, reload) = (dispatch.clone(), collector.clone(), reload.clone());
        Callback::from(move |_: MouseEvent| {
            let (dispatch, collector, reload) =
                (dispatch.clone(), collector.clone(), reload.clone());
            spawn_local(async move {
                match api::silence_remove(&collector, id).await {
                    Ok(_) => reload.emit(()),
                    Err(e) => views::fail(&dispatch, format!("Removing silence {id}"), e),
                }
            });
        })
    };
    html! {
        <section id="alerts-view" class="view">
            <header class="view-head"><h1>{ "Alerts" }</h1>
                <span class="muted">{ "Open first. Acknowledging says you are on it: reminders and escalation stop." }</span>
            </header>
            <table class="alerts">
                <thead><tr><th>{ "Since" }</th><th>{ "Severity" }</th><th>{ "Host / app" }</th><th>{ "What" }</th><th>{ "State" }</th><th></th></tr></thead>
                <tbody>
                { for loaded.alerts.iter().map(|a| {
                    let state = match (a.state, a.silenced_by) {
                        (AlertState::Open, Some(_)) => "open, silenced".to_owned(),
                        (AlertState::Acknowledged, _) => format!("acknowledged by {}", a.acknowledged_by.clone().unwrap_or_default()),
                        (s, Some(_)) => format!("{}, silenced", s.as_str()),
                        (s, None) => s.as_str().to_owned(),
                    };
                    html! {
                        <tr class={classes!("alert-row", a.state.as_str())} data-id={a.id.to_string()}
                            data-state={a.state.as_str()} data-silenced={a.silenced_by.is_some().to_string()}>
                            <td class="nowrap" title={format::date_time(a.started_unix_ms, offset)}>{ format::ago(now, a.started_unix_ms) }</td>
                            <td><Badge tone={severity_class(a.severity)} text={a.severity.as_str()} /></td>
                            <td class="nowrap">{ a.host.clone() }{ a.app.as_ref().map(|x| format!(" / {x}")).unwrap_or_default() }</td>
                            <td>
                                { a.message.clone() }
                                if let Some(line) = a.context.as_ref().and_then(|c| c.last_line()) {
                                    <div class="event-last-line mono">{ line.to_owned() }</div>
                                }
                            </td>
                            <td class="alert-state">{ state }</td>
                            <td class="alert-actions">
                                if a.state == AlertState::Open {
                                    <button class="btn small alert-ack" onclick={ack(a.id)}>{ "Acknowledge" }</button>
                                }
                                if a.state != AlertState::Resolved {
                                    { silence_menu(a) }
                                }
                            </td>
                        </tr>
                    }
                }) }
                </tbody>
            </table>
            if loaded.alerts.is_empty() {
                <p class="muted">{ "No alerts." }</p>
            }
            <h2>{ "Silences" }</h2>
            <table class="silences">
                <thead><tr><th>{ "Hosts" }</th><th>{ "Apps" }</th><th>{ "Why" }</th><th>{ "By" }</th><th>{ "Ends" }</th><th></th></tr></thead>
                <tbody>
                { for loaded.silences.iter().map(|s| html! {
                    <tr class="silence-row" data-id={s.id.to_string()}>
                        <td class="mono">{ s.hosts.clone() }</td>
                        <td class="mono">{ s.apps.clone().unwrap_or_else(|| "all".to_owned()) }</td>
                        <td>{ s.reason.clone() }</td>
                        <td>{ s.created_by.clone() }</td>
                        <td class="nowrap">{ format::date_time(s.ends_unix_ms, offset) }</td>
                        <td><button class="btn small silence-remove" onclick={remove(s.id)}>{ "Remove" }</button></td>
                    </tr>
                }) }
                </tbody>
            </table>
            if loaded.silences.is_empty() {
                <p class="muted">{ "No silences in force." }</p>
            }
        </section>
    }
}

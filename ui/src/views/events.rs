//! The collector's event log: filters, paging back with "Older", and live events prepended.

use fleetdeck_proto::desktop::EventFilter;
use fleetdeck_proto::{FleetEventKind, Severity};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::status::{severity_class, Badge};
use crate::format;
use crate::state::{Action, Route};
use crate::views::event_detail::{event_detail, has_detail};
use crate::views::Reform;
use crate::views::{self, input_value, on_activate, Dispatch};

/// Events per page.
const PAGE: u32 = 100;

const SEVERITIES: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];
const KINDS: [FleetEventKind; 15] = [
    FleetEventKind::Transition,
    FleetEventKind::Restarted,
    FleetEventKind::HostDown,
    FleetEventKind::HostUp,
    FleetEventKind::CheckFailed,
    FleetEventKind::CheckPassed,
    FleetEventKind::SourceDown,
    FleetEventKind::SourceUp,
    FleetEventKind::ThresholdFired,
    FleetEventKind::ThresholdCleared,
    FleetEventKind::ClockSkew,
    FleetEventKind::ClockOk,
    FleetEventKind::CertExpiring,
    FleetEventKind::CertRenewed,
    FleetEventKind::AppUnwatched,
];

/// Reads a page of events (`before` = older than that id) under the state's filter.
fn load(dispatch: &Dispatch, collector: String, filter: EventFilter, before: Option<i64>) {
    dispatch.dispatch(Action::EventsRequested);
    let dispatch = dispatch.clone();
    spawn_local(async move {
        let query = EventFilter {
            before,
            limit: Some(PAGE),
            ..filter.clone()
        };
        match api::events(&collector, &query).await {
            Ok(page) => dispatch.dispatch(Action::EventsLoaded {
                collector,
                filter,
                page,
            }),
            Err(e) => {
                dispatch.dispatch(Action::EventsFailed);
                views::fail(&dispatch, format!("Loading the events of {collector}"), e);
            }
        }
    });
}

/// Sets new filters and reads their first page.
fn refilter(dispatch: &Dispatch, collector: &str, filter: EventFilter) {
    dispatch.dispatch(Action::EventsFilter(filter.clone()));
    load(dispatch, collector.to_owned(), filter, None);
}

fn non_empty(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

#[function_component(EventsView)]
pub fn events_view() -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let collector = store.selected.clone().unwrap_or_default();
    let filter = store.events.filter.clone();

    {
        // On opening (and when the collector changes): the first page under the kept filter.
        let (dispatch, filter) = (dispatch.clone(), filter.clone());
        use_effect_with(collector.clone(), move |collector| {
            refilter(&dispatch, collector, filter);
        });
    }

    let change = |f: fn(&mut EventFilter, String)| {
        let (dispatch, collector, filter) = (dispatch.clone(), collector.clone(), filter.clone());
        move |e: Event| {
            let mut next = filter.clone();
            f(&mut next, input_value(&e));
            refilter(&dispatch, &collector, next);
        }
    };
    let on_severity = Callback::from(change(|f, v| {
        f.severity = SEVERITIES.into_iter().find(|s| s.as_str() == v)
    }));
    let on_kind = Callback::from(change(|f, v| {
        f.kind = KINDS.into_iter().find(|k| k.as_str() == v)
    }));
    let on_host = Callback::from(change(|f, v| f.host = non_empty(v)));
    let on_app = Callback::from(change(|f, v| f.app = non_empty(v)));
    let on_more = {
        let (dispatch, collector, filter) = (dispatch.clone(), collector.clone(), filter.clone());
        let before = store.events.next_before;
        Callback::from(move |_: MouseEvent| {
            if before.is_some() {
                load(&dispatch, collector.clone(), filter.clone(), before);
            }
        })
    };

    let ev = &store.events;
    let open_ids = use_state(std::collections::BTreeSet::<i64>::new);
    let offset = views::tz_offset_min();
    let now = views::now_ms();
    html! {
        <section id="events-view" class="view">
            <header class="view-head"><h1>{ "Events" }</h1>
                <span class="muted">{ "Newest first; new events appear at the top as they happen." }</span>
            </header>
            <div class="filters" role="group" aria-label="Filters">
                <label>{ "Severity" }
                    <select id="ev-severity" onchange={on_severity}>
                        <option value="" selected={filter.severity.is_none()}>{ "Any" }</option>
                        { for SEVERITIES.into_iter().map(|s| html! {
                            <option value={s.as_str()} selected={filter.severity == Some(s)}>{ s.as_str() }</option>
                        }) }
                    </select>
                </label>
                <label>{ "Kind" }
                    <select id="ev-kind" onchange={on_kind}>
                        <option value="" selected={filter.kind.is_none()}>{ "Any" }</option>
                        { for KINDS.into_iter().map(|k| html! {
                            <option value={k.as_str()} selected={filter.kind == Some(k)}>{ k.as_str() }</option>
                        }) }
                    </select>
                </label>
                <label>{ "Host" }
                    <input id="ev-host" type="search" placeholder="exact host name" value={filter.host.clone().unwrap_or_default()} onchange={on_host} />
                </label>
                <label>{ "App" }
                    <input id="ev-app" type="search" placeholder="exact app name" value={filter.app.clone().unwrap_or_default()} onchange={on_app} />
                </label>
            </div>
            <table class="events">
                <thead><tr><th>{ "When" }</th><th>{ "Severity" }</th><th>{ "Kind" }</th><th>{ "Host / app" }</th><th>{ "What happened" }</th><th></th></tr></thead>
                <tbody>
                { for ev.events.iter().map(|e| {
                    let route = match &e.app {
                        Some(app) => Route::App(e.host.clone(), app.clone()),
                        None => Route::Host(e.host.clone()),
                    };
                    let open = dispatch.reform(move |_: ()| Action::Navigate(route.clone()));
                    let expanded = open_ids.contains(&e.id);
                    let toggle = {
                        let (open_ids, id) = (open_ids.clone(), e.id);
                        Callback::from(move |ev: MouseEvent| {
                            // The row itself opens the app: the button only unfolds.
                            ev.stop_propagation();
                            let mut next = (*open_ids).clone();
                            if !next.remove(&id) {
                                next.insert(id);
                            }
                            open_ids.set(next);
                        })
                    };
                    html! {
                        <>
                        <tr class="event-row" data-id={e.id.to_string()} tabindex="0"
                            onclick={open.reform(|_: MouseEvent| ())} onkeydown={on_activate(open)}>
                            <td class="nowrap" title={format::date_time(e.at_unix_ms, offset)}>{ format::ago(now, e.at_unix_ms) }</td>
                            <td><Badge tone={severity_class(e.severity)} text={e.severity.as_str()} /></td>
                            <td>{ e.kind.as_str() }</td>
                            <td class="nowrap">{ e.host.clone() }{ e.app.as_ref().map(|a| format!(" / {a}")).unwrap_or_default() }</td>
                            <td title={e.exit.map(|x| format::exit(Some(x))).unwrap_or_default()}>
                                { e.message.clone() }
                                if let Some(line) = e.context.as_ref().and_then(|c| c.last_line()) {
                                    <div class="event-last-line mono">{ line.to_owned() }</div>
                                }
                            </td>
                            <td class="nowrap">
                                if has_detail(e) {
                                    <button class="btn small event-more" aria-expanded={expanded.to_string()} onclick={toggle}>
                                        { if expanded { "Less" } else { "Details" } }
                                    </button>
                                }
                            </td>
                        </tr>
                        if expanded {
                            <tr class="event-detail" data-id={e.id.to_string()}>
                                <td colspan="6">{ event_detail(e, offset) }</td>
                            </tr>
                        }
                        </>
                    }
                }) }
                </tbody>
            </table>
            if ev.loaded && ev.events.is_empty() {
                <p class="empty-state">{ "No event matches." }</p>
            }
            <div class="more">
                <button id="events-more" class="btn" disabled={ev.next_before.is_none() || ev.loading} onclick={on_more}>
                    { if ev.loading { "Loading…" } else if ev.next_before.is_some() { "Older" } else { "No older events" } }
                </button>
            </div>
        </section>
    }
}

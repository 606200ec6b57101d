//! The fleet at a glance: counts on top, then one card per host with its apps, coloured by state.

use fleetdeck_proto::desktop::FirstPaint;
use fleetdeck_proto::{AppView, FleetSummary, HostStatus, HostView, Problem};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::status::{
    app_class, degraded_badge, host_status_class, severity_class, Badge,
};
use crate::format;
use crate::state::{Action, Route};
use crate::views::Reform;
use crate::views::{self, on_activate, Dispatch};

#[function_component(FleetView)]
pub fn fleet_view() -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let fleet = store.selected_fleet().cloned();
    let hosts = fleet.as_ref().map_or(0, |f| f.hosts.len());

    {
        // The start-up benchmark wants the moment a fleet with hosts was first on screen: effects
        // run after the render is committed to the DOM.
        let dispatch = dispatch.clone();
        let sent = store.first_paint_sent;
        use_effect_with(hosts, move |hosts| {
            if !sent && *hosts > 0 {
                dispatch.dispatch(Action::FirstPaintSent);
                let paint = FirstPaint {
                    hosts: u32::try_from(*hosts).unwrap_or(u32::MAX),
                };
                spawn_local(async move {
                    // Only the benchmark listens; a failure changes nothing for the operator.
                    let _ = api::first_paint(paint).await;
                });
            }
        });
    }

    let Some(fleet) = fleet else {
        return html! {
            <section id="fleet-view" class="view">
                <div class="empty-state">{ "Loading the fleet…" }</div>
            </section>
        };
    };
    let now = views::now_ms();
    html! {
        <section id="fleet-view" class="view">
            <Summary summary={fleet.summary.clone()} />
            { problems(&fleet.problems, now, &dispatch) }
            if fleet.hosts.is_empty() {
                <div class="empty-state">{ "This collector watches no host yet." }</div>
            }
            <div class="host-grid">
                { for fleet.hosts.iter().map(|h| host_card(h, now, &dispatch)) }
            </div>
        </section>
    }
}

#[derive(Properties, PartialEq, Debug)]
struct SummaryProps {
    summary: FleetSummary,
}

#[function_component(Summary)]
fn summary(props: &SummaryProps) -> Html {
    let s = &props.summary;
    let down = s.apps_down + s.hosts_down;
    // The collector counts a running app whose checks fail as degraded (not running).
    let degraded = s.apps_degraded;
    let tile =
        |id: &'static str, n: String, label: &'static str, tone: &'static str, title: String| {
            html! {
                <div class={classes!("tile", tone)} title={title}>
                    <span {id} class="tile-n">{ n }</span>
                    <span class="tile-label">{ label }</span>
                </div>
            }
        };
    let problems = s.problems_critical + s.problems_warning;
    html! {
        <div id="summary" class="summary" role="group" aria-label="Fleet summary">
            { tile("count-down", down.to_string(), "down",
                if down > 0 { "bad" } else { "ok" },
                format!("{} apps failed or crash-looping, {} hosts down", s.apps_down, s.hosts_down)) }
            { tile("count-degraded", degraded.to_string(), "degraded",
                if degraded > 0 { "warn" } else { "ok" },
                format!("{} apps starting, stopping, unknown, missing, or running with a failing check",
                    s.apps_degraded)) }
            { tile("count-running", format!("{}/{}", s.apps_running, s.apps), "apps running", "ok",
                format!("{} stopped on purpose", s.apps_stopped)) }
            { tile("count-hosts", format!("{}/{}", s.hosts_up, s.hosts), "hosts up",
                if s.hosts_down > 0 { "bad" } else { "ok" },
                format!("{} hosts down", s.hosts_down)) }
            { tile("count-problems", problems.to_string(), "problems",
                if s.problems_critical > 0 { "bad" } else if s.problems_warning > 0 { "warn" } else { "ok" },
                format!("{} critical, {} warnings", s.problems_critical, s.problems_warning)) }
        </div>
    }
}

/// The open problems, critical first (the collector's order), each opening its app or host.
fn problems(list: &[Problem], now: u64, dispatch: &Dispatch) -> Html {
    if list.is_empty() {
        return html! {};
    }
    html! {
        <section id="problems" class="problems" aria-label="Open problems">
            <h2>{ format!("Problems ({})", list.len()) }</h2>
            <ul class="problem-list">
                { for list.iter().map(|p| {
                    let route = match &p.app {
                        Some(app) => Route::App(p.host.clone(), app.clone()),
                        None => Route::Host(p.host.clone()),
                    };
                    let open = dispatch.reform(move |_: ()| Action::Navigate(route.clone()));
                    let what = match (&p.app, &p.subject) {
                        (Some(app), Some(subject)) => format!("{} / {app} · {subject}", p.host),
                        (Some(app), None) => format!("{} / {app}", p.host),
                        (None, Some(subject)) => format!("{} · {subject}", p.host),
                        (None, None) => p.host.clone(),
                    };
                    let kind = p.rule.clone().unwrap_or_else(|| p.kind.clone());
                    html! {
                        <li class={classes!("problem-row", severity_class(p.severity))} data-kind={p.kind.clone()}
                            data-host={p.host.clone()} tabindex="0" role="button"
                            onclick={open.reform(|_: MouseEvent| ())} onkeydown={on_activate(open)}>
                            <Badge tone={severity_class(p.severity)} text={p.severity.as_str()} class="problem-severity" />
                            <span class="problem-kind muted">{ kind }</span>
                            <span class="problem-what">{ what }</span>
                            <span class="problem-message">{ p.message.clone() }</span>
                            <span class="muted nowrap">{ format!("since {}", format::ago(now, p.since_unix_ms)) }</span>
                        </li>
                    }
                }) }
            </ul>
        </section>
    }
}

fn host_card(h: &HostView, now: u64, dispatch: &Dispatch) -> Html {
    let open_host = {
        let host = h.name.clone();
        dispatch.reform(move |_: MouseEvent| Action::Navigate(Route::Host(host.clone())))
    };
    let mem = match (h.memory_used_bytes, h.memory_total_bytes) {
        (Some(u), Some(t)) if t > 0 => {
            format!("{} / {}", format::bytes(u as f64), format::bytes(t as f64))
        }
        (Some(u), _) => format::bytes(u as f64),
        _ => "–".into(),
    };
    let mem_pct = match (h.memory_used_bytes, h.memory_total_bytes) {
        (Some(u), Some(t)) if t > 0 => Some(u as f64 / t as f64 * 100.0),
        _ => None,
    };
    let cpu = h.cpu_percent;
    let status_title = match (&h.error, h.status_since_unix_ms) {
        (Some(e), _) => e.clone(),
        (None, Some(since)) => format!("{} since {}", h.status.as_str(), format::ago(now, since)),
        (None, None) => h.status.as_str().to_owned(),
    };
    html! {
        <article class={classes!("host-card", (h.status == HostStatus::Down).then_some("down"))}
            data-host={h.name.clone()}>
            <header class="host-head">
                <button class="host-link" onclick={open_host} title="Open the host">{ h.name.clone() }</button>
                <Badge tone={host_status_class(h.status)} text={h.status.as_str()} class="host-status" title={status_title} />
            </header>
            <div class="host-meters">
                { meter("CPU", cpu.map(format::percent).unwrap_or_else(|| "–".into()), cpu) }
                { meter("Memory", mem, mem_pct) }
            </div>
            if let Some(e) = &h.error {
                <p class="host-error">{ e.clone() }</p>
            }
            <ul class="app-list" aria-label={format!("Apps of {}", h.name)}>
                { for h.apps.iter().map(|a| app_row(&h.name, a, now, dispatch)) }
            </ul>
        </article>
    }
}

fn meter(label: &'static str, text: String, pct: Option<f64>) -> Html {
    let width = pct.map_or(0.0, |p| p.clamp(0.0, 100.0));
    let tone = match pct {
        Some(p) if p >= 90.0 => "bad",
        Some(p) if p >= 75.0 => "warn",
        _ => "ok",
    };
    html! {
        <div class="meter">
            <span class="meter-label">{ label }</span>
            // An SVG bar sized by attributes: a `style` attribute would need 'unsafe-inline' in
            // the CSP.
            <svg class="meter-bar" viewBox="0 0 100 6" preserveAspectRatio="none">
                <rect class={classes!("meter-fill", tone)} width={format!("{width:.1}")} height="6" />
            </svg>
            <span class="meter-text">{ text }</span>
        </div>
    }
}

fn app_row(host: &str, a: &AppView, now: u64, dispatch: &Dispatch) -> Html {
    let route = Route::App(host.to_owned(), a.status.name.clone());
    let open = {
        let route = route.clone();
        dispatch.reform(move |_: ()| Action::Navigate(route.clone()))
    };
    let onclick = open.reform(|_: MouseEvent| ());
    let onkeydown = on_activate(open);
    let state = a.status.state;
    let uptime = a.uptime_30d.map_or_else(|| "–".to_owned(), format::ratio);
    let partial = format::partial_since(now, 30, a.uptime_known_since_unix_ms);
    let uptime_title = format!(
        "Uptime {}",
        format::uptime_span(now, 30, a.uptime_known_since_unix_ms)
    );
    let mem = a
        .status
        .memory_bytes
        .map_or_else(String::new, |b| format::bytes(b as f64));
    let since = format::ago(now, a.state_since_unix_ms);
    html! {
        <li class={classes!("app-row", app_class(&a.status))} data-host={host.to_owned()}
            data-app={a.status.name.clone()} tabindex="0" role="button"
            aria-label={format!("{} on {}: {}", a.status.name, host, state.as_str())}
            title={format!("{} on {}: {}, memory {mem}", a.status.name, host, state.as_str())}
            {onclick} {onkeydown}>
            <span class="app-name" title={a.status.name.clone()}>{ a.status.name.clone() }</span>
            <span class="app-badges">
                <Badge tone={app_class(&a.status)} text={state.as_str()} class="app-state" title={format!("{} since {since}", state.as_str())} />
                { degraded_badge(&a.status, "app-degraded") }
            </span>
            <span class="app-mem" title="Memory">{ mem }</span>
            <span class={classes!("app-uptime", format::ratio_class(a.uptime_30d))} title={uptime_title}>
                { uptime }
                { for partial.map(|since| html! { <span class="uptime-since">{ format!(" · {}", format::duration_secs(now.saturating_sub(since) / 1000)) }</span> }) }
            </span>
        </li>
    }
}

//! One host: its status, metric charts over 1 h / 24 h / 7 d / 30 d, its apps, and a silence
//! of the host and all its apps.

use fleetdeck_proto::desktop::MetricsRange;
use fleetdeck_proto::{HostView, Metrics};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::chart::{LineChart, Series, Unit};
use crate::components::silence::SilenceMenu;
use crate::components::status::{app_class, degraded_badge, host_status_class, Badge};
use crate::format;
use crate::state::{Action, Route};
use crate::views::Reform;
use crate::views::{self, on_activate};

#[derive(Properties, PartialEq, Debug)]
pub struct HostProps {
    pub host: AttrValue,
}

pub fn range_id(r: MetricsRange) -> &'static str {
    match r {
        MetricsRange::Hour => "range-1h",
        MetricsRange::Day => "range-24h",
        MetricsRange::Week => "range-7d",
        MetricsRange::Month => "range-30d",
    }
}

#[function_component(HostPage)]
pub fn host_page(props: &HostProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let collector = store.selected.clone().unwrap_or_default();
    let range = use_state(|| MetricsRange::Hour);
    // `(range, answer)`: the answer belongs to that range, so a slow answer of an older range is
    // never drawn over a newer one.
    let metrics = use_state(|| None::<(MetricsRange, Result<Metrics, String>)>);
    let detail = use_state(|| None::<HostView>);
    let silenced = use_state(|| None::<String>);

    {
        let (metrics, dispatch) = (metrics.clone(), dispatch.clone());
        let (collector, host) = (collector.clone(), props.host.to_string());
        use_effect_with(*range, move |range| {
            let range = *range;
            spawn_local(async move {
                let answer = api::metrics(&collector, &host, range).await;
                if let Err(e) = &answer {
                    views::fail(&dispatch, format!("Loading metrics of {host}"), e.clone());
                }
                metrics.set(Some((range, answer.map_err(|e| e.message))));
            });
        });
    }
    {
        let detail = detail.clone();
        let (collector, host) = (collector.clone(), props.host.to_string());
        use_effect_with((), move |_| {
            spawn_local(async move {
                // The fleet already has the essentials; the full metrics are a bonus.
                if let Ok(h) = api::host(&collector, &host).await {
                    detail.set(Some(h));
                }
            });
        });
    }

    let live = store.host(&props.host).cloned();
    // The fleet's view is live; the host call adds the full latest metrics.
    let host = match (live, (*detail).clone()) {
        (Some(mut live), Some(detail)) => {
            live.metrics = live.metrics.or(detail.metrics);
            Some(live)
        }
        (live, detail) => live.or(detail),
    };
    let current: Option<&Metrics> = match &*metrics {
        Some((r, Ok(m))) if r == &*range => Some(m),
        _ => None,
    };
    let loading = !matches!(&*metrics, Some((r, _)) if r == &*range);
    let error = match &*metrics {
        Some((r, Err(e))) if r == &*range => Some(e.clone()),
        _ => None,
    };
    let points = current.map(|m| m.points.as_slice()).unwrap_or_default();
    let end = points
        .last()
        .map_or_else(views::now_ms, |p| p.ts_unix_ms.max(views::now_ms()));
    let x_range = (end.saturating_sub(range.span_ms()), end);
    let span = AttrValue::from(range.label());
    let series =
        |name: &'static str,
         class: &'static str,
         f: &dyn Fn(&fleetdeck_proto::MetricPoint) -> Option<f64>| Series {
            name: name.into(),
            class,
            points: points.iter().map(|p| (p.ts_unix_ms, f(p))).collect(),
        };
    let cpu = series("CPU", "s1", &|p| p.cpu_percent);
    let mem = series("Used", "s1", &|p| p.memory_used_bytes.map(|b| b as f64));
    let disk = series("Used", "s1", &|p| p.disk_used_bytes.map(|b| b as f64));
    let rx = series("Received", "s1", &|p| p.net_rx_bytes_per_sec);
    let tx = series("Sent", "s2", &|p| p.net_tx_bytes_per_sec);
    let disk_read = series("Read", "s1", &|p| p.disk_read_bytes_per_sec);
    let disk_write = series("Written", "s2", &|p| p.disk_write_bytes_per_sec);
    let inodes = series("Inodes used", "s1", &|p| p.root_inodes_used_percent);
    let mem_total = points
        .iter()
        .rev()
        .find_map(|p| p.memory_total_bytes)
        .map(|b| b as f64);
    let disk_total = points
        .iter()
        .rev()
        .find_map(|p| p.disk_total_bytes)
        .map(|b| b as f64);
    let latest = |f: &dyn Fn(&fleetdeck_proto::MetricPoint) -> Option<f64>,
                  fmt: fn(f64) -> String| {
        points
            .iter()
            .rev()
            .find_map(f)
            .map(|v| AttrValue::from(format!("now {}", fmt(v))))
    };

    let now = views::now_ms();
    let name = props.host.clone();
    html! {
        <section id="host-view" class="view" data-host={name.clone()}>
            <nav class="crumbs" aria-label="Breadcrumb">
                <button class="link" onclick={dispatch.reform(|_| Action::Navigate(Route::Fleet))}>{ "Fleet" }</button>
                <span>{ " / " }</span><span>{ name.clone() }</span>
            </nav>
            <header class="view-head">
                <h1>{ name.clone() }</h1>
                { match &host {
                    Some(h) => html! {
                        <>
                            <Badge tone={host_status_class(h.status)} text={h.status.as_str()} id="host-status" />
                            <span class="muted">{ host_facts(h, now) }</span>
                            { agent_version(h) }
                        </>
                    },
                    None => html! { <span class="muted">{ "Not in this collector's fleet (yet)." }</span> },
                } }
                <div class="spacer"></div>
                <div class="actions" role="group" aria-label="Silence">
                    <SilenceMenu collector={collector.clone()} host={name.clone()} class="host-silence"
                        ondone={{ let silenced = silenced.clone(); Callback::from(move |what| silenced.set(Some(what))) }} />
                </div>
            </header>
            if let Some(what) = (*silenced).clone() {
                <p id="host-silence-result" class="action-result" role="status">{ what }</p>
            }
            if let Some(e) = host.as_ref().and_then(|h| h.error.clone()) {
                <p class="host-error">{ e }</p>
            }
            <div class="range-picker" role="group" aria-label="Time range">
                { for MetricsRange::ALL.into_iter().map(|r| {
                    let range = range.clone();
                    let current = *range == r;
                    html! {
                        <button id={range_id(r)} class={classes!("btn", "small", current.then_some("current"))}
                            aria-pressed={current.to_string()} onclick={move |_| range.set(r)}>{ r.label() }</button>
                    }
                }) }
                if let Some(e) = error { <span class="error-text">{ e }</span> }
                if let Some(m) = current { <span class="muted">{ format!("{} points, {} resolution", m.points.len(), m.resolution) }</span> }
            </div>
            <div class="charts">
                <LineChart title="CPU" metric="cpu" series={vec![cpu]} x_range={x_range} span_label={span.clone()}
                    y_max={Some(100.0)} unit={Unit::Percent} {loading}
                    subtitle={latest(&|p| p.cpu_percent, format::percent)} />
                <LineChart title="Memory used" metric="memory" series={vec![mem]} x_range={x_range} span_label={span.clone()}
                    y_max={mem_total} unit={Unit::Bytes} {loading}
                    subtitle={latest(&|p| p.memory_used_bytes.map(|b| b as f64), format::bytes)} />
                <LineChart title="Disk used" metric="disk" series={vec![disk]} x_range={x_range} span_label={span.clone()}
                    y_max={disk_total} unit={Unit::Bytes} {loading}
                    subtitle={latest(&|p| p.disk_used_bytes.map(|b| b as f64), format::bytes)} />
                <LineChart title="Network" metric="network" series={vec![rx, tx]} x_range={x_range} span_label={span.clone()}
                    unit={Unit::BytesPerSec} {loading} />
                <LineChart title="Disk I/O" metric="disk-io" series={vec![disk_read, disk_write]} x_range={x_range} span_label={span.clone()}
                    unit={Unit::BytesPerSec} {loading} />
                <LineChart title="Root inodes used" metric="inodes" series={vec![inodes]} x_range={x_range} span_label={span}
                    y_max={Some(100.0)} unit={Unit::Percent} {loading}
                    subtitle={latest(&|p| p.root_inodes_used_percent, format::percent)} />
            </div>
            <h2>{ "Apps" }</h2>
            <ul class="app-list wide">
                { for host.iter().flat_map(|h| h.apps.iter()).map(|a| {
                    let route = Route::App(name.to_string(), a.status.name.clone());
                    let open = dispatch.reform(move |_: ()| Action::Navigate(route.clone()));
                    let state = a.status.state;
                    html! {
                        <li class={classes!("app-row", app_class(&a.status))} data-host={name.clone()}
                            data-app={a.status.name.clone()} tabindex="0" role="button"
                            onclick={open.reform(|_: MouseEvent| ())} onkeydown={on_activate(open)}>
                            <span class="app-badges">
                                <Badge tone={app_class(&a.status)} text={state.as_str()} class="app-state" />
                                { degraded_badge(&a.status, "app-degraded") }
                            </span>
                            <span class="app-name">{ a.status.name.clone() }</span>
                            <span class="muted">{ a.status.target.clone() }</span>
                            <span class="muted">{ format!("since {}", format::ago(now, a.state_since_unix_ms)) }</span>
                            <span class={classes!("app-uptime", format::ratio_class(a.uptime_30d))}
                                title={format!("Uptime {}", format::uptime_span(now, 30, a.uptime_known_since_unix_ms))}>
                                { a.uptime_30d.map_or_else(|| "–".to_owned(), format::ratio) }
                                { for format::partial_since(now, 30, a.uptime_known_since_unix_ms).map(|since| html! {
                                    <span class="uptime-since">{ format!(" since {}", format::ago(now, since)) }</span>
                                }) }
                            </span>
                        </li>
                    }
                }) }
            </ul>
        </section>
    }
}

/// The agent's version and wire version as the collector read them, marked when older than the
/// collector.
fn agent_version(h: &HostView) -> Html {
    let Some(version) = &h.agent_version else {
        return html! {};
    };
    let wire = h
        .wire_version
        .map(|w| format!(", wire v{w}"))
        .unwrap_or_default();
    html! {
        <span id="host-agent-version" class={classes!("muted", h.agent_outdated.then_some("outdated"))}
            title={ if h.agent_outdated { "older than the collector: upgrade this agent" } else { "" } }>
            { format!("agent {version}{wire}") }
            { if h.agent_outdated { html! { <Badge tone="warn" text="outdated" /> } } else { html! {} } }
        </span>
    }
}

fn host_facts(h: &HostView, now: u64) -> String {
    let mut facts = Vec::new();
    if let Some(name) = &h.hostname {
        facts.push(name.clone());
    }
    if let Some(since) = h.status_since_unix_ms {
        facts.push(format!(
            "{} to the collector for {}",
            h.status.as_str(),
            format::ago(now, since).trim_end_matches(" ago")
        ));
    }
    if let Some(seen) = h.last_seen_unix_ms {
        facts.push(format!("seen {}", format::ago(now, seen)));
    }
    if let Some(m) = &h.metrics {
        facts.push(format!("{} cores", m.cpu.cores));
        facts.push(format!(
            "booted {} ago",
            format::duration_secs(m.uptime_secs as u64)
        ));
        facts.push(format!("load {:.2}", m.load.one));
    }
    facts.join(" · ")
}

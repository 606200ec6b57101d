//! The app page's health: its endpoint checks (status, latency, error, certificate days left) and
//! its charts (CPU %, memory with its limit, check latency) over 1 h / 24 h / 7 d / 30 d.

use fleetdeck_proto::desktop::{EventFilter, MetricsRange};
use fleetdeck_proto::{AppMetricPoint, AppMetrics, CheckResult, FleetEvent};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::chart::{LineChart, Series, Unit};
use crate::components::status::Badge;
use crate::format;
use crate::views::event_detail::crash;
use crate::views::{self, host::range_id};

const DAY_MS: i64 = 86_400_000;

/// Whole days from `now` to a certificate's expiry (negative once expired).
pub fn cert_days_left(not_after_ms: u64, now_ms: u64) -> i64 {
    let (not_after, now) = (
        i64::try_from(not_after_ms).unwrap_or(i64::MAX),
        i64::try_from(now_ms).unwrap_or(i64::MAX),
    );
    (not_after - now).div_euclid(DAY_MS)
}

/// A certificate's colour by days left: red within 3 days (or expired), amber within 14.
pub fn cert_class(days: i64) -> &'static str {
    match days {
        d if d <= 3 => "bad",
        d if d <= 14 => "warn",
        _ => "ok",
    }
}

#[derive(Properties, PartialEq, Debug)]
pub struct ChecksProps {
    pub checks: Vec<CheckResult>,
}

/// The app's checks, one row each; nothing when it has none.
#[function_component(ChecksPanel)]
pub fn checks_panel(props: &ChecksProps) -> Html {
    if props.checks.is_empty() {
        return html! {};
    }
    let now = views::now_ms();
    let offset = views::tz_offset_min();
    html! {
        <>
            <h2>{ "Checks" }</h2>
            <table id="checks" class="events checks">
                <thead><tr>
                    <th>{ "Check" }</th><th>{ "Result" }</th><th>{ "Target" }</th><th>{ "Status" }</th>
                    <th>{ "Latency" }</th><th>{ "Certificate" }</th><th>{ "Error" }</th>
                </tr></thead>
                <tbody>
                { for props.checks.iter().map(|c| {
                    let (tone, text) = if c.ok { ("ok", "ok") } else { ("bad", "failing") };
                    let result_title = if c.ok {
                        format!("checked {}", format::ago(now, c.checked_unix_ms))
                    } else {
                        format!("{} failed runs in a row, checked {}", c.consecutive_failures, format::ago(now, c.checked_unix_ms))
                    };
                    let cert = c.cert_not_after_unix_ms.map(|t| {
                        let days = cert_days_left(t, now);
                        let text = if days < 0 { "expired".to_owned() } else if days == 1 { "1 day left".to_owned() } else { format!("{days} days left") };
                        html! {
                            <span class={classes!("cert-days", cert_class(days))} title={format!("expires {}", format::date_time(t, offset))}>{ text }</span>
                        }
                    });
                    html! {
                        <tr class="check-row" data-check={c.name.clone()}>
                            <td class="nowrap"><strong>{ c.name.clone() }</strong>{ " " }<span class="muted">{ c.kind.as_str() }</span></td>
                            <td><Badge {tone} {text} class="check-result" title={result_title} /></td>
                            <td class="mono">{ c.target.clone() }</td>
                            <td class="check-status">{ c.status_code.map_or_else(|| "–".to_owned(), |s| s.to_string()) }</td>
                            <td class="check-latency nowrap">{ c.latency_ms.map_or_else(|| "–".to_owned(), format::millis) }</td>
                            <td class="nowrap">{ cert.unwrap_or_else(|| html! { "–" }) }</td>
                            <td class="check-error error-text">{ c.error.clone().unwrap_or_default() }</td>
                        </tr>
                    }
                }) }
                </tbody>
            </table>
        </>
    }
}

#[derive(Properties, PartialEq, Debug)]
pub struct AppChartsProps {
    pub collector: AttrValue,
    pub host: AttrValue,
    pub app: AttrValue,
}

/// The colour classes of successive lines.
const CLASSES: [&str; 4] = ["s1", "s2", "s3", "s4"];

/// CPU, memory (with its limit) and check latency of one app, from `app_metrics`.
#[function_component(AppCharts)]
pub fn app_charts(props: &AppChartsProps) -> Html {
    let range = use_state(|| MetricsRange::Hour);
    let metrics = use_state(|| None::<(MetricsRange, Result<AppMetrics, String>)>);
    {
        let metrics = metrics.clone();
        let (collector, host, app) = (
            props.collector.to_string(),
            props.host.to_string(),
            props.app.to_string(),
        );
        use_effect_with(*range, move |range| {
            let range = *range;
            spawn_local(async move {
                let answer = api::app_metrics(&collector, &host, &app, range).await;
                metrics.set(Some((range, answer.map_err(|e| e.message))));
            });
        });
    }
    let current: Option<&AppMetrics> = match &*metrics {
        Some((r, Ok(m))) if r == &*range => Some(m),
        _ => None,
    };
    let loading = !matches!(&*metrics, Some((r, _)) if r == &*range);
    let error = match &*metrics {
        Some((r, Err(e))) if r == &*range => Some(e.clone()),
        _ => None,
    };
    let points: &[AppMetricPoint] = current.map(|m| m.points.as_slice()).unwrap_or_default();
    let end = points
        .last()
        .map_or_else(views::now_ms, |p| p.ts_unix_ms.max(views::now_ms()));
    let x_range = (end.saturating_sub(range.span_ms()), end);
    let span = AttrValue::from(range.label());
    let series =
        |name: String, class: &'static str, f: &dyn Fn(&AppMetricPoint) -> Option<f64>| Series {
            name: name.into(),
            class,
            points: points.iter().map(|p| (p.ts_unix_ms, f(p))).collect(),
        };
    #[allow(clippy::cast_precision_loss)]
    let as_f64 = |b: Option<u64>| b.map(|b| b as f64);
    let cpu = series("CPU".into(), "s1", &|p| p.cpu_percent);
    let mem = series("Memory".into(), "s1", &|p| as_f64(p.memory_bytes));
    let limit = points
        .iter()
        .rev()
        .find_map(|p| p.memory_limit_bytes)
        .and_then(|l| as_f64(Some(l)))
        .map(|l| (AttrValue::from("limit"), l));
    let mut check_names: Vec<&str> = points
        .iter()
        .flat_map(|p| p.checks.iter().map(|c| c.name.as_str()))
        .collect();
    check_names.sort_unstable();
    check_names.dedup();
    let latency: Vec<Series> = check_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            series((*name).to_owned(), CLASSES[i % CLASSES.len()], &|p| {
                p.checks
                    .iter()
                    .find(|c| c.name == *name)
                    .and_then(|c| c.latency_ms)
            })
        })
        .collect();
    let has_net = points
        .iter()
        .any(|p| p.net_rx_bytes_per_sec.is_some() || p.net_tx_bytes_per_sec.is_some());
    let latest = |f: &dyn Fn(&AppMetricPoint) -> Option<f64>, fmt: fn(f64) -> String| {
        points
            .iter()
            .rev()
            .find_map(f)
            .map(|v| AttrValue::from(format!("now {}", fmt(v))))
    };
    html! {
        <div id="app-charts">
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
                <LineChart title="CPU" metric="app-cpu" series={vec![cpu]} x_range={x_range} span_label={span.clone()}
                    unit={Unit::Percent} {loading}
                    subtitle={latest(&|p| p.cpu_percent, format::percent)} />
                <LineChart title="Memory" metric="app-memory" series={vec![mem]} x_range={x_range} span_label={span.clone()}
                    unit={Unit::Bytes} {loading} limit={limit}
                    subtitle={latest(&|p| as_f64(p.memory_bytes), format::bytes)} />
                if !latency.is_empty() {
                    <LineChart title="Check latency" metric="check-latency" series={latency} x_range={x_range} span_label={span.clone()}
                        unit={Unit::Millis} {loading} />
                }
                if has_net {
                    <LineChart title="Network" metric="app-network" x_range={x_range} span_label={span}
                        series={vec![
                            series("Received".into(), "s1", &|p| p.net_rx_bytes_per_sec),
                            series("Sent".into(), "s2", &|p| p.net_tx_bytes_per_sec),
                        ]}
                        unit={Unit::BytesPerSec} {loading} />
                }
            </div>
        </div>
    }
}

#[derive(Properties, PartialEq, Debug)]
pub struct LastCrashProps {
    pub collector: AttrValue,
    pub host: AttrValue,
    pub app: AttrValue,
    /// Changes when the app's state or restarts do: the last crash is read again.
    pub generation: AttrValue,
}

/// The app's last crash with its context (exit, OOM, memory, last log lines), from the event
/// log; nothing when none of its recent events carries one.
#[function_component(LastCrash)]
pub fn last_crash(props: &LastCrashProps) -> Html {
    let found = use_state(|| None::<FleetEvent>);
    {
        let found = found.clone();
        let (collector, host, app) = (
            props.collector.to_string(),
            props.host.to_string(),
            props.app.to_string(),
        );
        use_effect_with(props.generation.clone(), move |_| {
            spawn_local(async move {
                let filter = EventFilter {
                    host: Some(host.clone()),
                    app: Some(app.clone()),
                    limit: Some(50),
                    ..EventFilter::default()
                };
                // A failure leaves the section out: the event log says more.
                if let Ok(page) = api::events(&collector, &filter).await {
                    found.set(page.events.into_iter().find(|e| {
                        e.context.is_some() && e.host == host && e.app.as_deref() == Some(&app)
                    }));
                }
            });
        });
    }
    let Some(event) = &*found else {
        return html! {};
    };
    let Some(context) = &event.context else {
        return html! {};
    };
    let now = views::now_ms();
    html! {
        <section id="last-crash" class="last-crash">
            <h2>{ "Last crash" }<span class="muted">{ format!(" · {} · {}", format::ago(now, event.at_unix_ms), event.message) }</span></h2>
            { crash(context) }
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_days_and_colours() {
        let now = 1_700_000_000_000;
        assert_eq!(cert_days_left(now + 5 * 86_400_000, now), 5);
        assert_eq!(cert_days_left(now + 5 * 86_400_000 - 1, now), 4);
        assert_eq!(cert_days_left(now - 1, now), -1);
        assert_eq!(cert_class(-1), "bad");
        assert_eq!(cert_class(3), "bad");
        assert_eq!(cert_class(4), "warn");
        assert_eq!(cert_class(14), "warn");
        assert_eq!(cert_class(15), "ok");
    }
}

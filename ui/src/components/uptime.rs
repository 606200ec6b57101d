//! The 30-day uptime bar: one cell per UTC day, coloured by that day's ratio.

use fleetdeck_proto::Uptime;
use yew::prelude::*;

use crate::format;

#[derive(Properties, PartialEq, Debug)]
pub struct UptimeBarProps {
    /// `None` while loading.
    pub uptime: Option<Uptime>,
    /// The clock the "first seen … ago" is read against.
    pub now_ms: u64,
    #[prop_or_default]
    pub error: Option<AttrValue>,
}

#[function_component(UptimeBar)]
pub fn uptime_bar(props: &UptimeBarProps) -> Html {
    let summary = match (&props.uptime, &props.error) {
        (_, Some(e)) => format!("Uptime unavailable: {e}"),
        (None, None) => "Loading uptime…".to_owned(),
        (Some(u), None) => match u.ratio {
            Some(r) => format!(
                "{} up {}",
                format::ratio(r),
                format::uptime_span(props.now_ms, u.days.len() as u64, u.first_known_ms)
            ),
            None => "No uptime known yet".to_owned(),
        },
    };
    let cells = props.uptime.iter().flat_map(|u| u.days.iter()).map(|d| {
        let title = match d.ratio {
            Some(r) => format!("{}: {} up", format::date(d.day_start_ms), format::ratio(r)),
            None => format!("{}: no data", format::date(d.day_start_ms)),
        };
        html! {
            <span class={classes!("cell", format::ratio_class(d.ratio))} title={title.clone()} aria-label={title}></span>
        }
    });
    html! {
        <div class="uptime">
            <div id="uptime-bar" class="uptime-bar" role="img" aria-label={summary.clone()}>
                { for cells }
            </div>
            <div class="uptime-legend">
                <span>{ "30 days ago" }</span>
                <span class="uptime-summary">{ summary }</span>
                <span>{ "today" }</span>
            </div>
        </div>
    }
}

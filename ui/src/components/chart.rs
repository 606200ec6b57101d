//! A hand-drawn SVG line chart: one polyline per series (broken where a value is missing), the
//! value axis labelled with its minimum and maximum, the time axis with the span it covers.

use yew::prelude::*;

const W: f64 = 480.0;
const H: f64 = 150.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// How a chart's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    Bytes,
    BytesPerSec,
    Millis,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Self::Percent => crate::format::percent(v),
            Self::Bytes => crate::format::bytes(v),
            Self::BytesPerSec => crate::format::bytes_per_sec(v),
            Self::Millis => crate::format::millis(v),
        }
    }
}

/// One line: its name for the legend, its colour class, and `(unix ms, value)` points, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: AttrValue,
    /// `s1` or `s2` (CSS colours).
    pub class: &'static str,
    pub points: Vec<(u64, Option<f64>)>,
}

/// The value range to draw: from 0 (or the lowest value, if negative) to the fixed maximum, or to
/// the highest value with a little headroom; never an empty range.
pub fn y_range(series: &[Series], fixed_max: Option<f64>) -> (f64, f64) {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((0.0_f64, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let hi = match fixed_max {
        Some(max) => max.max(if hi.is_finite() { hi } else { max }),
        None if hi.is_finite() && hi > lo => hi * 1.1,
        None => lo + 1.0,
    };
    (lo, hi)
}

/// The `points` attributes of a series' polylines in a `w` x `h` box: one per run of known values.
pub fn polylines(
    points: &[(u64, Option<f64>)],
    x_range: (u64, u64),
    y_range: (f64, f64),
    w: f64,
    h: f64,
) -> Vec<String> {
    let (x0, x1) = x_range;
    let (y0, y1) = y_range;
    let span_x = (x1.saturating_sub(x0)).max(1) as f64;
    let span_y = if y1 > y0 { y1 - y0 } else { 1.0 };
    let mut out = Vec::new();
    let mut current = String::new();
    for &(t, v) in points {
        if t < x0 || t > x1 {
            continue;
        }
        match v {
            Some(v) if v.is_finite() => {
                let x = (t - x0) as f64 / span_x * w;
                let y = h - (v - y0) / span_y * h;
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(&format!("{x:.1},{y:.1}"));
            }
            _ => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[derive(Properties, PartialEq, Debug)]
pub struct LineChartProps {
    pub title: AttrValue,
    /// `cpu`, `memory`, `disk` or `network` (tests find charts by it).
    pub metric: AttrValue,
    pub series: Vec<Series>,
    /// The time axis: `(start, end)` in unix ms.
    pub x_range: (u64, u64),
    /// e.g. "24 h".
    pub span_label: AttrValue,
    /// A fixed top of the value axis (100 for percentages).
    #[prop_or_default]
    pub y_max: Option<f64>,
    pub unit: Unit,
    /// A line under the title, e.g. the latest value.
    #[prop_or_default]
    pub subtitle: Option<AttrValue>,
    #[prop_or_default]
    pub loading: bool,
    /// A level drawn as a dashed line across the chart (e.g. a memory limit), with its label;
    /// the value axis reaches it.
    #[prop_or_default]
    pub limit: Option<(AttrValue, f64)>,
}

#[function_component(LineChart)]
pub fn line_chart(props: &LineChartProps) -> Html {
    let y_max = match (props.y_max, props.limit.as_ref()) {
        (Some(max), Some((_, limit))) => Some(max.max(*limit)),
        (None, Some((_, limit))) => Some(*limit),
        (max, None) => max,
    };
    let (lo, hi) = y_range(&props.series, y_max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let has_data = props
        .series
        .iter()
        .any(|s| s.points.iter().any(|p| p.1.is_some()));
    let lines = props.series.iter().flat_map(|s| {
        polylines(&s.points, props.x_range, (lo, hi), plot_w, plot_h)
            .into_iter()
            .map(move |pts| {
                html! { <polyline class={classes!("line", s.class)} points={pts} /> }
            })
    });
    let legend = if props.series.len() > 1 {
        props
            .series
            .iter()
            .map(|s| html! { <span class={classes!("legend", s.class)}>{ s.name.clone() }</span> })
            .collect::<Html>()
    } else {
        html! {}
    };
    let empty_text = if props.loading {
        "Loading…"
    } else {
        "No data for this range"
    };
    html! {
        <figure class="chart" data-metric={props.metric.clone()}>
            <figcaption>
                <span class="chart-title">{ props.title.clone() }</span>
                { for props.subtitle.clone().map(|s| html! { <span class="chart-sub">{ s }</span> }) }
                { legend }
            </figcaption>
            <svg viewBox={format!("0 0 {W} {H}")} role="img" aria-label={props.title.clone()}>
                <g transform={format!("translate({LEFT},{TOP})")}>
                    <line class="axis" x1="0" y1="0" x2="0" y2={plot_h.to_string()} />
                    <line class="axis" x1="0" y1={plot_h.to_string()} x2={plot_w.to_string()} y2={plot_h.to_string()} />
                    <line class="grid" x1="0" y1="0" x2={plot_w.to_string()} y2="0" />
                    <line class="grid" x1="0" y1={(plot_h / 2.0).to_string()} x2={plot_w.to_string()} y2={(plot_h / 2.0).to_string()} />
                    { for lines }
                    { for props.limit.iter().filter(|(_, v)| v.is_finite() && hi > lo).map(|(label, v)| {
                        let y = plot_h - (v - lo) / (hi - lo) * plot_h;
                        html! {
                            <>
                                <line class="limit" x1="0" y1={format!("{y:.1}")} x2={plot_w.to_string()} y2={format!("{y:.1}")} />
                                <text class="tick limit-label" x={(plot_w - 4.0).to_string()} y={format!("{:.1}", (y - 3.0).max(9.0))} text-anchor="end">
                                    { format!("{label} {}", props.unit.format(*v)) }
                                </text>
                            </>
                        }
                    }) }
                    if !has_data {
                        <text class="empty" x={(plot_w / 2.0).to_string()} y={(plot_h / 2.0).to_string()} text-anchor="middle">{ empty_text }</text>
                    }
                </g>
                <text class="tick" x={(LEFT - 6.0).to_string()} y={(TOP + 4.0).to_string()} text-anchor="end">{ props.unit.format(hi) }</text>
                <text class="tick" x={(LEFT - 6.0).to_string()} y={(TOP + plot_h).to_string()} text-anchor="end">{ props.unit.format(lo) }</text>
                <text class="tick" x={LEFT.to_string()} y={(H - 6.0).to_string()} text-anchor="start">{ format!("−{}", props.span_label) }</text>
                <text class="tick" x={(W - RIGHT).to_string()} y={(H - 6.0).to_string()} text-anchor="end">{ "now" }</text>
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(u64, Option<f64>)>) -> Series {
        Series {
            name: "s".into(),
            class: "s1",
            points,
        }
    }

    #[test]
    fn gaps_split_the_line() {
        let pts = [
            (0, Some(0.0)),
            (50, Some(10.0)),
            (60, None),
            (100, Some(5.0)),
        ];
        let lines = polylines(&pts, (0, 100), (0.0, 10.0), 100.0, 10.0);
        assert_eq!(lines, ["0.0,10.0 50.0,0.0", "100.0,5.0"]);
    }

    #[test]
    fn points_outside_the_range_are_left_out() {
        let pts = [(5, Some(1.0)), (20, Some(1.0))];
        assert_eq!(
            polylines(&pts, (10, 30), (0.0, 2.0), 20.0, 2.0),
            ["10.0,1.0"]
        );
    }

    #[test]
    fn value_range() {
        assert_eq!(
            y_range(&[series(vec![(0, Some(50.0))])], Some(100.0)),
            (0.0, 100.0)
        );
        assert_eq!(
            y_range(&[series(vec![(0, Some(150.0))])], Some(100.0)),
            (0.0, 150.0)
        );
        assert_eq!(y_range(&[series(vec![(0, Some(10.0))])], None), (0.0, 11.0));
        assert_eq!(y_range(&[series(vec![(0, None)])], None), (0.0, 1.0));
        assert_eq!(y_range(&[], Some(100.0)), (0.0, 100.0));
        assert_eq!(y_range(&[series(vec![(0, Some(0.0))])], None), (0.0, 1.0));
    }
}

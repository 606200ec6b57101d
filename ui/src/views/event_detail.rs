//! What an event carries beyond its message, shown when its row is opened: a crash's context
//! (exit, OOM kill, memory against its limit, every last log line in a monospace block), a
//! check's result, a threshold rule's value and level.

use fleetdeck_proto::{CheckResult, CrashContext, FleetEvent, ThresholdHit};
use yew::prelude::*;

use crate::format;

/// Whether `event` has anything [`event_detail`] shows.
pub fn has_detail(event: &FleetEvent) -> bool {
    event.context.is_some() || event.check.is_some() || event.threshold.is_some()
}

/// The detail block of `event` (empty when it has none).
pub fn event_detail(event: &FleetEvent, offset_min: i32) -> Html {
    html! {
        <div class="event-detail-body">
            { for event.context.as_ref().map(crash) }
            { for event.check.as_ref().map(|c| check(c, offset_min)) }
            { for event.threshold.as_ref().map(threshold) }
        </div>
    }
}

fn fact(label: &'static str, class: &'static str, value: String) -> Html {
    html! { <div><dt>{ label }</dt><dd class={class}>{ value }</dd></div> }
}

/// A crash's context: exit, OOM killer, memory, and every last line in a monospace block.
pub fn crash(c: &CrashContext) -> Html {
    #[allow(clippy::cast_precision_loss)]
    let bytes = |b: u64| format::bytes(b as f64);
    let memory = match (c.memory_bytes, c.memory_limit_bytes) {
        (Some(used), Some(limit)) => format!("{} of {} limit", bytes(used), bytes(limit)),
        (Some(used), None) => bytes(used),
        (None, Some(limit)) => format!("– (limit {})", bytes(limit)),
        (None, None) => "–".to_owned(),
    };
    html! {
        <div class="crash-context">
            <dl class="facts">
                { fact("Exit", "crash-exit", format::exit(c.exit)) }
                { fact("OOM killer", "crash-oom", if c.oom_killed { "killed it".to_owned() } else { "no".to_owned() }) }
                { fact("Memory at the end", "crash-memory", memory) }
            </dl>
            <div class="crash-lines-head muted">{ format!("Last {} log lines of the process", c.last_lines.len()) }</div>
            if let Some(e) = &c.lines_error {
                <p class="error-text crash-lines-error">{ format!("Could not read all its log lines: {e}") }</p>
            }
            if !c.last_lines.is_empty() {
                <pre class="crash-lines">{ c.last_lines.join("\n") }</pre>
            }
        </div>
    }
}

fn check(c: &CheckResult, offset_min: i32) -> Html {
    html! {
        <dl class="facts check-detail">
            { fact("Check", "", format!("{} ({} {})", c.name, c.kind.as_str(), c.target)) }
            { fact("Result", if c.ok { "" } else { "error-text" }, if c.ok { "ok".to_owned() } else { format!("failing ({} in a row)", c.consecutive_failures) }) }
            { fact("Status", "", c.status_code.map_or_else(|| "–".to_owned(), |s| s.to_string())) }
            { fact("Latency", "", c.latency_ms.map_or_else(|| "–".to_owned(), format::millis)) }
            if let Some(t) = c.cert_not_after_unix_ms {
                { fact("Certificate expires", "", format::date_time(t, offset_min)) }
            }
            if let Some(e) = &c.error {
                <div class="wide"><dt>{ "Error" }</dt><dd class="error-text">{ e.clone() }</dd></div>
            }
        </dl>
    }
}

fn threshold(t: &ThresholdHit) -> Html {
    let value = |v: f64| {
        if t.metric.ends_with("percent") {
            format::percent(v)
        } else if t.metric.ends_with("bytes") {
            format::bytes(v)
        } else if t.metric.ends_with("hours_to_full") {
            format!("{v:.1} h")
        } else if t.metric.ends_with("_ms") {
            format::millis(v)
        } else {
            format!("{v:.2}")
        }
    };
    html! {
        <dl class="facts threshold-detail">
            { fact("Rule", "", t.rule.clone()) }
            { fact("Metric", "", match &t.subject { Some(s) => format!("{} of {s}", t.metric), None => t.metric.clone() }) }
            { fact("Value", "threshold-value", format!("{} ({} {})", value(t.value), t.direction, value(t.threshold))) }
            { fact("Held for", "", format::duration_secs(t.for_secs)) }
        </dl>
    }
}

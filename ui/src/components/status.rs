//! Status colours: one class per meaning, so every view colours a state the same way.

use fleetdeck_proto::desktop::ConnState;
use fleetdeck_proto::{AppState, AppStatus, HostStatus, Severity};
use yew::prelude::*;

/// `ok` green, `warn` amber, `bad` red, `off` grey.
pub fn app_state_class(state: AppState) -> &'static str {
    match state {
        AppState::Running => "ok",
        AppState::Starting | AppState::Stopping | AppState::Unknown | AppState::NotFound => "warn",
        AppState::Failed | AppState::CrashLooping => "bad",
        AppState::Stopped => "off",
    }
}

/// An app is degraded when the agent says so (a check failed twice in a row) or any of its
/// checks fails now.
pub fn app_degraded(status: &AppStatus) -> bool {
    status.degraded || status.checks.iter().any(|c| !c.ok)
}

/// An app's colour: its state's, but never green while it is degraded.
pub fn app_class(status: &AppStatus) -> &'static str {
    match app_state_class(status.state) {
        "ok" if app_degraded(status) => "warn",
        tone => tone,
    }
}

/// The `degraded` badge beside an app's state, or nothing: says which checks fail.
pub fn degraded_badge(status: &AppStatus, class: &'static str) -> Html {
    if !app_degraded(status) {
        return html! {};
    }
    let failing: Vec<&str> = status
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    let title = if failing.is_empty() {
        "A check failed twice in a row".to_owned()
    } else {
        format!("Failing: {}", failing.join(", "))
    };
    html! { <Badge tone="warn" text="degraded" class={classes!(class)} {title} /> }
}

pub fn host_status_class(status: HostStatus) -> &'static str {
    match status {
        HostStatus::Up => "ok",
        HostStatus::Down => "bad",
        HostStatus::Unknown => "warn",
    }
}

pub fn conn_class(state: ConnState) -> &'static str {
    match state {
        ConnState::Connected => "ok",
        ConnState::Connecting => "warn",
        ConnState::Failing => "bad",
    }
}

pub fn conn_text(state: ConnState) -> &'static str {
    match state {
        ConnState::Connected => "connected",
        ConnState::Connecting => "connecting",
        ConnState::Failing => "failing",
    }
}

pub fn severity_class(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "off",
        Severity::Warning => "warn",
        Severity::Critical => "bad",
    }
}

#[derive(Properties, PartialEq, Debug)]
pub struct BadgeProps {
    /// `ok`, `warn`, `bad` or `off`.
    pub tone: &'static str,
    /// Exactly the text shown (tests read it).
    pub text: AttrValue,
    #[prop_or_default]
    pub id: Option<AttrValue>,
    /// Extra classes, e.g. `app-state`.
    #[prop_or_default]
    pub class: Classes,
    #[prop_or_default]
    pub title: Option<AttrValue>,
}

/// A coloured pill; the dot is a separate element so the pill's text is exactly `text`.
#[function_component(Badge)]
pub fn badge(props: &BadgeProps) -> Html {
    html! {
        <span class={classes!("badge", props.tone)} title={props.title.clone()}>
            <span class="dot" aria-hidden="true"></span>
            <span id={props.id.clone()} class={props.class.clone()}>{ props.text.clone() }</span>
        </span>
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_proto::{AppKind, CheckKind, CheckResult};

    fn status(state: AppState) -> AppStatus {
        AppStatus {
            name: "api".into(),
            kind: AppKind::Systemd,
            target: "api.service".into(),
            state,
            since_unix_ms: None,
            last_exit: None,
            restarts: None,
            memory_bytes: None,
            error: None,
            systemd: None,
            docker: None,
            expect: Default::default(),
            stopped_by_request: false,
            checks: Vec::new(),
            degraded: false,
        }
    }

    fn check(ok: bool) -> CheckResult {
        CheckResult {
            name: "health".into(),
            kind: CheckKind::Http,
            target: "http://127.0.0.1:8080/".into(),
            ok,
            consecutive_failures: u32::from(!ok),
            status_code: Some(if ok { 200 } else { 500 }),
            latency_ms: Some(3.0),
            error: None,
            cert_not_after_unix_ms: None,
            checked_unix_ms: 0,
        }
    }

    #[test]
    fn a_running_app_with_a_failing_check_is_amber_never_green() {
        let mut s = status(AppState::Running);
        assert_eq!(app_class(&s), "ok");
        s.checks.push(check(true));
        assert_eq!(app_class(&s), "ok", "a passing check changes nothing");
        s.checks.push(check(false));
        assert!(app_degraded(&s));
        assert_eq!(app_class(&s), "warn");
        // The agent's flag alone (two failures in a row) is enough.
        let mut s = status(AppState::Running);
        s.degraded = true;
        assert_eq!(app_class(&s), "warn");
        // A worse state keeps its own colour.
        let mut s = status(AppState::Failed);
        s.checks.push(check(false));
        assert_eq!(app_class(&s), "bad");
    }
}

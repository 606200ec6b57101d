//! The JSON shapes of wire contract v1 that other programs rely on.

use fleetdeck_proto::{AppState, ErrorBody, Exit, SourceHealth};
use serde_json::json;

#[test]
fn app_states_are_kebab_case_strings() {
    for (state, text) in [
        (AppState::Running, "running"),
        (AppState::Starting, "starting"),
        (AppState::Stopping, "stopping"),
        (AppState::Stopped, "stopped"),
        (AppState::Failed, "failed"),
        (AppState::CrashLooping, "crash-looping"),
        (AppState::Unknown, "unknown"),
        (AppState::NotFound, "not-found"),
    ] {
        assert_eq!(serde_json::to_value(state).expect("serialize"), json!(text));
        assert_eq!(state.to_string(), text);
        assert_eq!(
            serde_json::from_value::<AppState>(json!(text)).expect("parse"),
            state
        );
    }
}

#[test]
fn error_body_has_the_one_shape() {
    let body = ErrorBody::new("app_not_found", "no app named \"x\"");
    assert_eq!(
        serde_json::to_value(&body).expect("serialize"),
        json!({"error": {"code": "app_not_found", "message": "no app named \"x\""}})
    );
}

#[test]
fn exits_and_source_health_shapes() {
    assert_eq!(
        serde_json::to_value(Exit::Code(3)).expect("ser"),
        json!({"code": 3})
    );
    assert_eq!(
        serde_json::to_value(Exit::Signal(9)).expect("ser"),
        json!({"signal": 9})
    );
    assert_eq!(
        serde_json::to_value(SourceHealth::Up).expect("ser"),
        json!({"status": "up"})
    );
    assert_eq!(
        serde_json::to_value(SourceHealth::Unused).expect("ser"),
        json!({"status": "unused"})
    );
    assert_eq!(
        serde_json::to_value(SourceHealth::Down {
            error: "no bus".into()
        })
        .expect("ser"),
        json!({"status": "down", "error": "no bus"})
    );
}

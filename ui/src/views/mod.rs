//! One view per screen; each reads the shared [`Store`] from context and calls [`crate::api`].

pub mod admin;
pub mod alerts;
pub mod app;
pub mod app_health;
pub mod env;
pub mod env_backups;
pub mod event_detail;
pub mod events;
pub mod fleet;
pub mod host;
pub mod logs;
pub mod search;
pub mod settings;

use fleetdeck_proto::desktop::CommandError;
use yew::prelude::*;

use crate::state::{Action, UiState};

/// The UI state shared by every view.
pub type Store = UseReducerHandle<UiState>;
pub type Dispatch = UseReducerDispatcher<UiState>;

/// The store from context. The root always provides it; a view rendered without it (a bug) gets an
/// empty state rather than a panic.
#[hook]
pub fn use_store() -> Store {
    let fallback = use_reducer(UiState::default);
    use_context::<Store>().unwrap_or(fallback)
}

/// Reports a failed command as a banner naming what failed.
pub fn fail(dispatch: &Dispatch, what: impl Into<String>, error: CommandError) {
    dispatch.dispatch(Action::Failed {
        what: what.into(),
        message: error.message,
    });
}

/// Now, in unix ms (the webview's clock).
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The local zone's offset east of UTC, in minutes.
pub fn tz_offset_min() -> i32 {
    -(js_sys::Date::new_0().get_timezone_offset() as i32)
}

/// Enter or Space on a focusable row acts like a click.
pub fn on_activate(callback: Callback<()>) -> Callback<KeyboardEvent> {
    Callback::from(move |e: KeyboardEvent| {
        if e.key() == "Enter" || e.key() == " " {
            e.prevent_default();
            callback.emit(());
        }
    })
}

/// The value of the input or select an event came from.
pub fn input_value(e: &Event) -> String {
    use wasm_bindgen::JsCast;
    let Some(target) = e.target() else {
        return String::new();
    };
    if let Some(input) = target.dyn_ref::<web_sys::HtmlInputElement>() {
        return input.value();
    }
    if let Some(select) = target.dyn_ref::<web_sys::HtmlSelectElement>() {
        return select.value();
    }
    String::new()
}

/// Whether the checkbox an event came from is checked.
pub fn input_checked(e: &Event) -> bool {
    use wasm_bindgen::JsCast;
    e.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .is_some_and(|i| i.checked())
}

/// `dispatch.reform(|e| Action::…)`: a callback that dispatches the action an event maps to.
pub trait Reform {
    fn reform<E: 'static>(&self, f: impl Fn(E) -> Action + 'static) -> Callback<E>;
}

impl Reform for Dispatch {
    fn reform<E: 'static>(&self, f: impl Fn(E) -> Action + 'static) -> Callback<E> {
        let dispatch = self.clone();
        Callback::from(move |e: E| dispatch.dispatch(f(e)))
    }
}

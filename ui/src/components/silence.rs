//! "Silence for 1 h / 4 h / 1 day / custom…" on an alert, an app or a host: a silence on the
//! collector covering that host (and app), for the chosen time, with a reason.

use fleetdeck_proto::NewSilence;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::views::{self, Dispatch};

/// The silences the buttons offer: label, duration.
pub const SILENCE_FOR: [(&str, &str); 3] = [("1 h", "1h"), ("4 h", "4h"), ("1 day", "1d")];

/// Silences `host` (and `app`, if given) for `duration` (as the collector reads it: `90m`,
/// `2h 30m`, `3d`) on `collector`; `done` gets what was silenced until when. A duration the
/// collector refuses shows its message.
pub fn silence(
    dispatch: &Dispatch,
    collector: String,
    host: String,
    app: Option<String>,
    duration: String,
    reason: Option<String>,
    done: Callback<String>,
) {
    let dispatch = dispatch.clone();
    spawn_local(async move {
        let what = match &app {
            Some(app) => format!("{app} on {host}"),
            None => format!("{host} and its apps"),
        };
        let new = NewSilence {
            hosts: Some(host),
            apps: app,
            duration: Some(duration.clone()),
            reason: reason
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| format!("silenced from the desktop ({what})")),
            ..NewSilence::default()
        };
        match api::silence_add(&collector, &new).await {
            Ok(s) => done.emit(format!(
                "{what} silenced for {duration} (until {}): no notification or alert until then",
                crate::format::date_time(s.ends_unix_ms, views::tz_offset_min())
            )),
            Err(e) => views::fail(&dispatch, format!("Silencing {what} for {duration:?}"), e),
        }
    });
}

#[derive(Properties, PartialEq, Debug)]
pub struct SilenceMenuProps {
    pub collector: AttrValue,
    pub host: AttrValue,
    #[prop_or_default]
    pub app: Option<AttrValue>,
    /// The buttons' class (`app-silence`, `host-silence`, `alert-silence`): what tests find.
    pub class: &'static str,
    #[prop_or_default]
    pub small: bool,
    /// What was silenced until when.
    pub ondone: Callback<String>,
}

#[function_component(SilenceMenu)]
pub fn silence_menu(props: &SilenceMenuProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let custom = use_state(|| false);
    let duration_ref = use_node_ref();
    let reason_ref = use_node_ref();
    let go = {
        let (dispatch, collector, host) = (
            dispatch.clone(),
            props.collector.to_string(),
            props.host.to_string(),
        );
        let app = props.app.as_ref().map(AttrValue::to_string);
        let ondone = props.ondone.clone();
        move |duration: String, reason: Option<String>| {
            silence(
                &dispatch,
                collector.clone(),
                host.clone(),
                app.clone(),
                duration,
                reason,
                ondone.clone(),
            )
        }
    };
    let size = props.small.then_some("small");
    let preset = |label: &'static str, duration: &'static str| {
        let go = go.clone();
        let onclick = Callback::from(move |_: MouseEvent| go(duration.to_owned(), None));
        // In a table row, the words "Silence for" stand once before the buttons.
        let text = if props.small {
            label.to_owned()
        } else {
            format!("Silence {label}")
        };
        html! {
            <button class={classes!("btn", size, props.class)} data-for={duration} {onclick}
                title={format!("Silence for {label}")}>{ text }</button>
        }
    };
    let toggle = {
        let custom = custom.clone();
        Callback::from(move |_: MouseEvent| custom.set(!*custom))
    };
    let submit = {
        let (go, custom) = (go.clone(), custom.clone());
        let (duration_ref, reason_ref) = (duration_ref.clone(), reason_ref.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let value = |r: &NodeRef| {
                r.cast::<HtmlInputElement>()
                    .map(|i| i.value())
                    .unwrap_or_default()
            };
            let duration = value(&duration_ref).trim().to_owned();
            if duration.is_empty() {
                return;
            }
            go(duration, Some(value(&reason_ref)));
            custom.set(false);
        })
    };
    html! {
        <span class="silence-menu">
            if props.small {
                <span class="muted">{ "Silence for" }</span>
            }
            { for SILENCE_FOR.iter().map(|(label, d)| preset(label, d)) }
            <button class={classes!("btn", size, "silence-custom", props.class)} data-for="custom"
                aria-expanded={custom.to_string()} onclick={toggle}>{ if props.small { "other…" } else { "Silence…" } }</button>
            if *custom {
                <form class="silence-custom-form" onsubmit={submit}>
                    <input type="text" class="silence-duration" ref={duration_ref}
                        placeholder="for how long: 90m, 2h 30m, 3d" aria-label="Silence for how long" required=true />
                    <input type="text" class="silence-reason" ref={reason_ref}
                        placeholder="why (optional)" aria-label="Why" maxlength="200" />
                    <button type="submit" class={classes!("btn", size, "silence-go")}>{ "Silence" }</button>
                </form>
            }
        </span>
    }
}

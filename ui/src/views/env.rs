//! An app's `.env`: values masked until revealed, edit / add / delete, a review of the changes,
//! then a save checked against the etag read (a clear message when the file changed meanwhile),
//! optionally restarting the app.

use fleetdeck_proto::desktop::{CommandError, EnvSaved};
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::env_edit::{Change, EnvEditor};
use crate::views::env_backups::EnvBackupsPanel;
use crate::views::{input_checked, input_value};

pub const CONFLICT_TEXT: &str = "The .env file changed on the host since you opened it. Reload to \
    see the new file, then make your change again.";

#[derive(Properties, PartialEq, Debug)]
pub struct EnvProps {
    pub collector: AttrValue,
    pub host: AttrValue,
    pub app: AttrValue,
}

#[derive(Debug, Clone, PartialEq)]
enum Message {
    Saved(String),
    Conflict,
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Load {
    Loading,
    Failed(String),
    Ready(Box<EnvEditor>),
}

/// A change to the editor, applied to the latest state (never to a copy a callback captured).
type Edit = Box<dyn FnOnce(&mut Load)>;

#[derive(Debug, Clone, PartialEq)]
struct LoadState(Load);

impl Reducible for LoadState {
    type Action = Edit;

    fn reduce(self: Rc<Self>, edit: Edit) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        edit(&mut next.0);
        Rc::new(next)
    }
}

fn set_load(load: &UseReducerDispatcher<LoadState>, value: Load) {
    load.dispatch(Box::new(move |l| *l = value));
}

/// Applies `f` to the editor, if the file is loaded.
fn edit_with(load: &UseReducerDispatcher<LoadState>, f: impl FnOnce(&mut EnvEditor) + 'static) {
    load.dispatch(Box::new(move |l| {
        if let Load::Ready(ed) = l {
            f(ed);
        }
    }));
}

fn saved_text(saved: &EnvSaved, path: &str) -> String {
    let mut text = format!("Saved {path}.");
    if let Some(outcome) = &saved.restart {
        text.push_str(&format!(
            " Applied: {} — now {}.",
            outcome.result,
            outcome.status.state.as_str()
        ));
    }
    if let Some(e) = &saved.restart_error {
        text.push_str(&format!(" Not applied: {e}"));
    }
    text
}

#[function_component(EnvPanel)]
pub fn env_panel(props: &EnvProps) -> Html {
    let load = use_reducer(|| LoadState(Load::Loading));
    let reviewing = use_state(|| false);
    let restart = use_state(|| false);
    let saving = use_state(|| false);
    let message = use_state(|| None::<Message>);
    let new_key = use_state(String::new);
    let new_value = use_state(String::new);
    let add_error = use_state(|| None::<String>);
    let target = (
        props.collector.to_string(),
        props.host.to_string(),
        props.app.to_string(),
    );

    // Reads the file; `then` is the message to show once the new file is in (so a "Saved" never
    // shows over an editor that is about to be replaced).
    let reload = {
        let (load, reviewing, message) = (load.dispatcher(), reviewing.clone(), message.clone());
        let target = target.clone();
        Callback::from(move |then: Option<Message>| {
            let (load, reviewing, message) = (load.clone(), reviewing.clone(), message.clone());
            let (c, h, a) = target.clone();
            spawn_local(async move {
                match api::env_get(&c, &h, &a).await {
                    Ok(file) => {
                        set_load(&load, Load::Ready(Box::new(EnvEditor::new(file))));
                        reviewing.set(false);
                        message.set(then);
                    }
                    Err(e) => {
                        set_load(&load, Load::Failed(e.message));
                        message.set(then);
                    }
                }
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with((), move |_| reload.emit(None));
    }

    let editor = match &load.0 {
        Load::Loading => {
            return html! { <div id="env-table" class="muted">{ "Reading the .env file…" }</div> }
        }
        Load::Failed(e) => {
            return html! {
                <div class="env">
                    <p class="error-text" role="alert">{ format!("Could not read the .env file: {e}") }</p>
                    <button id="env-reload" class="btn small" onclick={reload.reform(|_| None)}>{ "Retry" }</button>
                </div>
            }
        }
        Load::Ready(ed) => ed.as_ref().clone(),
    };

    let dispatch = load.dispatcher();
    let on = |f: fn(&mut EnvEditor, &str), key: &str| {
        let (dispatch, key) = (dispatch.clone(), key.to_owned());
        Callback::from(move |_: MouseEvent| {
            let key = key.clone();
            edit_with(&dispatch, move |ed| f(ed, &key))
        })
    };

    let rows = editor.rows();
    let changes = editor.changes();
    let masked = |key: &str, value: &str| editor.shown(key, value);

    let table = html! {
        <table id="env-table" class="env-table">
            <thead><tr><th>{ "Key" }</th><th>{ "Value" }</th><th class="env-actions-h"><span class="sr-only">{ "Actions" }</span></th></tr></thead>
            <tbody>
            { for rows.iter().map(|r| {
                let key = r.key.clone();
                let deleted = r.current.is_none();
                let editing = editor.is_editing(&key) && !deleted;
                let revealed = editor.is_revealed(&key);
                let value = r.current.clone().or_else(|| r.original.clone()).unwrap_or_default();
                let on_input = {
                    let (dispatch, key) = (dispatch.clone(), key.clone());
                    Callback::from(move |e: InputEvent| {
                        let (v, key) = (input_value(&e), key.clone());
                        edit_with(&dispatch, move |ed| ed.set_value(&key, v))
                    })
                };
                html! {
                    <tr class={classes!("env-row", r.is_changed().then_some("changed"), deleted.then_some("deleted"), r.original.is_none().then_some("added"))}
                        data-key={key.clone()}>
                        <td class="env-key">{ key.clone() }</td>
                        <td>
                            if editing {
                                <input class="env-input" type="text" value={value.clone()} oninput={on_input}
                                    aria-label={format!("Value of {key}")} spellcheck="false" autocomplete="off" />
                            } else {
                                <span class={classes!("env-value", (!revealed).then_some("masked"))}>{ masked(&key, &value) }</span>
                            }
                        </td>
                        <td class="env-actions">
                            <button class="btn small env-reveal" aria-label={format!("{} {key}", if revealed { "Hide" } else { "Show" })}
                                onclick={on(EnvEditor::toggle_reveal, &key)}>{ if revealed { "Hide" } else { "Show" } }</button>
                            <button class="btn small env-edit" disabled={deleted}
                                onclick={on(EnvEditor::toggle_edit, &key)}>{ if editing { "Done" } else { "Edit" } }</button>
                            <button class="btn small env-delete"
                                onclick={on(EnvEditor::toggle_delete, &key)}>{ if deleted { "Undo" } else { "Delete" } }</button>
                        </td>
                    </tr>
                }
            }) }
            </tbody>
        </table>
    };

    let on_add = {
        let (new_key, new_value, add_error, dispatch) = (
            new_key.clone(),
            new_value.clone(),
            add_error.clone(),
            dispatch.clone(),
        );
        let editor = editor.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let mut probe = editor.clone();
            match probe.add(&new_key, (*new_value).clone()) {
                Ok(()) => {
                    let (k, v) = ((*new_key).clone(), (*new_value).clone());
                    edit_with(&dispatch, move |ed| {
                        // Checked on `probe` just above.
                        let _ = ed.add(&k, v);
                    });
                    new_key.set(String::new());
                    new_value.set(String::new());
                    add_error.set(None);
                }
                Err(msg) => add_error.set(Some(msg)),
            }
        })
    };

    let diff = html! {
        <div id="env-diff" class="env-diff" role="region" aria-label="Changes to save">
            <h3>{ format!("{} change{} to {}", changes.len(), if changes.len() == 1 { "" } else { "s" }, editor.file.path) }</h3>
            <ul>
            { for changes.iter().map(|c| match c {
                Change::Added { key, new } => html! {
                    <li class="diff-add"><span class="diff-sign">{ "+" }</span><b>{ key.clone() }</b>{ ": " }<code>{ masked(key, new) }</code>{ " (added)" }</li>
                },
                Change::Changed { key, old, new } => html! {
                    <li class="diff-change"><span class="diff-sign">{ "~" }</span><b>{ key.clone() }</b>{ ": " }<code>{ masked(key, old) }</code>{ " → " }<code>{ masked(key, new) }</code></li>
                },
                Change::Removed { key, old } => html! {
                    <li class="diff-remove"><span class="diff-sign">{ "−" }</span><b>{ key.clone() }</b>{ ": " }<code>{ masked(key, old) }</code>{ " (removed)" }</li>
                },
            }) }
            </ul>
        </div>
    };

    let on_save = {
        let (saving, message, reload, restart) = (
            saving.clone(),
            message.clone(),
            reload.clone(),
            restart.clone(),
        );
        let editor = editor.clone();
        let target = target.clone();
        Callback::from(move |_: MouseEvent| {
            let save = editor.to_save(*restart);
            let path = editor.file.path.clone();
            let (saving, message, reload) = (saving.clone(), message.clone(), reload.clone());
            let (c, h, a) = target.clone();
            saving.set(true);
            message.set(None);
            spawn_local(async move {
                let result = api::env_save(&c, &h, &a, &save).await;
                saving.set(false);
                match result {
                    Ok(saved) => reload.emit(Some(Message::Saved(saved_text(&saved, &path)))),
                    Err(CommandError { code, .. }) if code == "conflict" => {
                        message.set(Some(Message::Conflict))
                    }
                    Err(e) => message.set(Some(Message::Error(format!(
                        "Saving failed: {}",
                        e.message
                    )))),
                }
            });
        })
    };
    let start_review = {
        let (reviewing, message) = (reviewing.clone(), message.clone());
        Callback::from(move |_: MouseEvent| {
            reviewing.set(true);
            message.set(None);
        })
    };
    let back = {
        let reviewing = reviewing.clone();
        Callback::from(move |_: MouseEvent| reviewing.set(false))
    };
    let reveal_all = on(|ed, _| ed.toggle_reveal_all(), "");
    let has_changes = !changes.is_empty();

    html! {
        <div class="env">
            <div class="env-toolbar">
                <span class="muted env-path" title={format!("etag {}", editor.file.etag)}>{ editor.file.path.clone() }</span>
                <div class="spacer"></div>
                <button id="env-reveal-all" class="btn small" onclick={reveal_all}>
                    { if editor.reveal_all { "Hide all" } else { "Reveal all" } }
                </button>
                <button id="env-reload" class="btn small" onclick={reload.reform(|_| None)}
                    title="Read the file again (discards unsaved changes)">{ "Reload" }</button>
            </div>
            { table }
            <form class="env-add" onsubmit={on_add}>
                <input id="env-new-key" type="text" placeholder="NEW_KEY" aria-label="New key" spellcheck="false"
                    autocomplete="off" value={(*new_key).clone()}
                    oninput={{ let s = new_key.clone(); Callback::from(move |e: InputEvent| s.set(input_value(&e))) }} />
                <input id="env-new-value" type="text" placeholder="value" aria-label="New value" spellcheck="false"
                    autocomplete="off" value={(*new_value).clone()}
                    oninput={{ let s = new_value.clone(); Callback::from(move |e: InputEvent| s.set(input_value(&e))) }} />
                <button id="env-add" class="btn small" type="submit">{ "Add key" }</button>
                if let Some(e) = &*add_error { <span class="error-text" role="alert">{ e.clone() }</span> }
            </form>
            <div class="env-review">
                if *reviewing {
                    { diff }
                }
                <div class="env-save-row">
                    if *reviewing {
                        <button class="btn small" onclick={back}>{ "Back to editing" }</button>
                    } else {
                        <button id="env-review" class="btn" disabled={!has_changes} onclick={start_review}
                            title={if has_changes { "See what will change before saving" } else { "No changes yet" }}>
                            { if has_changes { format!("Review changes ({})", changes.len()) } else { "Review changes".to_owned() } }
                        </button>
                    }
                    <label class="check">
                        <input id="env-restart" type="checkbox" checked={*restart}
                            onchange={{ let r = restart.clone(); Callback::from(move |e: Event| r.set(input_checked(&e))) }} />
                        { "Apply after save" }
                    </label>
                    <button id="env-save" class="btn primary" disabled={!*reviewing || !has_changes || *saving} onclick={on_save}>
                        { if *saving { "Saving…" } else { "Save" } }
                    </button>
                </div>
            </div>
            <p id="env-message" class={classes!("env-message", match &*message {
                Some(Message::Saved(_)) => Some("ok-text"),
                Some(Message::Conflict | Message::Error(_)) => Some("error-text"),
                None => None,
            })} role="status">
                { match &*message {
                    None => String::new(),
                    Some(Message::Saved(t) | Message::Error(t)) => t.clone(),
                    Some(Message::Conflict) => CONFLICT_TEXT.to_owned(),
                } }
            </p>
            if rows.is_empty() {
                <p class="muted">{ "The file has no keys yet: add one above." }</p>
            }
            <EnvBackupsPanel collector={props.collector.clone()} host={props.host.clone()} app={props.app.clone()}
                current={editor.file.clone()} on_restored={reload.reform(|text: String| Some(Message::Saved(text)))} />
        </div>
    }
}

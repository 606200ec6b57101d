//! The command palette (Ctrl+K): type to find a view, host or app, arrows to move, Enter to open,
//! Escape to close. And the keyboard shortcuts' help (?).

use yew::prelude::*;

use crate::palette::{self, Entry};
use crate::state::Action;
use crate::views::{self, input_value};

#[derive(Properties, PartialEq, Debug)]
pub struct PaletteProps {
    pub on_close: Callback<()>,
}

#[function_component(Palette)]
pub fn palette_dialog(props: &PaletteProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let query = use_state(String::new);
    let chosen = use_state(|| 0usize);
    let input_ref = use_node_ref();
    {
        let input_ref = input_ref.clone();
        use_effect_with((), move |_| {
            if let Some(input) = input_ref.cast::<web_sys::HtmlElement>() {
                let _ = input.focus();
            }
        });
    }
    let all = palette::entries(&store);
    let hits: Vec<Entry> = palette::search(&all, &query).into_iter().cloned().collect();
    let chosen_i = (*chosen).min(hits.len().saturating_sub(1));
    let open = {
        let (dispatch, close) = (dispatch.clone(), props.on_close.clone());
        Callback::from(move |action: Action| {
            close.emit(());
            dispatch.dispatch(action);
        })
    };
    let oninput = {
        let (query, chosen) = (query.clone(), chosen.clone());
        Callback::from(move |e: InputEvent| {
            query.set(input_value(&e));
            chosen.set(0);
        })
    };
    let onkeydown = {
        let (chosen, open, close) = (chosen.clone(), open.clone(), props.on_close.clone());
        let hits = hits.clone();
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Escape" => {
                e.prevent_default();
                close.emit(());
            }
            "ArrowDown" => {
                e.prevent_default();
                chosen.set((chosen_i + 1).min(hits.len().saturating_sub(1)));
            }
            "ArrowUp" => {
                e.prevent_default();
                chosen.set(chosen_i.saturating_sub(1));
            }
            "Enter" => {
                e.prevent_default();
                if let Some(hit) = hits.get(chosen_i) {
                    open.emit(hit.action.clone());
                }
            }
            _ => {}
        })
    };
    let on_backdrop = {
        let close = props.on_close.clone();
        Callback::from(move |e: MouseEvent| {
            if e.target() == e.current_target() {
                close.emit(());
            }
        })
    };
    html! {
        <div class="backdrop palette-backdrop" onclick={on_backdrop}>
            <div id="palette" class="dialog palette" role="dialog" aria-modal="true" aria-label="Go to">
                <input id="palette-input" ref={input_ref} type="text" spellcheck="false" autocomplete="off"
                    placeholder="Go to a host, an app or a view…" value={(*query).clone()} {oninput} {onkeydown}
                    role="combobox" aria-controls="palette-list" aria-expanded="true" />
                <ul id="palette-list" role="listbox">
                    { for hits.iter().enumerate().map(|(i, hit)| {
                        let action = hit.action.clone();
                        let onclick = open.reform(move |_: MouseEvent| action.clone());
                        html! {
                            <li class={classes!("palette-item", (i == chosen_i).then_some("chosen"))}
                                role="option" aria-selected={(i == chosen_i).to_string()} {onclick}>
                                <span class="palette-label">{ hit.label.clone() }</span>
                                <span class="muted">{ hit.detail.clone() }</span>
                                <span class="palette-kind">{ hit.kind }</span>
                            </li>
                        }
                    }) }
                    if hits.is_empty() {
                        <li class="muted palette-empty">{ "Nothing matches." }</li>
                    }
                </ul>
            </div>
        </div>
    }
}

/// Every shortcut, as the help dialog lists them.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Ctrl+K", "Go to a host, an app or a view"),
    ("G then F", "Fleet"),
    ("G then L", "Logs: search many apps"),
    ("G then E", "Events"),
    ("G then A", "Alerts"),
    ("G then S", "Settings"),
    ("/", "Search the open app's log"),
    ("?", "This help"),
    ("Esc", "Close a dialog"),
];

#[function_component(ShortcutsHelp)]
pub fn shortcuts_help(props: &PaletteProps) -> Html {
    let close = props.on_close.clone();
    let onkeydown = {
        let close = close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" || e.key() == "?" {
                e.prevent_default();
                close.emit(());
            }
        })
    };
    let button_ref = use_node_ref();
    {
        let button_ref = button_ref.clone();
        use_effect_with((), move |_| {
            if let Some(b) = button_ref.cast::<web_sys::HtmlElement>() {
                let _ = b.focus();
            }
        });
    }
    html! {
        <div class="backdrop" onclick={close.reform(|_: MouseEvent| ())} {onkeydown}>
            <div id="shortcuts-help" class="dialog" role="dialog" aria-modal="true" aria-labelledby="shortcuts-title"
                onclick={Callback::from(|e: MouseEvent| e.stop_propagation())}>
                <h2 id="shortcuts-title">{ "Keyboard shortcuts" }</h2>
                <table class="shortcuts">
                    { for SHORTCUTS.iter().map(|(keys, what)| html! {
                        <tr><td><kbd>{ *keys }</kbd></td><td>{ *what }</td></tr>
                    }) }
                </table>
                <div class="dialog-buttons">
                    <button id="shortcuts-close" class="btn" ref={button_ref} onclick={close.reform(|_: MouseEvent| ())}>{ "Close" }</button>
                </div>
            </div>
        </div>
    }
}

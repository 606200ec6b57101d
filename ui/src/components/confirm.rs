//! A modal confirmation: Enter on "Yes" confirms, Escape or "No" cancels; focus starts on "No" so
//! a stray Enter does nothing harmful.

use yew::prelude::*;

#[derive(Properties, PartialEq, Debug)]
pub struct ConfirmProps {
    pub title: AttrValue,
    pub message: AttrValue,
    pub confirm_label: AttrValue,
    #[prop_or_default]
    pub danger: bool,
    pub on_confirm: Callback<()>,
    pub on_cancel: Callback<()>,
}

#[function_component(ConfirmDialog)]
pub fn confirm_dialog(props: &ConfirmProps) -> Html {
    let no_ref = use_node_ref();
    {
        let no_ref = no_ref.clone();
        use_effect_with((), move |_| {
            if let Some(button) = no_ref.cast::<web_sys::HtmlElement>() {
                // Focus is a nicety: failing to move it leaves the dialog usable by mouse.
                let _ = button.focus();
            }
        });
    }
    let onkeydown = {
        let cancel = props.on_cancel.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                e.prevent_default();
                cancel.emit(());
            }
        })
    };
    let on_backdrop = {
        let cancel = props.on_cancel.clone();
        Callback::from(move |e: MouseEvent| {
            // Only a click on the backdrop itself, not one bubbling from the dialog.
            if e.target() == e.current_target() {
                cancel.emit(());
            }
        })
    };
    let yes = props.on_confirm.reform(|_: MouseEvent| ());
    let no = props.on_cancel.reform(|_: MouseEvent| ());
    html! {
        <div class="backdrop" onclick={on_backdrop} {onkeydown}>
            <div id="confirm-dialog" class="dialog" role="dialog" aria-modal="true" aria-labelledby="confirm-title">
                <h2 id="confirm-title">{ props.title.clone() }</h2>
                <p>{ props.message.clone() }</p>
                <div class="dialog-buttons">
                    <button id="confirm-no" class="btn" ref={no_ref} onclick={no}>{ "Cancel" }</button>
                    <button id="confirm-yes" class={classes!("btn", if props.danger { "danger" } else { "primary" })} onclick={yes}>
                        { props.confirm_label.clone() }
                    </button>
                </div>
            </div>
        </div>
    }
}

//! An app's `.env` backups (the agent keeps one per write, the last three): each with its time and
//! size; "Compare" shows what restoring it would change, key by key with every value masked;
//! "Restore" writes it back through the same If-Match write as an edit (refused if the file
//! changed since it was shown), and the collector audits it.

use fleetdeck_proto::{EnvBackup, EnvFile};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::confirm::ConfirmDialog;
use crate::env_edit::{restore_changes, Change};
use crate::format;
use crate::views;

#[derive(Properties, PartialEq, Debug)]
pub struct BackupsProps {
    pub collector: AttrValue,
    pub host: AttrValue,
    pub app: AttrValue,
    /// The file as the window shows it: the restore is checked against its etag.
    pub current: EnvFile,
    /// After a restore (with what to say), the panel reads the file again.
    pub on_restored: Callback<String>,
}

#[function_component(EnvBackupsPanel)]
pub fn env_backups_panel(props: &BackupsProps) -> Html {
    let list = use_state(|| None::<Result<Vec<EnvBackup>, String>>);
    let compared = use_state(|| None::<(u32, Result<Vec<Change>, String>)>);
    let confirm = use_state(|| None::<u32>);
    let error = use_state(|| None::<String>);
    {
        let list = list.clone();
        let (c, h, a) = (
            props.collector.to_string(),
            props.host.to_string(),
            props.app.to_string(),
        );
        use_effect_with(props.current.etag.clone(), move |_| {
            spawn_local(async move {
                list.set(Some(
                    api::env_backups(&c, &h, &a)
                        .await
                        .map(|b| b.backups)
                        .map_err(|e| e.message),
                ));
            });
        });
    }
    let compare = {
        let compared = compared.clone();
        let current = props.current.clone();
        let (c, h, a) = (
            props.collector.to_string(),
            props.host.to_string(),
            props.app.to_string(),
        );
        Callback::from(move |n: u32| {
            let (compared, current, c, h, a) = (
                compared.clone(),
                current.clone(),
                c.clone(),
                h.clone(),
                a.clone(),
            );
            spawn_local(async move {
                let diff = api::env_backup(&c, &h, &a, n)
                    .await
                    .map(|backup| restore_changes(&current, &backup))
                    .map_err(|e| e.message);
                compared.set(Some((n, diff)));
            });
        })
    };
    let restore = {
        let (confirm, error, on_restored) =
            (confirm.clone(), error.clone(), props.on_restored.clone());
        let etag = props.current.etag.clone();
        let (c, h, a) = (
            props.collector.to_string(),
            props.host.to_string(),
            props.app.to_string(),
        );
        Callback::from(move |()| {
            let Some(n) = *confirm else { return };
            confirm.set(None);
            let (error, on_restored, etag, c, h, a) = (
                error.clone(),
                on_restored.clone(),
                etag.clone(),
                c.clone(),
                h.clone(),
                a.clone(),
            );
            spawn_local(async move {
                match api::env_restore(&c, &h, &a, n, &etag).await {
                    Ok(written) => on_restored.emit(format!(
                        "Restored backup {n} into {}.",
                        written.path
                    )),
                    Err(e) if e.code == "conflict" => error.set(Some(
                        "The .env file changed on the host since it was shown: reload it, then restore again."
                            .into(),
                    )),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let offset = views::tz_offset_min();
    html! {
        <div id="env-backups" class="env-backups">
            <h3>{ "Backups" }</h3>
            if let Some(e) = (*error).clone() {
                <p id="env-backups-error" class="error-text" role="alert">{ e }</p>
            }
            { match &*list {
                None => html! { <p class="muted">{ "Reading the backups…" }</p> },
                Some(Err(e)) => html! { <p class="error-text">{ e.clone() }</p> },
                Some(Ok(list)) if list.is_empty() => html! { <p class="muted">{ "No backup yet: the agent keeps one at each save." }</p> },
                Some(Ok(list)) => html! {
                    <table class="table">
                        <thead><tr><th>{ "#" }</th><th>{ "Written" }</th><th>{ "Size" }</th><th></th></tr></thead>
                        <tbody>
                            { for list.iter().map(|b| {
                                let n = b.n;
                                let same = b.etag == props.current.etag;
                                html! {
                                    <tr class="backup-row" data-n={n.to_string()}>
                                        <td>{ n }</td>
                                        <td>{ format::date_time(b.modified_unix_ms, offset) }</td>
                                        <td>{ format::bytes(b.size_bytes as f64) }</td>
                                        <td class="env-actions">
                                            <button class="btn small backup-compare" onclick={compare.reform(move |_: MouseEvent| n)}>{ "Compare" }</button>
                                            <button class="btn small backup-restore" disabled={same}
                                                title={if same { "The file is this backup already" } else { "Write this backup back" }}
                                                onclick={{ let c = confirm.clone(); move |_| c.set(Some(n)) }}>{ "Restore" }</button>
                                        </td>
                                    </tr>
                                }
                            }) }
                        </tbody>
                    </table>
                },
            } }
            if let Some((n, diff)) = (*compared).clone() {
                <div id="backup-diff" class="env-diff" role="region" aria-label={format!("Restoring backup {n}")}>
                    <p class="muted">{ format!("Restoring backup {n} would change:") }</p>
                    { match diff {
                        Err(e) => html! { <p class="error-text">{ e }</p> },
                        Ok(changes) if changes.is_empty() => html! { <p class="muted">{ "Nothing: the values are the same." }</p> },
                        Ok(changes) => changes.iter().map(|c| {
                            let (class, text) = match c {
                                Change::Added { key, .. } => ("added", format!("+ {key}")),
                                Change::Changed { key, .. } => ("changed", format!("~ {key} (value differs)")),
                                Change::Removed { key, .. } => ("removed", format!("- {key}")),
                            };
                            html! { <div class={classes!("diff-line", class)}>{ text }</div> }
                        }).collect::<Html>(),
                    } }
                </div>
            }
            if let Some(n) = *confirm {
                <ConfirmDialog title={format!("Restore backup {n}?")}
                    message={format!("The .env of {} on {} becomes backup {n} as it was; the current file is kept as backup 1.", props.app, props.host)}
                    confirm_label="Restore" danger=true on_confirm={restore}
                    on_cancel={{ let c = confirm.clone(); Callback::from(move |()| c.set(None)) }} />
            }
        </div>
    }
}

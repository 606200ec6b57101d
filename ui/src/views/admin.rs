//! Administration of the selected collector (its key must be an admin's): the API keys (list,
//! create with a role, the new key shown once with a copy button, revoke) and the audit log
//! (filter by key, action, target and time; paging back).

use fleetdeck_proto::desktop::AuditQuery;
use fleetdeck_proto::{AuditEntry, KeyCreated, KeyInfo, Role};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::confirm::ConfirmDialog;
use crate::format;
use crate::views::{self, input_value};

/// Audit entries per page.
const AUDIT_PAGE: u32 = 100;

#[function_component(AdminView)]
pub fn admin_view() -> Html {
    let store = views::use_store();
    let Some(collector) = store.selected.clone() else {
        return html! {};
    };
    html! {
        <section id="admin-view" class="view">
            <header class="view-head"><h1>{ "Admin" }</h1>
                <span class="muted">{ format!("collector {collector}: needs an admin key") }</span></header>
            <KeysPanel collector={collector.clone()} />
            <AuditPanel {collector} />
        </section>
    }
}

#[derive(Properties, PartialEq, Debug)]
pub struct CollectorProps {
    pub collector: AttrValue,
}

/// Copies text to the clipboard through the page's `navigator.clipboard`.
fn copy_to_clipboard(text: &str) -> Result<(), String> {
    let get = |target: &JsValue, name: &str| {
        js_sys::Reflect::get(target, &JsValue::from_str(name))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    };
    let window: JsValue = js_sys::global().into();
    let clipboard = get(&window, "navigator")
        .and_then(|n| get(&n, "clipboard"))
        .ok_or("no clipboard here: select the key and copy it")?;
    let write: js_sys::Function = get(&clipboard, "writeText")
        .ok_or("no clipboard here: select the key and copy it")?
        .into();
    write
        .call1(&clipboard, &JsValue::from_str(text))
        .map(|_| ())
        .map_err(|_| "the clipboard refused: select the key and copy it".to_owned())
}

#[function_component(KeysPanel)]
fn keys_panel(props: &CollectorProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let keys = use_state(|| None::<Result<Vec<KeyInfo>, String>>);
    let reload = use_state(|| 0u32);
    let name = use_state(String::new);
    let role = use_state(|| Role::Viewer);
    let created = use_state(|| None::<KeyCreated>);
    let copied = use_state(|| None::<String>);
    let revoking = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let error = use_state(|| None::<String>);
    {
        let (keys, collector) = (keys.clone(), props.collector.to_string());
        use_effect_with((collector.clone(), *reload), move |_| {
            spawn_local(async move {
                keys.set(Some(
                    api::keys_list(&collector).await.map_err(|e| e.message),
                ));
            });
        });
    }
    let on_create = {
        let (name, role, created, copied, busy, error, reload) = (
            name.clone(),
            role.clone(),
            created.clone(),
            copied.clone(),
            busy.clone(),
            error.clone(),
            reload.clone(),
        );
        let collector = props.collector.to_string();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (name, role, created, copied, busy, error, reload, collector) = (
                name.clone(),
                role.clone(),
                created.clone(),
                copied.clone(),
                busy.clone(),
                error.clone(),
                reload.clone(),
                collector.clone(),
            );
            busy.set(true);
            spawn_local(async move {
                match api::key_create(&collector, name.trim(), *role).await {
                    Ok(key) => {
                        created.set(Some(key));
                        copied.set(None);
                        error.set(None);
                        name.set(String::new());
                        reload.set(*reload + 1);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    let on_revoke = {
        let (revoking, reload, error) = (revoking.clone(), reload.clone(), error.clone());
        let collector = props.collector.to_string();
        let dispatch = dispatch.clone();
        Callback::from(move |()| {
            let Some(target) = (*revoking).clone() else {
                return;
            };
            revoking.set(None);
            let (reload, error, collector, dispatch) = (
                reload.clone(),
                error.clone(),
                collector.clone(),
                dispatch.clone(),
            );
            spawn_local(async move {
                match api::key_delete(&collector, &target).await {
                    Ok(()) => {
                        dispatch.dispatch(crate::state::Action::Notice(format!(
                            "Key {target} revoked: the collector refuses it from now on."
                        )));
                        reload.set(*reload + 1);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let on_copy = {
        let (created, copied) = (created.clone(), copied.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(k) = &*created {
                copied.set(Some(match copy_to_clipboard(&k.key) {
                    Ok(()) => "Copied.".to_owned(),
                    Err(e) => e,
                }));
            }
        })
    };
    let on_name = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| name.set(input_value(&e)))
    };
    let on_role = {
        let role = role.clone();
        Callback::from(move |e: Event| {
            role.set(match input_value(&e).as_str() {
                "admin" => Role::Admin,
                "operator" => Role::Operator,
                _ => Role::Viewer,
            })
        })
    };
    let now = views::now_ms();
    let offset = views::tz_offset_min();
    html! {
        <div id="keys-panel">
            <h2>{ "API keys" }</h2>
            <form id="key-form" class="search-form" onsubmit={on_create}>
                <input id="key-name" type="text" placeholder="name (e.g. alice-laptop)" aria-label="Key name"
                    value={(*name).clone()} oninput={on_name} />
                <select id="key-role" aria-label="Role" onchange={on_role}>
                    { for [Role::Viewer, Role::Operator, Role::Admin].into_iter().map(|r| html! {
                        <option value={r.as_str()} selected={*role == r}>{ r.as_str() }</option>
                    }) }
                </select>
                <button id="key-create" class="btn primary" type="submit" disabled={*busy || name.trim().is_empty()}>{ "Create key" }</button>
            </form>
            if let Some(e) = (*error).clone() {
                <p id="key-error" class="error-text" role="alert">{ e }</p>
            }
            if let Some(k) = (*created).clone() {
                <div id="key-created" class="welcome" role="status">
                    <p>{ format!("Key {} ({}): copy it now, it is not shown again.", k.name, k.role.as_str()) }</p>
                    <input id="key-created-value" type="text" readonly=true value={k.key.clone()} aria-label="The new key" />
                    <button id="key-copy" class="btn small" onclick={on_copy}>{ "Copy" }</button>
                    <button id="key-created-done" class="btn small" onclick={{ let c = created.clone(); move |_| c.set(None) }}>{ "Done" }</button>
                    if let Some(m) = (*copied).clone() { <span class="muted">{ format!(" {m}") }</span> }
                </div>
            }
            { match &*keys {
                None => html! { <p class="muted">{ "Loading…" }</p> },
                Some(Err(e)) => html! { <p id="keys-error" class="error-text">{ e.clone() }</p> },
                Some(Ok(list)) => html! {
                    <table id="keys" class="table">
                        <thead><tr><th>{ "Name" }</th><th>{ "Role" }</th><th>{ "Created" }</th><th>{ "Last used" }</th><th></th></tr></thead>
                        <tbody>
                            { for list.iter().map(|k| {
                                let name = k.name.clone();
                                let ask = { let r = revoking.clone(); move |_: MouseEvent| r.set(Some(name.clone())) };
                                html! {
                                    <tr class="key-row" data-name={k.name.clone()}>
                                        <td>{ k.name.clone() }</td>
                                        <td>{ k.role.as_str() }</td>
                                        <td>{ format::date_time(k.created_unix_ms, offset) }</td>
                                        <td>{ k.last_used_unix_ms.map_or_else(|| "never".to_owned(), |t| format::ago(now, t)) }</td>
                                        <td><button class="btn small danger-outline key-revoke" onclick={ask}>{ "Revoke" }</button></td>
                                    </tr>
                                }
                            }) }
                        </tbody>
                    </table>
                },
            } }
            if let Some(target) = (*revoking).clone() {
                <ConfirmDialog title={format!("Revoke key {target}?")}
                    message={format!("Whoever uses {target} is refused from now on, and its open streams end. This cannot be undone.")}
                    confirm_label="Revoke" danger=true on_confirm={on_revoke}
                    on_cancel={{ let r = revoking.clone(); Callback::from(move |()| r.set(None)) }} />
            }
        </div>
    }
}

/// Parses a `datetime-local` field (local time) into Unix ms.
fn local_ms(value: &str) -> Option<u64> {
    let t = js_sys::Date::new(&value.into()).get_time();
    (t.is_finite() && t > 0.0).then_some(t as u64)
}

#[function_component(AuditPanel)]
fn audit_panel(props: &CollectorProps) -> Html {
    let query = use_state(AuditQuery::default);
    let draft = use_state(AuditQuery::default);
    let entries = use_state(Vec::<AuditEntry>::new);
    let next = use_state(|| None::<i64>);
    let error = use_state(|| None::<String>);
    let loading = use_state(|| false);
    let load = {
        let (entries, next, error, loading) = (
            entries.clone(),
            next.clone(),
            error.clone(),
            loading.clone(),
        );
        let collector = props.collector.to_string();
        move |query: AuditQuery, append: bool| {
            let (entries, next, error, loading, collector) = (
                entries.clone(),
                next.clone(),
                error.clone(),
                loading.clone(),
                collector.clone(),
            );
            loading.set(true);
            spawn_local(async move {
                match api::audit(&collector, &query).await {
                    Ok(page) => {
                        let mut all = if append {
                            (*entries).clone()
                        } else {
                            Vec::new()
                        };
                        all.extend(page.entries);
                        entries.set(all);
                        next.set(page.next_before);
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                loading.set(false);
            });
        }
    };
    {
        let load = load.clone();
        use_effect_with(
            ((*query).clone(), props.collector.clone()),
            move |(q, _)| {
                load(
                    AuditQuery {
                        limit: Some(AUDIT_PAGE),
                        ..q.clone()
                    },
                    false,
                );
            },
        );
    }
    let field = |set: fn(&mut AuditQuery, String)| {
        let draft = draft.clone();
        Callback::from(move |e: Event| {
            let mut d = (*draft).clone();
            set(&mut d, input_value(&e));
            draft.set(d);
        })
    };
    let on_apply = {
        let (draft, query) = (draft.clone(), query.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            query.set((*draft).clone());
        })
    };
    let on_older = {
        let (query, next, load) = (query.clone(), next.clone(), load.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(before) = *next {
                load(
                    AuditQuery {
                        before: Some(before),
                        limit: Some(AUDIT_PAGE),
                        ..(*query).clone()
                    },
                    true,
                );
            }
        })
    };
    let offset = views::tz_offset_min();
    html! {
        <div id="audit-panel">
            <h2>{ "Audit log" }</h2>
            <form id="audit-form" class="search-form" onsubmit={on_apply}>
                <input id="audit-key" type="text" placeholder="key name" aria-label="Key"
                    onchange={field(|q, v| q.key = Some(v).filter(|v| !v.trim().is_empty()))} />
                <input id="audit-action" type="text" list="audit-actions" placeholder="action (e.g. key. or env.write)" aria-label="Action"
                    onchange={field(|q, v| q.action = Some(v).filter(|v| !v.trim().is_empty()))} />
                <datalist id="audit-actions">
                    { for ["key.", "env.", "app.", "silence.", "alert.", "env.write", "env.read", "key.create", "key.delete"].iter().map(|a| html! { <option value={*a} /> }) }
                </datalist>
                <input id="audit-target" type="text" placeholder="target (e.g. web-1/api)" aria-label="Target"
                    onchange={field(|q, v| q.target = Some(v).filter(|v| !v.trim().is_empty()))} />
                <input id="audit-since" type="datetime-local" aria-label="From" onchange={field(|q, v| q.since_ms = local_ms(&v))} />
                <input id="audit-until" type="datetime-local" aria-label="To" onchange={field(|q, v| q.until_ms = local_ms(&v))} />
                <button id="audit-apply" class="btn" type="submit">{ "Filter" }</button>
            </form>
            if let Some(e) = (*error).clone() {
                <p id="audit-error" class="error-text" role="alert">{ e }</p>
            }
            <table id="audit" class="table">
                <thead><tr><th>{ "When" }</th><th>{ "Key" }</th><th>{ "Action" }</th><th>{ "Target" }</th><th>{ "Result" }</th></tr></thead>
                <tbody>
                    { for entries.iter().map(|e| html! {
                        <tr class="audit-row" data-action={e.action.clone()} data-target={e.target.clone()} data-key={e.key_name.clone()}>
                            <td class="nowrap">{ format::date_time(e.at_unix_ms, offset) }</td>
                            <td>{ e.key_name.clone() }</td>
                            <td>{ e.action.clone() }</td>
                            <td>{ e.target.clone() }</td>
                            <td>{ e.result.clone() }</td>
                        </tr>
                    }) }
                </tbody>
            </table>
            if entries.is_empty() && !*loading && error.is_none() {
                <p class="muted">{ "No entry matches." }</p>
            }
            <div class="search-foot">
                <button id="audit-older" class="btn small" disabled={next.is_none() || *loading} onclick={on_older}>{ "Older" }</button>
            </div>
        </div>
    }
}

//! One app: its status in detail, 30-day uptime, start/stop/restart (confirmed), and the Logs and
//! `.env` tabs.

use fleetdeck_proto::{AppAction, AppKind, AppView, Uptime};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::components::confirm::ConfirmDialog;
use crate::components::silence::SilenceMenu;
use crate::components::status::{app_class, degraded_badge, Badge};
use crate::components::uptime::UptimeBar;
use crate::format;
use crate::root::refresh_fleet;
use crate::state::{Action, Route};
use crate::views::app_health::{AppCharts, ChecksPanel, LastCrash};
use crate::views::search::{LogContext, LogSearch};
use crate::views::Reform;
use crate::views::{self, env::EnvPanel, logs::LogsPanel};

#[derive(Properties, PartialEq, Debug)]
pub struct AppProps {
    pub host: AttrValue,
    pub app: AttrValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Logs,
    Search,
    Env,
}

/// What an action's result line says.
#[derive(Debug, Clone, PartialEq)]
enum ActionResult {
    Running(AppAction),
    Done(String),
    Failed(String),
}

#[function_component(AppPage)]
pub fn app_page(props: &AppProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let collector = store.selected.clone().unwrap_or_default();
    let tab = use_state(|| Tab::Logs);
    let confirm = use_state(|| None::<AppAction>);
    let result = use_state(|| None::<ActionResult>);
    let uptime = use_state(|| None::<Result<Uptime, String>>);

    {
        let uptime = uptime.clone();
        let (collector, host, app) = (
            collector.clone(),
            props.host.to_string(),
            props.app.to_string(),
        );
        use_effect_with((), move |_| {
            spawn_local(async move {
                let answer = api::uptime(&collector, &host, &app, 30).await;
                uptime.set(Some(answer.map_err(|e| e.message)));
            });
        });
    }

    let run_action = {
        let (confirm, result, dispatch) = (confirm.clone(), result.clone(), dispatch.clone());
        let (collector, host, app) = (
            collector.clone(),
            props.host.to_string(),
            props.app.to_string(),
        );
        Callback::from(move |_: ()| {
            let Some(action) = *confirm else { return };
            confirm.set(None);
            result.set(Some(ActionResult::Running(action)));
            let (result, dispatch) = (result.clone(), dispatch.clone());
            let (collector, host, app) = (collector.clone(), host.clone(), app.clone());
            spawn_local(async move {
                match api::action(&collector, &host, &app, action).await {
                    Ok(outcome) => result.set(Some(ActionResult::Done(format!(
                        "{}: {} — now {}",
                        outcome.action.as_str(),
                        outcome.result,
                        outcome.status.state.as_str()
                    )))),
                    Err(e) => result.set(Some(ActionResult::Failed(format!(
                        "{} failed: {}",
                        action.as_str(),
                        e.message
                    )))),
                }
                refresh_fleet(dispatch, collector, false);
            });
        })
    };
    let cancel = {
        let confirm = confirm.clone();
        Callback::from(move |_: ()| confirm.set(None))
    };

    let view = store.app(&props.host, &props.app).cloned();
    let busy = matches!(*result, Some(ActionResult::Running(_)));
    let action_button = |action: AppAction, id: &'static str, label: &'static str| {
        let confirm = confirm.clone();
        html! {
            <button {id} class={classes!("btn", (action == AppAction::Stop).then_some("danger-outline"))}
                disabled={busy} onclick={move |_| confirm.set(Some(action))}>{ label }</button>
        }
    };
    let set_tab = |t: Tab| {
        let tab = tab.clone();
        Callback::from(move |_: MouseEvent| tab.set(t))
    };
    let tab_button = |t: Tab, id: &'static str, label: &'static str| {
        let selected = *tab == t;
        html! {
            <button {id} role="tab" class={classes!("tab", selected.then_some("current"))}
                aria-selected={selected.to_string()} onclick={set_tab(t)}>{ label }</button>
        }
    };
    let host = props.host.clone();
    let app = props.app.clone();
    let silenced = {
        let result = result.clone();
        Callback::from(move |what: String| result.set(Some(ActionResult::Done(what))))
    };

    html! {
        <section id="app-view" class="view" data-host={host.clone()} data-app={app.clone()}>
            <nav class="crumbs" aria-label="Breadcrumb">
                <button class="link" onclick={dispatch.reform(|_| Action::Navigate(Route::Fleet))}>{ "Fleet" }</button>
                <span>{ " / " }</span>
                <button class="link" onclick={{ let h = host.to_string(); dispatch.reform(move |_| Action::Navigate(Route::Host(h.clone()))) }}>{ host.clone() }</button>
                <span>{ " / " }</span><span>{ app.clone() }</span>
            </nav>
            <header class="view-head">
                <h1>{ app.clone() }</h1>
                { status_badge(view.as_ref()) }
                <div class="spacer"></div>
                <div class="actions" role="group" aria-label="Actions">
                    { action_button(AppAction::Start, "action-start", "Start") }
                    { action_button(AppAction::Stop, "action-stop", "Stop") }
                    { action_button(AppAction::Restart, "action-restart", "Restart") }
                    <SilenceMenu collector={collector.clone()} host={host.clone()} app={Some(app.clone())}
                        class="app-silence" ondone={silenced} />
                </div>
            </header>
            <p id="action-result" class={classes!("action-result", match &*result {
                Some(ActionResult::Failed(_)) => Some("error-text"),
                _ => None,
            })} role="status">{ match &*result {
                None => String::new(),
                Some(ActionResult::Running(a)) => format!("{}…", a.as_str()),
                Some(ActionResult::Done(s) | ActionResult::Failed(s)) => s.clone(),
            } }</p>
            { details(view.as_ref()) }
            <ChecksPanel checks={view.as_ref().map(|v| v.status.checks.clone()).unwrap_or_default()} />
            <LastCrash collector={collector.clone()} host={host.clone()} app={app.clone()}
                generation={view.as_ref().map(|v| format!("{}:{:?}", v.status.state.as_str(), v.status.restarts)).unwrap_or_default()} />
            <AppCharts collector={collector.clone()} host={host.clone()} app={app.clone()} />
            <UptimeBar uptime={uptime.as_ref().and_then(|u| u.as_ref().ok()).cloned()} now_ms={views::now_ms()}
                error={uptime.as_ref().and_then(|u| u.as_ref().err()).map(|e| AttrValue::from(e.clone()))} />
            <div class="tabs" role="tablist">
                { tab_button(Tab::Logs, "tab-logs", "Logs") }
                { tab_button(Tab::Search, "tab-search", "Search history") }
                { tab_button(Tab::Env, "tab-env", ".env") }
            </div>
            <div class="tab-panel" role="tabpanel">
                { match *tab {
                    Tab::Logs => html! {
                        <>
                            if let Some(anchor) = store.log_anchor.clone().filter(|a| a.collector == collector.as_str() && a.host == host.as_str() && a.app == app.as_str()) {
                                <LogContext {anchor} />
                            }
                            <LogsPanel collector={collector.clone()} host={host.clone()} app={app.clone()} />
                        </>
                    },
                    Tab::Search => html! { <LogSearch scope={Some((host.clone(), app.clone()))} /> },
                    Tab::Env => html! { <EnvPanel collector={collector.clone()} host={host.clone()} app={app.clone()} /> },
                } }
            </div>
            if let Some(action) = *confirm {
                <ConfirmDialog
                    title={format!("{} {app}?", capitalized(action))}
                    message={format!("This will {} {app} on {host} now.", action.as_str())}
                    confirm_label={capitalized(action)}
                    danger={action != AppAction::Start}
                    on_confirm={run_action}
                    on_cancel={cancel} />
            }
        </section>
    }
}

fn capitalized(action: AppAction) -> String {
    match action {
        AppAction::Start => "Start",
        AppAction::Stop => "Stop",
        AppAction::Restart => "Restart",
        AppAction::Apply => "Apply",
    }
    .to_owned()
}

fn status_badge(view: Option<&AppView>) -> Html {
    match view {
        Some(v) => {
            let state = v.status.state;
            html! {
                <>
                    <Badge tone={app_class(&v.status)} text={state.as_str()} id="app-state" />
                    { degraded_badge(&v.status, "app-degraded") }
                </>
            }
        }
        None => {
            html! { <Badge tone="off" text="…" id="app-state" title="Waiting for the fleet" /> }
        }
    }
}

fn details(view: Option<&AppView>) -> Html {
    let now = views::now_ms();
    let (exit, restarts, since, kind, extra) = match view {
        None => (
            "–".to_owned(),
            "–".to_owned(),
            ("–".to_owned(), String::new()),
            String::new(),
            None,
        ),
        Some(v) => {
            let s = &v.status;
            let since_ms = s.since_unix_ms.unwrap_or(v.state_since_unix_ms);
            (
                format::exit(s.last_exit),
                s.restarts.map_or_else(|| "–".to_owned(), |r| r.to_string()),
                (
                    format::ago(now, since_ms),
                    format::date_time(since_ms, views::tz_offset_min()),
                ),
                format!(
                    "{} {}",
                    match s.kind {
                        AppKind::Systemd => "systemd unit",
                        AppKind::Docker => "container",
                    },
                    s.target
                ),
                s.error.clone(),
            )
        }
    };
    html! {
        <dl class="facts">
            <div><dt>{ "Last exit" }</dt><dd id="app-exit">{ exit }</dd></div>
            <div><dt>{ "Restarts" }</dt><dd id="app-restarts">{ restarts }</dd></div>
            <div><dt>{ "In this state since" }</dt><dd id="app-since" title={since.1}>{ since.0 }</dd></div>
            <div><dt>{ "Runs as" }</dt><dd>{ kind }</dd></div>
            if let Some(e) = extra {
                <div class="wide"><dt>{ "Error" }</dt><dd class="error-text">{ e }</dd></div>
            }
        </dl>
    }
}

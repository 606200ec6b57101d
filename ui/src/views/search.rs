//! Log search on the collector's agents: the Logs view (any hosts and apps) and an app's own
//! "Search" tab (that app only). A text or regular expression, a time range and a level; each
//! app's answer is merged in as it arrives (newest first, host and app on each line), each app's
//! progress and errors shown; "Older" pages back, "Follow" looks for new matches every few seconds,
//! and a line opens its app's log around it.

use std::cell::RefCell;
use std::rc::Rc;

use fleetdeck_proto::desktop::LogSearchQuery;
use gloo_timers::callback::Interval;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::format;
use crate::search::{Range, SearchResults, TargetState};
use crate::state::{Action, LogAnchor};
use crate::views::{self, input_value, Reform};

/// Lines asked of each app per page.
const PER_APP: u32 = 100;
/// How often a followed search looks for new matches.
const FOLLOW_MS: u32 = 5_000;
/// Lines rendered at most (the newest).
const SHOWN: usize = 500;

#[derive(Properties, PartialEq, Debug)]
pub struct SearchProps {
    /// Only this host's app (an app's own Search tab); `None`: the Logs view's pickers.
    #[prop_or_default]
    pub scope: Option<(AttrValue, AttrValue)>,
}

/// What the form holds.
#[derive(Debug, Clone, PartialEq)]
struct Form {
    grep: String,
    range: Range,
    priority: String,
    hosts: Vec<String>,
    apps: Vec<String>,
}

impl Default for Form {
    fn default() -> Self {
        Self {
            grep: String::new(),
            range: Range::Last(60),
            priority: String::new(),
            hosts: Vec::new(),
            apps: Vec::new(),
        }
    }
}

/// Parses a `datetime-local` field (local time) into Unix ms.
fn local_ms(value: &str) -> Option<u64> {
    let t = js_sys::Date::new(&value.into()).get_time();
    (t.is_finite() && t > 0.0).then_some(t as u64)
}

fn selected_options(e: &Event) -> Vec<String> {
    use wasm_bindgen::JsCast;
    let Some(select) = e
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok())
    else {
        return Vec::new();
    };
    let options = select.selected_options();
    (0..options.length())
        .filter_map(|i| options.item(i))
        .filter_map(|o| o.get_attribute("value"))
        .collect()
}

#[function_component(LogSearch)]
pub fn log_search(props: &SearchProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let form = use_state(Form::default);
    let results = use_state(|| Rc::new(RefCell::new(SearchResults::default())));
    // Bumped on every event, so the view renders what the shared results hold.
    let version = use_state(|| 0u64);
    let running = use_state(|| false);
    // The same, for the follow's timer (a state handle it holds would be stale).
    let busy = use_mut_ref(|| false);
    let follow = use_state(|| false);
    let error = use_state(|| None::<String>);
    let custom = use_state(|| (String::new(), String::new()));
    let Some(collector) = store.selected.clone() else {
        return html! { <p class="muted">{ "No collector is selected." }</p> };
    };
    let fleet = store.fleets.get(&collector).cloned();

    // One search (or page, or follow look) into the shared results.
    let run = {
        let (results, version, running, busy, error, dispatch) = (
            results.clone(),
            version.clone(),
            running.clone(),
            busy.clone(),
            error.clone(),
            dispatch.clone(),
        );
        let collector = collector.clone();
        Rc::new(move |query: LogSearchQuery, fresh: bool| {
            if fresh {
                *results.borrow_mut() = SearchResults::default();
            }
            let (results, version, running, busy, error, dispatch, collector) = (
                (*results).clone(),
                version.clone(),
                running.clone(),
                busy.clone(),
                error.clone(),
                dispatch.clone(),
                collector.clone(),
            );
            running.set(true);
            *busy.borrow_mut() = true;
            error.set(None);
            spawn_local(async move {
                let seen = Rc::new(std::cell::Cell::new(*version));
                let on_event = {
                    let (results, version, seen) = (results.clone(), version.clone(), seen.clone());
                    move |event| match event {
                        Ok(event) => {
                            results.borrow_mut().apply(event);
                            seen.set(seen.get() + 1);
                            version.set(seen.get());
                        }
                        Err(e) => views::fail(&dispatch, "Reading a log search's answer", e),
                    }
                };
                if let Err(e) = api::logs_search(&collector, &query, on_event).await {
                    error.set(Some(e.message));
                }
                *busy.borrow_mut() = false;
                running.set(false);
            });
        })
    };

    let query_for = {
        let scope = props.scope.clone();
        move |form: &Form, since: Option<u64>, until: Option<u64>| {
            let (hosts, apps) = match &scope {
                Some((h, a)) => (vec![h.to_string()], vec![a.to_string()]),
                None => (form.hosts.clone(), form.apps.clone()),
            };
            LogSearchQuery {
                hosts,
                apps,
                grep: Some(form.grep.trim().to_owned()).filter(|g| !g.is_empty()),
                priority: Some(form.priority.clone()).filter(|p| !p.is_empty()),
                since_ms: since,
                until_ms: until,
                limit: Some(PER_APP),
            }
        }
    };

    let on_submit = {
        let (form, run, query_for, error) =
            (form.clone(), run.clone(), query_for.clone(), error.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (since, until) = form.range.bounds(views::now_ms());
            if matches!(form.range, Range::Between(..)) && until.is_some_and(|u| u <= since) {
                error.set(Some("The range's end must be after its start.".into()));
                return;
            }
            run(query_for(&form, Some(since), until), true);
        })
    };

    // Following: every FOLLOW_MS, the lines after the newest shown.
    {
        let (run, query_for, results, busy) = (
            run.clone(),
            query_for.clone(),
            results.clone(),
            busy.clone(),
        );
        use_effect_with((*follow, (*form).clone()), move |(on, form)| {
            let form = form.clone();
            let timer = on.then(|| {
                Interval::new(FOLLOW_MS, move || {
                    if *busy.borrow() {
                        return;
                    }
                    let since = results
                        .borrow()
                        .newer_since_ms()
                        .unwrap_or_else(|| form.range.bounds(views::now_ms()).0);
                    run(query_for(&form, Some(since), None), false);
                })
            });
            move || drop(timer)
        });
    }

    let on_older = {
        let (form, run, query_for, results) = (
            form.clone(),
            run.clone(),
            query_for.clone(),
            results.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let until = results.borrow().older_until_ms();
            let (since, _) = form.range.bounds(views::now_ms());
            if let Some(until) = until {
                run(query_for(&form, Some(since), Some(until)), false);
            }
        })
    };

    let set = |f: fn(&mut Form, String)| {
        let form = form.clone();
        Callback::from(move |e: Event| {
            let mut next = (*form).clone();
            f(&mut next, input_value(&e));
            form.set(next);
        })
    };
    let on_grep = {
        let form = form.clone();
        Callback::from(move |e: InputEvent| {
            let mut next = (*form).clone();
            next.grep = input_value(&e);
            form.set(next);
        })
    };
    let on_range = {
        let (form, custom) = (form.clone(), custom.clone());
        Callback::from(move |e: Event| {
            let mut next = (*form).clone();
            let value = input_value(&e);
            next.range = match value.parse::<u64>() {
                Ok(minutes) => Range::Last(minutes),
                Err(_) => {
                    let now = views::now_ms();
                    let from = local_ms(&custom.0).unwrap_or(now - 3_600_000);
                    let to = local_ms(&custom.1).unwrap_or(now);
                    Range::Between(from, to)
                }
            };
            form.set(next);
        })
    };
    let on_custom = |end: bool| {
        let (form, custom) = (form.clone(), custom.clone());
        Callback::from(move |e: Event| {
            let value = input_value(&e);
            let mut pair = (*custom).clone();
            if end {
                pair.1 = value;
            } else {
                pair.0 = value;
            }
            let now = views::now_ms();
            let from = local_ms(&pair.0).unwrap_or(now - 3_600_000);
            let to = local_ms(&pair.1).unwrap_or(now);
            let mut next = (*form).clone();
            next.range = Range::Between(from, to);
            form.set(next);
            custom.set(pair);
        })
    };
    let on_hosts = {
        let form = form.clone();
        Callback::from(move |e: Event| {
            let mut next = (*form).clone();
            next.hosts = selected_options(&e);
            form.set(next);
        })
    };
    let on_apps = {
        let form = form.clone();
        Callback::from(move |e: Event| {
            let mut next = (*form).clone();
            next.apps = selected_options(&e);
            form.set(next);
        })
    };
    let on_follow = {
        let follow = follow.clone();
        Callback::from(move |e: Event| follow.set(views::input_checked(&e)))
    };

    let held = results.borrow();
    let _ = *version; // renders follow the results' changes
    let offset = views::tz_offset_min();
    let custom_range = matches!(form.range, Range::Between(..));
    let hosts: Vec<String> = fleet
        .iter()
        .flat_map(|f| f.hosts.iter().map(|h| h.name.clone()))
        .collect();
    let mut app_names: Vec<String> = fleet
        .iter()
        .flat_map(|f| f.hosts.iter())
        .filter(|h| form.hosts.is_empty() || form.hosts.contains(&h.name))
        .flat_map(|h| h.apps.iter().map(|a| a.status.name.clone()))
        .collect();
    app_names.sort();
    app_names.dedup();
    let status = if *running {
        format!(
            "Searching… {} of {} apps answered",
            held.targets.len() - held.searching(),
            held.targets.len()
        )
    } else if held.targets.is_empty() {
        String::new()
    } else {
        format!(
            "{} lines from {} apps{}",
            held.lines().len(),
            held.targets.len() - held.failed(),
            match held.failed() {
                0 => String::new(),
                n => format!(", {n} failed"),
            }
        )
    };

    html! {
        <div class="log-search">
            <form id="search-form" class="search-form" onsubmit={on_submit}>
                <input id="search-query" type="search" placeholder="Text or regular expression"
                    aria-label="Search for" spellcheck="false" value={form.grep.clone()} oninput={on_grep} />
                <select id="search-range" aria-label="Time range" onchange={on_range}>
                    { for Range::PRESETS.iter().map(|(minutes, label)| html! {
                        <option value={minutes.to_string()} selected={form.range == Range::Last(*minutes)}>{ *label }</option>
                    }) }
                    <option value="custom" selected={custom_range}>{ "From … to …" }</option>
                </select>
                if custom_range {
                    <input id="search-from" type="datetime-local" aria-label="From" value={custom.0.clone()} onchange={on_custom(false)} />
                    <input id="search-to" type="datetime-local" aria-label="To" value={custom.1.clone()} onchange={on_custom(true)} />
                }
                <select id="search-level" aria-label="Level" onchange={set(|f, v| f.priority = v)}>
                    <option value="" selected={form.priority.is_empty()}>{ "All levels" }</option>
                    <option value="info" selected={form.priority == "info"}>{ "Info and above" }</option>
                    <option value="warning" selected={form.priority == "warning"}>{ "Warnings and errors" }</option>
                    <option value="err" selected={form.priority == "err"}>{ "Errors only" }</option>
                </select>
                if props.scope.is_none() {
                    <select id="search-hosts" multiple=true size="3" aria-label="Hosts (none selected: all)" title="Hosts (none selected: all)" onchange={on_hosts}>
                        { for hosts.iter().map(|h| html! {
                            <option value={h.clone()} selected={form.hosts.contains(h)}>{ h.clone() }</option>
                        }) }
                    </select>
                    <select id="search-apps" multiple=true size="3" aria-label="Apps (none selected: all)" title="Apps (none selected: all)" onchange={on_apps}>
                        { for app_names.iter().map(|a| html! {
                            <option value={a.clone()} selected={form.apps.contains(a)}>{ a.clone() }</option>
                        }) }
                    </select>
                }
                <button id="search-run" class="btn primary" type="submit" disabled={*running}>{ "Search" }</button>
                <label class="check">
                    <input id="search-follow" type="checkbox" checked={*follow} onchange={on_follow} />
                    <span>{ "Follow" }</span>
                </label>
            </form>
            if let Some(e) = (*error).clone() {
                <p id="search-error" class="error-text" role="alert">{ e }</p>
            }
            <div id="search-progress" class="search-progress" role="status">
                <span class="muted">{ status }</span>
                { for held.targets.iter().map(|((host, app), state)| {
                    let (class, text, title) = match state {
                        TargetState::Searching => ("searching", "…".to_owned(), "searching".to_owned()),
                        TargetState::Done { lines, .. } => ("done", lines.to_string(), format!("{lines} lines")),
                        TargetState::Failed(why) => ("failed", "✕".to_owned(), why.clone()),
                    };
                    html! {
                        <span class={classes!("target", class)} data-host={host.clone()} data-app={app.clone()}
                            title={format!("{app} on {host}: {title}")}>
                            { format!("{host}/{app} ") }<b>{ text }</b>
                        </span>
                    }
                }) }
            </div>
            <div id="search-results" class="log-lines search-lines" role="log" aria-label="Matching lines">
                if held.done && held.lines().is_empty() && !*running {
                    <p class="muted empty-lines">{ "No line matches." }</p>
                }
                { for held.lines().iter().take(SHOWN).map(|l| {
                    let e = &l.entry;
                    let anchor = LogAnchor {
                        collector: collector.clone(),
                        host: l.host.clone(),
                        app: l.app.clone(),
                        unix_us: e.unix_us,
                        cursor: e.cursor.clone(),
                    };
                    let open = dispatch.reform(move |_: MouseEvent| Action::OpenLogAt(anchor.clone()));
                    html! {
                        <div key={format!("{}\u{1f}{}\u{1f}{}", l.host, l.app, e.cursor)}
                            class={classes!("log-line", "found", matches!(e.priority, Some(p) if p <= 3).then_some("err"))}
                            data-host={l.host.clone()} data-app={l.app.clone()} title="Open this app's log around this line"
                            onclick={open}>
                            <span class="log-time">{ format::log_time(e.unix_us, offset) }</span>
                            <span class="log-where">{ format!("{} · {}", l.host, l.app) }</span>
                            <span class="log-msg">{ e.message.clone() }</span>
                        </div>
                    }
                }) }
            </div>
            <div class="search-foot">
                <button id="search-older" class="btn small" disabled={*running || !held.more()} onclick={on_older}
                    title="The next older lines of each app that has more">{ "Older" }</button>
                if held.lines().len() > SHOWN {
                    <span class="muted">{ format!("showing the newest {SHOWN} of {}", held.lines().len()) }</span>
                }
            </div>
        </div>
    }
}

/// The Logs view: a search over the selected collector's hosts and apps.
#[function_component(LogsView)]
pub fn logs_view() -> Html {
    html! {
        <section id="logs-view" class="view">
            <header class="view-head"><h1>{ "Logs" }</h1></header>
            <LogSearch />
        </section>
    }
}

/// How many lines around a search result its context shows, and how far after it it looks.
const CONTEXT_LINES: u32 = 60;
const CONTEXT_AFTER_MS: u64 = 30_000;

#[derive(Properties, PartialEq, Debug)]
pub struct ContextProps {
    pub anchor: LogAnchor,
}

/// A search result in its app's log: the lines written up to 30 s after it and before it, the
/// line itself marked and scrolled to.
#[function_component(LogContext)]
pub fn log_context(props: &ContextProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let lines = use_state(|| None::<Result<Vec<fleetdeck_proto::LogEntry>, String>>);
    let marked = use_node_ref();
    {
        let lines = lines.clone();
        use_effect_with(props.anchor.clone(), move |a| {
            let a = a.clone();
            lines.set(None);
            spawn_local(async move {
                let query = fleetdeck_proto::desktop::LogQuery {
                    limit: Some(CONTEXT_LINES),
                    until_ms: Some(a.unix_us / 1_000 + CONTEXT_AFTER_MS),
                    ..Default::default()
                };
                let page = api::logs_page(&a.collector, &a.host, &a.app, &query).await;
                lines.set(Some(
                    page.map(|p| p.entries.into_iter().rev().collect())
                        .map_err(|e| e.message),
                ));
            });
        });
    }
    {
        let marked = marked.clone();
        use_effect(move || {
            if let Some(el) = marked.cast::<web_sys::Element>() {
                el.scroll_into_view_with_bool(false);
            }
        });
    }
    let offset = views::tz_offset_min();
    let close = dispatch.reform(|_: MouseEvent| Action::CloseLogAnchor);
    html! {
        <div id="log-context" class="log-context">
            <div class="log-toolbar">
                <span>{ format!("Around {} (a search result)", format::log_time(props.anchor.unix_us, offset)) }</span>
                <button id="log-context-close" class="btn small" onclick={close}>{ "Close" }</button>
            </div>
            <div class="log-lines context-lines" role="log" aria-label="Lines around the search result">
                { match &*lines {
                    None => html! { <p class="muted empty-lines">{ "Loading…" }</p> },
                    Some(Err(e)) => html! { <p class="error-text">{ e.clone() }</p> },
                    Some(Ok(entries)) => entries.iter().map(|e| {
                        let here = e.cursor == props.anchor.cursor;
                        html! {
                            <div class={classes!("log-line", here.then_some("anchor"))}
                                id={here.then_some("log-anchor")} ref={if here { marked.clone() } else { NodeRef::default() }}>
                                <span class="log-time">{ format::log_time(e.unix_us, offset) }</span>
                                <span class="log-level">{ format::level(e.priority) }</span>
                                <span class="log-msg">{ e.message.clone() }</span>
                            </div>
                        }
                    }).collect::<Html>(),
                } }
            </div>
        </div>
    }
}

//! An app's log: the newest page, then a live follow over a Tauri channel; follow/pause, search,
//! level filter and "load older". Lines from the channel are batched and handed to the state at
//! most every [`FLUSH_MS`], and only a window of the newest matching lines is rendered, so hundreds
//! of lines a second stay smooth.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use fleetdeck_proto::desktop::{LogFeed, LogQuery};
use fleetdeck_proto::LogEntry;
use gloo_timers::callback::Interval;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::api;
use crate::format;
use crate::logbuf::{LevelFilter, LogKey, LOG_CAP, LOG_PAGE, LOG_WINDOW};
use crate::state::Action;
use crate::views::Reform;
use crate::views::{self, input_value};

/// How often lines that arrived on the channel are handed to the view.
const FLUSH_MS: u32 = 50;

#[derive(Properties, PartialEq, Debug)]
pub struct LogsProps {
    pub collector: AttrValue,
    pub host: AttrValue,
    pub app: AttrValue,
}

#[function_component(LogsPanel)]
pub fn logs_panel(props: &LogsProps) -> Html {
    let store = views::use_store();
    let dispatch = store.dispatcher();
    let key = LogKey {
        collector: props.collector.to_string(),
        host: props.host.to_string(),
        app: props.app.to_string(),
    };
    let follow = use_mut_ref(|| None::<api::LogFollow>);
    let timer = use_mut_ref(|| None::<Interval>);
    let lines_ref = use_node_ref();

    {
        let dispatch = dispatch.clone();
        use_effect_with(key.clone(), move |key| {
            let key = key.clone();
            let alive = Rc::new(Cell::new(true));
            // Lines from the channel wait here, then go out in batches (after the first page).
            let pending = Rc::new(RefCell::new(Vec::<LogEntry>::new()));
            let ready = Rc::new(Cell::new(false));
            dispatch.dispatch(Action::LogsOpen(key.clone()));
            {
                let (pending, ready, dispatch, key) = (
                    pending.clone(),
                    ready.clone(),
                    dispatch.clone(),
                    key.clone(),
                );
                *timer.borrow_mut() = Some(Interval::new(FLUSH_MS, move || {
                    if ready.get() && !pending.borrow().is_empty() {
                        let entries = std::mem::take(&mut *pending.borrow_mut());
                        dispatch.dispatch(Action::LogsLines {
                            key: key.clone(),
                            entries,
                        });
                    }
                }));
            }
            {
                let (alive, follow) = (alive.clone(), follow.clone());
                spawn_local(async move {
                    let what = format!("Following the log of {}", key.app);
                    let on_feed = {
                        let (pending, dispatch, key, what) =
                            (pending.clone(), dispatch.clone(), key.clone(), what.clone());
                        move |feed: Result<LogFeed, _>| match feed {
                            Ok(LogFeed::Lines { entries }) => {
                                let mut p = pending.borrow_mut();
                                p.extend(entries);
                                let over = p.len().saturating_sub(LOG_CAP);
                                p.drain(..over);
                            }
                            Ok(LogFeed::Interrupted { message }) => {
                                dispatch.dispatch(Action::LogsInterrupted {
                                    key: key.clone(),
                                    message: Some(message),
                                })
                            }
                            Ok(LogFeed::Resumed) => dispatch.dispatch(Action::LogsInterrupted {
                                key: key.clone(),
                                message: None,
                            }),
                            Ok(LogFeed::Stopped { message }) => {
                                dispatch.dispatch(Action::LogsStopped {
                                    key: key.clone(),
                                    message,
                                })
                            }
                            Err(e) => views::fail(&dispatch, what.clone(), e),
                        }
                    };
                    // The newest page first, then the follow from its newest line on: the
                    // backend resumes right after that cursor, so no line is missed or doubled.
                    let query = LogQuery {
                        limit: Some(LOG_PAGE),
                        ..LogQuery::default()
                    };
                    let page = api::logs_page(&key.collector, &key.host, &key.app, &query).await;
                    let newest_first = match page {
                        Ok(page) => page.entries,
                        Err(e) => {
                            views::fail(&dispatch, format!("Reading the log of {}", key.app), e);
                            Vec::new()
                        }
                    };
                    if !alive.get() {
                        return;
                    }
                    let after = newest_first.first().map(|e| e.cursor.clone());
                    dispatch.dispatch(Action::LogsInitial {
                        key: key.clone(),
                        newest_first,
                        asked: LOG_PAGE,
                    });
                    ready.set(true);
                    let follow_result = api::logs_follow(
                        &key.collector,
                        &key.host,
                        &key.app,
                        after.as_deref(),
                        on_feed,
                    )
                    .await;
                    match follow_result {
                        Ok(f) if alive.get() => *follow.borrow_mut() = Some(f),
                        // Dropping a follow the view no longer wants stops it.
                        Ok(_) => {}
                        Err(e) => views::fail(&dispatch, what, e),
                    }
                });
            }
            move || {
                alive.set(false);
                drop(timer.borrow_mut().take());
                drop(follow.borrow_mut().take());
            }
        });
    }

    let logs = &store.logs;
    let following = logs.following();
    {
        // While following, keep the newest line in sight; paused, the view does not move.
        let lines_ref = lines_ref.clone();
        use_effect(move || {
            if following {
                if let Some(el) = lines_ref.cast::<web_sys::Element>() {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
    }

    let on_follow = dispatch.reform(|_: MouseEvent| Action::LogsToggleFollow);
    let on_search = dispatch.reform(|e: InputEvent| Action::LogsSearch(input_value(&e)));
    let on_level =
        dispatch.reform(|e: Event| Action::LogsLevel(LevelFilter::parse(&input_value(&e))));
    let on_older = {
        let dispatch = dispatch.clone();
        let key = key.clone();
        let cursor = logs.oldest_cursor().map(str::to_owned);
        Callback::from(move |_: MouseEvent| {
            let Some(before) = cursor.clone() else { return };
            dispatch.dispatch(Action::LogsOlderRequested);
            let (dispatch, key) = (dispatch.clone(), key.clone());
            spawn_local(async move {
                let query = LogQuery {
                    before: Some(before),
                    limit: Some(LOG_PAGE),
                    ..LogQuery::default()
                };
                match api::logs_page(&key.collector, &key.host, &key.app, &query).await {
                    Ok(page) => dispatch.dispatch(Action::LogsOlder {
                        key,
                        newest_first: page.entries,
                        asked: LOG_PAGE,
                    }),
                    Err(e) => {
                        dispatch.dispatch(Action::LogsOlderFailed);
                        views::fail(&dispatch, format!("Reading older lines of {}", key.app), e);
                    }
                }
            });
        })
    };

    let in_sync = logs.key.as_ref() == Some(&key);
    let window = if in_sync {
        logs.window(LOG_WINDOW)
    } else {
        Vec::new()
    };
    let matching = if in_sync { logs.matching_count() } else { 0 };
    let new_lines = logs.new_since_pause();
    let older_disabled = !in_sync
        || logs.loading_older
        || logs.at_start
        || logs.full
        || logs.oldest_cursor().is_none();
    let older_title = if logs.full {
        format!("The view holds at most {LOG_CAP} lines")
    } else if logs.at_start {
        "No older lines".to_owned()
    } else {
        format!("Load {LOG_PAGE} older lines (pauses the follow)")
    };
    let offset = views::tz_offset_min();
    let filtered = !logs.search.trim().is_empty() || logs.level != LevelFilter::All;
    let status = if !in_sync || !logs.loaded {
        "Loading…".to_owned()
    } else if matching > window.len() {
        format!("newest {} of {matching} matching lines", window.len())
    } else if filtered {
        format!("{matching} of {} lines match", logs.len())
    } else {
        format!("{} lines", logs.len())
    };

    html! {
        <div class="logs">
            <div class="log-toolbar">
                <button id="log-follow" class={classes!("btn", "small", if following { "following" } else { "paused" })}
                    aria-pressed={following.to_string()} onclick={on_follow}
                    title={if following { "Pause: keep the view where it is" } else { "Follow the newest lines" }}>
                    { if following {
                        "❚❚ Pause".to_owned()
                    } else if new_lines > 0 {
                        format!("▶ Follow ({new_lines} new)")
                    } else {
                        "▶ Follow".to_owned()
                    } }
                </button>
                <input id="log-search" type="search" placeholder="Search lines" aria-label="Search lines"
                    value={logs.search.clone()} oninput={on_search} />
                <select id="log-level" aria-label="Level" onchange={on_level}>
                    { for LevelFilter::ALL.into_iter().map(|l| html! {
                        <option value={l.as_str()} selected={logs.level == l}>{ l.label() }</option>
                    }) }
                </select>
                <button id="log-older" class="btn small" disabled={older_disabled} title={older_title} onclick={on_older}>
                    { if logs.loading_older { "Loading…" } else { "Load older" } }
                </button>
                <span class="muted log-status">{ status }</span>
            </div>
            if let Some(reason) = logs.interrupted.clone().filter(|_| in_sync) {
                <p class="notice warn" role="status">{ format!("The follow is interrupted ({reason}); retrying without losing lines…") }</p>
            }
            if let Some(reason) = logs.stopped.clone().filter(|_| in_sync) {
                <p class="notice warn" role="status">{ format!("The follow stopped: {reason} Open the app again to retry.") }</p>
            }
            <div id="log-lines" class="log-lines" ref={lines_ref} role="log" tabindex="0" aria-label="Log lines">
                if in_sync && logs.loaded && window.is_empty() {
                    <p class="muted empty-lines">{ if filtered { "No line matches." } else { "No lines yet." } }</p>
                }
                { for window.iter().map(|l| {
                    let e = &l.entry;
                    let level = match (format::level(e.priority), e.stream) {
                        ("", Some(fleetdeck_proto::LogStream::Stderr)) => "stderr",
                        (lvl, _) => lvl,
                    };
                    html! {
                        <div key={l.seq} class={classes!("log-line", l.is_error().then_some("err"), l.is_warning().then_some("warn"))}>
                            <span class="log-time">{ format::log_time(e.unix_us, offset) }</span>
                            <span class="log-level">{ level }</span>
                            <span class="log-msg">{ e.message.clone() }{ if e.truncated { " [cut]" } else { "" } }</span>
                        </div>
                    }
                }) }
            </div>
        </div>
    }
}

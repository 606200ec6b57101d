//! The typed commands the webview calls. Each is a thin adapter: it finds the collector's client
//! and calls the core crate; errors reach the UI as `CommandError { code, message }`.

use std::time::Duration;

use fleetdeck_desktop_core::CollectorClient;
use fleetdeck_proto::desktop::{
    AuditQuery, CollectorInfo, CommandError, DesktopSettings, EnvSave, EnvSaved, EventFilter,
    FirstPaint, LogFeed, LogQuery, LogSearchQuery, MetricsRange, NewCollector, SettingsChange,
    TrayState,
};
use fleetdeck_proto::{
    ActionOutcome, AlertPage, AlertRecord, AppAction, AppMetrics, AuditPage, EnvBackups, EnvFile,
    EnvUpdate, EnvWritten, EventsPage, Fleet, HostView, KeyCreated, KeyInfo, LogEntry, LogPage,
    LogSearchEvent, Metrics, NewSilence, Role, Silence, Uptime,
};
use futures_util::StreamExt;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, State};

use crate::backend::Backend;
use crate::hub;

type Result<T> = std::result::Result<T, CommandError>;

pub fn handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        list_collectors,
        add_collector,
        remove_collector,
        fleet,
        host,
        metrics,
        app_metrics,
        uptime,
        events,
        logs_page,
        logs_follow,
        logs_search,
        logs_stop,
        env_get,
        env_save,
        env_backups,
        env_backup,
        env_restore,
        action,
        alerts,
        alert_ack,
        silences,
        silence_add,
        silence_remove,
        settings,
        set_dnd,
        update_settings,
        keys_list,
        key_create,
        key_delete,
        audit,
        tray_state,
        first_paint,
    ]
}

#[tauri::command(rename_all = "snake_case")]
fn list_collectors(backend: State<'_, Backend>) -> Vec<CollectorInfo> {
    backend.collectors()
}

#[tauri::command(rename_all = "snake_case")]
async fn add_collector(
    app: AppHandle,
    backend: State<'_, Backend>,
    new: NewCollector,
) -> Result<CollectorInfo> {
    let info = backend.add_collector(new, false).await?;
    hub::collectors_changed(&app, &backend, &info);
    Ok(info)
}

#[tauri::command(rename_all = "snake_case")]
async fn remove_collector(app: AppHandle, backend: State<'_, Backend>, name: String) -> Result<()> {
    backend.remove_collector(&name).await?;
    hub::refresh_tray(&app, &backend);
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
async fn fleet(backend: State<'_, Backend>, collector: String) -> Result<Fleet> {
    backend.client(&collector)?.fleet().await
}

#[tauri::command(rename_all = "snake_case")]
async fn host(backend: State<'_, Backend>, collector: String, host: String) -> Result<HostView> {
    backend.client(&collector)?.host(&host).await
}

#[tauri::command(rename_all = "snake_case")]
async fn metrics(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    range: MetricsRange,
) -> Result<Metrics> {
    backend.client(&collector)?.metrics(&host, range).await
}

#[tauri::command(rename_all = "snake_case")]
async fn app_metrics(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    from: String,
    to: String,
    step: String,
) -> Result<AppMetrics> {
    backend
        .client(&collector)?
        .app_metrics(&host, &app, &from, &to, &step)
        .await
}

#[tauri::command(rename_all = "snake_case")]
async fn uptime(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    days: u32,
) -> Result<Uptime> {
    backend.client(&collector)?.uptime(&host, &app, days).await
}

#[tauri::command(rename_all = "snake_case")]
async fn events(
    backend: State<'_, Backend>,
    collector: String,
    filter: EventFilter,
) -> Result<EventsPage> {
    backend.client(&collector)?.events(&filter).await
}

#[tauri::command(rename_all = "snake_case")]
async fn logs_page(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    query: LogQuery,
) -> Result<LogPage> {
    backend
        .client(&collector)?
        .logs_page(&host, &app, &query)
        .await
}

/// Most lines sent to the webview in one message; lines waiting are sent together so a busy app
/// costs a few messages a second, not one per line.
const MAX_BATCH: usize = 1_000;
/// How long lines that follow a first one are gathered into its message: a busy app's lines
/// reach the view at most this late, in a few messages a second rather than one per line (each
/// message is a script the webview parses and a render: at one per line, a chatty app's follow
/// kept the web process ~30 MiB larger).
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// Searches many apps' logs at once: each app's lines (or error) go to `on_event` as its agent
/// answers; returns when every app has (`done` was sent), or with the search's error.
#[tauri::command(rename_all = "snake_case")]
async fn logs_search(
    backend: State<'_, Backend>,
    collector: String,
    query: LogSearchQuery,
    on_event: Channel<LogSearchEvent>,
) -> Result<()> {
    let client = backend.client(&collector)?;
    let mut events = std::pin::pin!(client.logs_search(&query).await?);
    while let Some(event) = events.next().await {
        if on_event.send(event?).is_err() {
            return Ok(()); // the view went away: dropping the stream ends the search
        }
    }
    Ok(())
}

/// Follows an app's logs into `on_feed` until `logs_stop` or the webview goes away. `after` is
/// the cursor of the newest line the view already has, so none is missed or shown twice.
#[tauri::command(rename_all = "snake_case")]
fn logs_follow(
    handle: AppHandle,
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    after: Option<String>,
    on_feed: Channel<LogFeed>,
) -> Result<u64> {
    let client = backend.client(&collector)?;
    let id = backend.next_follow_id();
    let task = tauri::async_runtime::spawn(async move {
        follow_logs(client, host, app, after, on_feed).await;
        // Ended by itself (the view went away or the follow stopped): forget its handle.
        if let Some(backend) = handle.try_state::<Backend>() {
            backend
                .follows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    });
    backend
        .follows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, task);
    Ok(id)
}

async fn follow_logs(
    client: CollectorClient,
    host: String,
    app: String,
    mut after: Option<String>,
    feed: Channel<LogFeed>,
) {
    let mut backoff = Duration::from_millis(500);
    let mut interrupted = false;
    loop {
        match client.logs_follow(&host, &app, after.clone()).await {
            Ok(stream) => {
                if interrupted && feed.send(LogFeed::Resumed).is_err() {
                    return;
                }
                backoff = Duration::from_millis(500);
                let mut stream = std::pin::pin!(stream);
                let error = loop {
                    let Some(first) = stream.next().await else {
                        break CommandError::new("unreachable", "the log stream ended");
                    };
                    let mut batch: Vec<LogEntry> = Vec::new();
                    let mut failed = None;
                    let mut item = Some(first);
                    let gathered_until = tokio::time::Instant::now() + BATCH_WINDOW;
                    while let Some(next) = item.take() {
                        match next {
                            Ok(entry) => batch.push(entry),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                        if batch.len() >= MAX_BATCH {
                            break;
                        }
                        // What else comes within the window joins the batch; an ended stream must
                        // not be polled again (it would panic), so its end is an error like any
                        // other.
                        match tokio::time::timeout_at(gathered_until, stream.next()).await {
                            Ok(Some(next)) => item = Some(next),
                            Ok(None) => {
                                failed =
                                    Some(CommandError::new("unreachable", "the log stream ended"));
                            }
                            Err(_) => {}
                        }
                    }
                    if let Some(last) = batch.last() {
                        after = Some(last.cursor.clone());
                    }
                    if !batch.is_empty() && feed.send(LogFeed::Lines { entries: batch }).is_err() {
                        return;
                    }
                    if let Some(e) = failed {
                        break e;
                    }
                };
                if feed
                    .send(LogFeed::Interrupted {
                        message: error.message,
                    })
                    .is_err()
                {
                    return;
                }
                interrupted = true;
            }
            Err(e) => {
                if matches!(e.code.as_str(), "not_found" | "forbidden" | "unauthorized") {
                    let _ = feed.send(LogFeed::Stopped { message: e.message });
                    return;
                }
                if !interrupted {
                    interrupted = true;
                    if feed
                        .send(LogFeed::Interrupted { message: e.message })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

#[tauri::command(rename_all = "snake_case")]
fn logs_stop(backend: State<'_, Backend>, id: u64) {
    if let Some(task) = backend
        .follows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id)
    {
        task.abort();
    }
}

#[tauri::command(rename_all = "snake_case")]
async fn env_get(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
) -> Result<EnvFile> {
    backend.client(&collector)?.env_get(&host, &app).await
}

#[tauri::command(rename_all = "snake_case")]
async fn env_save(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    save: EnvSave,
) -> Result<EnvSaved> {
    let client = backend.client(&collector)?;
    let update = EnvUpdate {
        set: save.set,
        unset: save.unset,
        raw: None,
    };
    let written = client.env_put(&host, &app, &save.etag, &update).await?;
    let (restart, restart_error) = if save.restart {
        // Not a plain restart: a container keeps the environment it was created with.
        match client.action(&host, &app, AppAction::Apply).await {
            Ok(outcome) => (Some(outcome), None),
            Err(e) => (None, Some(e.message)),
        }
    } else {
        (None, None)
    };
    Ok(EnvSaved {
        written,
        restart,
        restart_error,
    })
}

#[tauri::command(rename_all = "snake_case")]
async fn env_backups(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
) -> Result<EnvBackups> {
    backend.client(&collector)?.env_backups(&host, &app).await
}

#[tauri::command(rename_all = "snake_case")]
async fn env_backup(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    n: u32,
) -> Result<EnvFile> {
    backend.client(&collector)?.env_backup(&host, &app, n).await
}

/// Puts backup `n` back if the file is still at `etag` (the version the window shows).
#[tauri::command(rename_all = "snake_case")]
async fn env_restore(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    n: u32,
    etag: String,
) -> Result<EnvWritten> {
    let written = backend
        .client(&collector)?
        .env_restore(&host, &app, n, &etag)
        .await?;
    tracing::info!(collector = %collector, host = %host, app = %app, backup = n, "env file restored from a backup");
    Ok(written)
}

#[tauri::command(rename_all = "snake_case")]
async fn action(
    backend: State<'_, Backend>,
    collector: String,
    host: String,
    app: String,
    action: AppAction,
) -> Result<ActionOutcome> {
    backend
        .client(&collector)?
        .action(&host, &app, action)
        .await
}

/// The collector's alerts, open ones first (`state`: open, acknowledged or resolved; none: all).
#[tauri::command(rename_all = "snake_case")]
async fn alerts(
    backend: State<'_, Backend>,
    collector: String,
    state: Option<String>,
) -> Result<AlertPage> {
    backend
        .client(&collector)?
        .alerts(state.as_deref(), 200)
        .await
}

#[tauri::command(rename_all = "snake_case")]
async fn alert_ack(
    backend: State<'_, Backend>,
    collector: String,
    id: i64,
    note: Option<String>,
) -> Result<AlertRecord> {
    backend.client(&collector)?.ack(id, note).await
}

#[tauri::command(rename_all = "snake_case")]
async fn silences(backend: State<'_, Backend>, collector: String) -> Result<Vec<Silence>> {
    let silences = backend.client(&collector)?.silences().await?;
    backend
        .notifier
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .set_silences(&collector, silences.clone());
    Ok(silences)
}

/// Makes a silence; notifications respect it from this moment, not from the next fleet read.
#[tauri::command(rename_all = "snake_case")]
async fn silence_add(
    backend: State<'_, Backend>,
    collector: String,
    new: NewSilence,
) -> Result<Silence> {
    let silence = backend.client(&collector)?.silence(&new).await?;
    backend
        .notifier
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add_silence(&collector, silence.clone());
    Ok(silence)
}

#[tauri::command(rename_all = "snake_case")]
async fn silence_remove(
    backend: State<'_, Backend>,
    collector: String,
    id: i64,
) -> Result<Silence> {
    let silence = backend.client(&collector)?.unsilence(id).await?;
    backend
        .notifier
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove_silence(&collector, id);
    Ok(silence)
}

#[tauri::command(rename_all = "snake_case")]
async fn keys_list(backend: State<'_, Backend>, collector: String) -> Result<Vec<KeyInfo>> {
    backend.client(&collector)?.keys().await
}

/// Makes an API key; the answer (the key, shown once) goes to the window and nowhere else.
#[tauri::command(rename_all = "snake_case")]
async fn key_create(
    backend: State<'_, Backend>,
    collector: String,
    name: String,
    role: Role,
) -> Result<KeyCreated> {
    let created = backend.client(&collector)?.create_key(&name, role).await?;
    tracing::info!(collector = %collector, key = %created.name, role = created.role.as_str(), "API key created");
    Ok(created)
}

#[tauri::command(rename_all = "snake_case")]
async fn key_delete(backend: State<'_, Backend>, collector: String, name: String) -> Result<()> {
    backend.client(&collector)?.delete_key(&name).await?;
    tracing::info!(collector = %collector, key = %name, "API key revoked");
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
async fn audit(
    backend: State<'_, Backend>,
    collector: String,
    query: AuditQuery,
) -> Result<AuditPage> {
    backend.client(&collector)?.audit(&query).await
}

/// Whether the OS starts Fleetdeck at login (false when its autostart entry cannot be read).
fn autostart_enabled(app: &AppHandle) -> bool {
    use tauri_plugin_autostart::ManagerExt;
    app.autolaunch().is_enabled().unwrap_or(false)
}

#[tauri::command(rename_all = "snake_case")]
fn settings(app: AppHandle, backend: State<'_, Backend>) -> DesktopSettings {
    backend.settings(autostart_enabled(&app))
}

#[tauri::command(rename_all = "snake_case")]
fn set_dnd(app: AppHandle, backend: State<'_, Backend>, dnd: bool) -> Result<DesktopSettings> {
    backend.set_dnd(dnd, autostart_enabled(&app))
}

#[tauri::command(rename_all = "snake_case")]
fn update_settings(
    app: AppHandle,
    backend: State<'_, Backend>,
    change: SettingsChange,
) -> Result<DesktopSettings> {
    if let Some(on) = change.autostart {
        use tauri_plugin_autostart::ManagerExt;
        let launcher = app.autolaunch();
        let done = if on {
            launcher.enable()
        } else {
            launcher.disable()
        };
        done.map_err(|e| {
            CommandError::new(
                "autostart",
                format!(
                    "Cannot {} starting Fleetdeck at login: {e}. Check that your user's autostart \
                     folder (or registry key) can be written.",
                    if on { "turn on" } else { "turn off" }
                ),
            )
        })?;
        tracing::info!(on, "start at login changed");
    }
    backend.update_settings(change, autostart_enabled(&app))
}

#[tauri::command(rename_all = "snake_case")]
fn tray_state(backend: State<'_, Backend>) -> TrayState {
    backend.tray_state()
}

/// The UI painted its first fleet: with `FLEETDECK_BENCH_STARTUP` set, print how long the start
/// took and the memory in use (scripts/bench-desktop.sh reads it).
#[tauri::command(rename_all = "snake_case")]
fn first_paint(backend: State<'_, Backend>, paint: FirstPaint) {
    if backend.first_paint() && std::env::var_os("FLEETDECK_BENCH_STARTUP").is_some() {
        use std::io::Write;
        let ms = backend.started.elapsed().as_secs_f64() * 1000.0;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "first-paint ms={ms:.1} hosts={}", paint.hosts);
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The quoted names that follow each `marker` in `text` (whitespace allowed between).
    fn quoted_after(text: &str, marker: &str) -> BTreeSet<String> {
        text.match_indices(marker)
            .filter_map(|(i, _)| {
                let rest = text[i + marker.len()..].trim_start().strip_prefix('"')?;
                Some(rest[..rest.find('"')?].to_owned())
            })
            .collect()
    }

    /// The commands registered with Tauri, the ones build.rs declares (and so gives an
    /// `allow-` permission), the ones the window's capability allows and the ones the UI calls
    /// are the same set: the webview may call exactly what the UI uses, and nothing of Tauri's
    /// core but listening to events.
    #[test]
    fn the_window_may_call_exactly_what_the_ui_calls() {
        let source = include_str!("commands.rs");
        let list = &source[source.find("generate_handler![").expect("the handler")..];
        let list = &list["generate_handler![".len()..list.find(']').expect("its end")];
        let registered: BTreeSet<String> = list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();

        let build = include_str!("../build.rs");
        let build = &build[build.find("const COMMANDS").expect("COMMANDS")..];
        let declared: BTreeSet<String> = build[..build.find("];").expect("its end")]
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();

        let ui = quoted_after(include_str!("../../ui/src/api.rs"), "call(");

        let capability: serde_json::Value =
            serde_json::from_str(include_str!("../capabilities/default.json")).expect("JSON");
        let permissions: BTreeSet<String> = capability["permissions"]
            .as_array()
            .expect("a list of permissions")
            .iter()
            .map(|p| p.as_str().expect("identifiers only").to_owned())
            .collect();
        let allowed: BTreeSet<String> = permissions
            .iter()
            .filter_map(|p| p.strip_prefix("allow-"))
            .map(|c| c.replace('-', "_"))
            .collect();
        let core: BTreeSet<&str> = permissions
            .iter()
            .filter(|p| !p.starts_with("allow-"))
            .map(String::as_str)
            .collect();

        assert_eq!(registered.len(), 33, "{registered:?}");
        assert_eq!(declared, registered, "build.rs vs generate_handler!");
        assert_eq!(
            ui, registered,
            "what ui/src/api.rs calls vs generate_handler!"
        );
        assert_eq!(
            allowed, registered,
            "capabilities/default.json vs generate_handler!"
        );
        assert_eq!(
            core,
            BTreeSet::from(["core:event:allow-listen", "core:event:allow-unlisten"])
        );
    }
}

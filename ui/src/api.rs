//! The one module that talks to the desktop's Rust side: a typed async function per Tauri
//! command, `listen` for Tauri events, and the log follow's channel. Nothing else in the UI
//! touches `window.__TAURI__`.
//!
//! Arguments go out as plain JSON-compatible objects (maps as objects, 64-bit integers as numbers)
//! under the commands' snake_case names; a rejected call becomes a [`CommandError`] whatever the
//! rejected value was (the backend's `{code, message}`, a string from Tauri itself, or a JS
//! exception when the page runs outside Tauri), so a failure never panics the UI.

use std::fmt;

use fleetdeck_proto::desktop::{
    AuditQuery, CollectorInfo, CommandError, DesktopSettings, EnvSave, EnvSaved, EventFilter,
    FirstPaint, LogFeed, LogQuery, LogSearchQuery, MetricsRange, NewCollector, SettingsChange,
    TrayState,
};
use fleetdeck_proto::{
    ActionOutcome, AlertPage, AlertRecord, AppAction, AppMetrics, AuditPage, EnvBackups, EnvFile,
    EnvWritten, EventsPage, Fleet, HostView, KeyCreated, KeyInfo, LogPage, LogSearchEvent, Metrics,
    NewSilence, Role, Silence, Uptime,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    // `window.__TAURI__` exists because tauri.conf.json sets `withGlobalTauri: true`. What the
    // page may call through it is what capabilities/default.json allows, and the CSP keeps any
    // script but the app's own from running (see docs/reliability.md).
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], js_name = invoke, catch)]
    async fn tauri_invoke(cmd: &str, args: JsValue) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "event"], js_name = listen, catch)]
    async fn tauri_listen(
        event: &str,
        handler: &Closure<dyn FnMut(JsValue)>,
    ) -> Result<JsValue, JsValue>;
}

/// The error code given to failures of the bridge itself (not of a command).
pub const IPC_ERROR: &str = "ipc";

fn ipc_error(message: impl Into<String>) -> CommandError {
    CommandError::new(IPC_ERROR, message)
}

/// Turns whatever a rejected promise carried into a [`CommandError`].
fn to_command_error(value: JsValue) -> CommandError {
    if let Ok(e) = serde_wasm_bindgen::from_value::<CommandError>(value.clone()) {
        return e;
    }
    if let Some(s) = value.as_string() {
        return ipc_error(s);
    }
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return ipc_error(String::from(e.message()));
    }
    ipc_error(format!("{value:?}"))
}

fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, CommandError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| ipc_error(format!("could not encode the request: {e}")))
}

fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, CommandError> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| CommandError::new("protocol", format!("unexpected answer: {e}")))
}

/// A command's arguments object, built field by field.
struct Args(js_sys::Object);

impl Args {
    fn new() -> Self {
        Self(js_sys::Object::new())
    }

    fn set_js(self, name: &str, value: &JsValue) -> Result<Self, CommandError> {
        js_sys::Reflect::set(&self.0, &JsValue::from_str(name), value)
            .map_err(|_| ipc_error(format!("could not set argument {name}")))?;
        Ok(self)
    }

    fn set<T: Serialize + ?Sized>(self, name: &str, value: &T) -> Result<Self, CommandError> {
        let value = to_js(value)?;
        self.set_js(name, &value)
    }
}

async fn call<T: DeserializeOwned>(cmd: &str, args: Args) -> Result<T, CommandError> {
    match tauri_invoke(cmd, args.0.into()).await {
        Ok(value) => from_js(value),
        Err(e) => Err(to_command_error(e)),
    }
}

fn app_args(collector: &str, host: &str, app: &str) -> Result<Args, CommandError> {
    Args::new()
        .set("collector", collector)?
        .set("host", host)?
        .set("app", app)
}

pub async fn list_collectors() -> Result<Vec<CollectorInfo>, CommandError> {
    call("list_collectors", Args::new()).await
}

/// The backend checks that the collector answers with the key before storing anything.
pub async fn add_collector(new: &NewCollector) -> Result<CollectorInfo, CommandError> {
    call("add_collector", Args::new().set("new", new)?).await
}

pub async fn remove_collector(name: &str) -> Result<(), CommandError> {
    call("remove_collector", Args::new().set("name", name)?).await
}

pub async fn fleet(collector: &str) -> Result<Fleet, CommandError> {
    call("fleet", Args::new().set("collector", collector)?).await
}

/// One host with its latest metrics in full.
pub async fn host(collector: &str, host: &str) -> Result<HostView, CommandError> {
    let args = Args::new().set("collector", collector)?.set("host", host)?;
    call("host", args).await
}

pub async fn metrics(
    collector: &str,
    host: &str,
    range: MetricsRange,
) -> Result<Metrics, CommandError> {
    let args = Args::new()
        .set("collector", collector)?
        .set("host", host)?
        .set("range", &range)?;
    call("metrics", args).await
}

/// One app's metric history over `range`, up to now (times from the webview's clock).
pub async fn app_metrics(
    collector: &str,
    host: &str,
    app: &str,
    range: MetricsRange,
) -> Result<AppMetrics, CommandError> {
    let now = js_sys::Date::now();
    #[allow(clippy::cast_precision_loss)]
    let span = range.span_ms() as f64;
    let iso = |ms: f64| String::from(js_sys::Date::new(&JsValue::from_f64(ms)).to_iso_string());
    let args = app_args(collector, host, app)?
        .set("from", &iso(now - span))?
        .set("to", &iso(now))?
        .set("step", range.step())?;
    call("app_metrics", args).await
}

pub async fn uptime(
    collector: &str,
    host: &str,
    app: &str,
    days: u32,
) -> Result<Uptime, CommandError> {
    call(
        "uptime",
        app_args(collector, host, app)?.set("days", &days)?,
    )
    .await
}

pub async fn events(collector: &str, filter: &EventFilter) -> Result<EventsPage, CommandError> {
    let args = Args::new()
        .set("collector", collector)?
        .set("filter", filter)?;
    call("events", args).await
}

/// A page of log lines, newest first.
pub async fn logs_page(
    collector: &str,
    host: &str,
    app: &str,
    query: &LogQuery,
) -> Result<LogPage, CommandError> {
    call(
        "logs_page",
        app_args(collector, host, app)?.set("query", query)?,
    )
    .await
}

/// A live follow of an app's log. Dropping it stops the follow on the backend and detaches the
/// handler, so a late message is ignored.
pub struct LogFollow {
    pub id: u64,
    channel: JsValue,
    _handler: Closure<dyn FnMut(JsValue)>,
}

impl fmt::Debug for LogFollow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFollow").field("id", &self.id).finish()
    }
}

impl Drop for LogFollow {
    fn drop(&mut self) {
        // A no-op made from a Rust closure, not `new Function("")`: the CSP forbids eval. Handing
        // it to JS leaves freeing it to the garbage collector once the channel lets go of it.
        let noop = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {}).into_js_value();
        // Best effort: if this fails the closure is freed anyway and a late message only logs.
        let _ = js_sys::Reflect::set(&self.channel, &JsValue::from_str("onmessage"), &noop);
        let id = self.id;
        wasm_bindgen_futures::spawn_local(async move {
            // The view is gone: a failed stop has no one to tell, and the backend also stops a
            // follow whose channel is closed.
            let _ = logs_stop(id).await;
        });
    }
}

/// A JS callback kept alive on the Rust side.
type Handler = Closure<dyn FnMut(JsValue)>;

/// A new `window.__TAURI__.core.Channel` whose messages go to `handler`.
fn new_channel<T: serde::de::DeserializeOwned + 'static>(
    handler: impl FnMut(Result<T, CommandError>) + 'static,
) -> Result<(JsValue, Handler), CommandError> {
    let get = |target: &JsValue, name: &str| {
        js_sys::Reflect::get(target, &JsValue::from_str(name))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
            .ok_or_else(|| {
                ipc_error(format!(
                    "window.__TAURI__ has no {name}: not running in Fleetdeck?"
                ))
            })
    };
    let window: JsValue = js_sys::global().into();
    let ctor = get(&get(&get(&window, "__TAURI__")?, "core")?, "Channel")?;
    let ctor: js_sys::Function = ctor
        .dyn_into()
        .map_err(|_| ipc_error("window.__TAURI__.core.Channel is not a constructor"))?;
    let channel =
        js_sys::Reflect::construct(&ctor, &js_sys::Array::new()).map_err(to_command_error)?;
    let mut handler = handler;
    let closure = Closure::<dyn FnMut(JsValue)>::new(move |message: JsValue| {
        handler(from_js::<T>(message));
    });
    js_sys::Reflect::set(
        &channel,
        &JsValue::from_str("onmessage"),
        closure.as_ref().unchecked_ref(),
    )
    .map_err(|_| ipc_error("could not attach to the log channel"))?;
    Ok((channel, closure))
}

/// Starts following an app's log after the line with cursor `after` (the newest the view has;
/// `None` for from now on): batches of lines (and interruptions) go to `on_feed`.
pub async fn logs_follow(
    collector: &str,
    host: &str,
    app: &str,
    after: Option<&str>,
    on_feed: impl FnMut(Result<LogFeed, CommandError>) + 'static,
) -> Result<LogFollow, CommandError> {
    let (channel, handler) = new_channel(on_feed)?;
    let args = app_args(collector, host, app)?
        .set("after", &after)?
        .set_js("on_feed", &channel)?;
    let id: u64 = call("logs_follow", args).await?;
    Ok(LogFollow {
        id,
        channel,
        _handler: handler,
    })
}

/// Searches many apps' logs of a collector: each app's answer goes to `on_event` as it comes;
/// returns once every app answered. Dropping the future (the view went away) leaves the backend
/// to end the search when its channel is gone.
pub async fn logs_search(
    collector: &str,
    query: &LogSearchQuery,
    on_event: impl FnMut(Result<LogSearchEvent, CommandError>) + 'static,
) -> Result<(), CommandError> {
    let (channel, _handler) = new_channel(on_event)?;
    let args = Args::new()
        .set("collector", collector)?
        .set("query", query)?
        .set_js("on_event", &channel)?;
    call("logs_search", args).await
}

pub async fn keys_list(collector: &str) -> Result<Vec<KeyInfo>, CommandError> {
    call("keys_list", Args::new().set("collector", collector)?).await
}

/// Makes a key; the answer holds it, shown this once.
pub async fn key_create(
    collector: &str,
    name: &str,
    role: Role,
) -> Result<KeyCreated, CommandError> {
    let args = Args::new()
        .set("collector", collector)?
        .set("name", name)?
        .set("role", &role)?;
    call("key_create", args).await
}

pub async fn key_delete(collector: &str, name: &str) -> Result<(), CommandError> {
    call(
        "key_delete",
        Args::new().set("collector", collector)?.set("name", name)?,
    )
    .await
}

pub async fn audit(collector: &str, query: &AuditQuery) -> Result<AuditPage, CommandError> {
    call(
        "audit",
        Args::new()
            .set("collector", collector)?
            .set("query", query)?,
    )
    .await
}

pub async fn env_backups(
    collector: &str,
    host: &str,
    app: &str,
) -> Result<EnvBackups, CommandError> {
    call("env_backups", app_args(collector, host, app)?).await
}

pub async fn env_backup(
    collector: &str,
    host: &str,
    app: &str,
    n: u32,
) -> Result<EnvFile, CommandError> {
    call("env_backup", app_args(collector, host, app)?.set("n", &n)?).await
}

/// Restores backup `n` if the file is still at `etag`; error code `conflict` when it changed.
pub async fn env_restore(
    collector: &str,
    host: &str,
    app: &str,
    n: u32,
    etag: &str,
) -> Result<EnvWritten, CommandError> {
    call(
        "env_restore",
        app_args(collector, host, app)?
            .set("n", &n)?
            .set("etag", etag)?,
    )
    .await
}

pub async fn logs_stop(id: u64) -> Result<(), CommandError> {
    call("logs_stop", Args::new().set("id", &id)?).await
}

pub async fn env_get(collector: &str, host: &str, app: &str) -> Result<EnvFile, CommandError> {
    call("env_get", app_args(collector, host, app)?).await
}

/// Writes edits if the file still has `save.etag`; error code `conflict` when it changed.
pub async fn env_save(
    collector: &str,
    host: &str,
    app: &str,
    save: &EnvSave,
) -> Result<EnvSaved, CommandError> {
    call(
        "env_save",
        app_args(collector, host, app)?.set("save", save)?,
    )
    .await
}

pub async fn action(
    collector: &str,
    host: &str,
    app: &str,
    action: AppAction,
) -> Result<ActionOutcome, CommandError> {
    call(
        "action",
        app_args(collector, host, app)?.set("action", &action)?,
    )
    .await
}

/// The collector's alerts, open ones first (`state`: open, acknowledged or resolved).
pub async fn alerts(collector: &str, state: Option<&str>) -> Result<AlertPage, CommandError> {
    call(
        "alerts",
        Args::new()
            .set("collector", collector)?
            .set("state", &state)?,
    )
    .await
}

pub async fn alert_ack(collector: &str, id: i64) -> Result<AlertRecord, CommandError> {
    call(
        "alert_ack",
        Args::new()
            .set("collector", collector)?
            .set("id", &id)?
            .set("note", &Option::<String>::None)?,
    )
    .await
}

pub async fn silences(collector: &str) -> Result<Vec<Silence>, CommandError> {
    call("silences", Args::new().set("collector", collector)?).await
}

pub async fn silence_add(collector: &str, new: &NewSilence) -> Result<Silence, CommandError> {
    call(
        "silence_add",
        Args::new().set("collector", collector)?.set("new", new)?,
    )
    .await
}

pub async fn silence_remove(collector: &str, id: i64) -> Result<Silence, CommandError> {
    call(
        "silence_remove",
        Args::new().set("collector", collector)?.set("id", &id)?,
    )
    .await
}

pub async fn settings() -> Result<DesktopSettings, CommandError> {
    call("settings", Args::new()).await
}

pub async fn set_dnd(dnd: bool) -> Result<DesktopSettings, CommandError> {
    call("set_dnd", Args::new().set("dnd", &dnd)?).await
}

pub async fn update_settings(change: &SettingsChange) -> Result<DesktopSettings, CommandError> {
    call("update_settings", Args::new().set("change", change)?).await
}

pub async fn tray_state() -> Result<TrayState, CommandError> {
    call("tray_state", Args::new()).await
}

/// Reports the first paint of a fleet, for the start-up benchmark.
pub async fn first_paint(paint: FirstPaint) -> Result<(), CommandError> {
    call("first_paint", Args::new().set("paint", &paint)?).await
}

/// A subscription to a Tauri event; dropping it unsubscribes.
pub struct Listener {
    event: &'static str,
    unlisten: Option<js_sys::Function>,
    _handler: Closure<dyn FnMut(JsValue)>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("event", &self.event)
            .finish()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(unlisten) = &self.unlisten {
            // Unsubscribing can only fail if the page is going away.
            let _ = unlisten.call0(&JsValue::NULL);
        }
    }
}

/// Subscribes to a Tauri event; each payload is decoded as `T` (an undecodable payload reaches
/// `handler` as an error rather than being dropped silently).
pub async fn listen<T: DeserializeOwned + 'static>(
    event: &'static str,
    handler: impl Fn(Result<T, CommandError>) + 'static,
) -> Result<Listener, CommandError> {
    let closure = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        let payload =
            js_sys::Reflect::get(&e, &JsValue::from_str("payload")).unwrap_or(JsValue::UNDEFINED);
        handler(from_js::<T>(payload));
    });
    let unlisten = tauri_listen(event, &closure)
        .await
        .map_err(to_command_error)?;
    Ok(Listener {
        event,
        unlisten: unlisten.dyn_into::<js_sys::Function>().ok(),
        _handler: closure,
    })
}

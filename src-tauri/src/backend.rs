//! The app's state behind the commands: the settings file, the keyring, and one connection (a
//! client and a watcher) per collector. Everything it decides is delegated to the core crate.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleetdeck_desktop_core::keys::{KeyStore, KeyringStore};
use fleetdeck_desktop_core::notice::Notifier;
use fleetdeck_desktop_core::settings::{self, SavedCollector, Settings};
use fleetdeck_desktop_core::tray::{tray_state, CollectorView};
use fleetdeck_desktop_core::watch::{WatchUpdate, Watcher};
use fleetdeck_desktop_core::{ApiKey, CollectorClient};
use fleetdeck_proto::desktop::{
    CollectorInfo, CommandError, ConnState, ConnStatus, DesktopSettings, NewCollector,
    SettingsChange, TrayState,
};
use fleetdeck_proto::Fleet;
use tokio::sync::mpsc::UnboundedSender;

/// The OS keyring's service name for API keys (the account is the collector's name).
pub const KEYRING_SERVICE: &str = "dev.fleetdeck.desktop";
/// How often each collector's fleet is read besides the reads its events trigger.
const POLL_EVERY: Duration = Duration::from_secs(5);

pub struct Backend {
    settings_path: PathBuf,
    settings: Mutex<Settings>,
    keys: Arc<dyn KeyStore>,
    conns: Mutex<BTreeMap<String, Conn>>,
    updates: Mutex<Option<UnboundedSender<WatchUpdate>>>,
    pub notifier: Mutex<Notifier>,
    tray: Mutex<Option<TrayState>>,
    pub follows: Mutex<HashMap<u64, tauri::async_runtime::JoinHandle<()>>>,
    next_follow: AtomicU64,
    pub started: Instant,
    first_paint: AtomicBool,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("settings_path", &self.settings_path)
            .finish_non_exhaustive()
    }
}

struct Conn {
    client: Option<CollectorClient>,
    info: CollectorInfo,
    fleet: Option<Fleet>,
    /// Its open alerts, as last read.
    alerts: Vec<fleetdeck_proto::AlertRecord>,
    watcher: Option<Watcher>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn status(state: ConnState, message: Option<String>) -> ConnStatus {
    ConnStatus {
        state,
        message,
        since_unix_ms: now_ms(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the app down with poisoned locks: the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backend {
    /// Reads the settings file and the keys of the collectors it lists.
    pub fn load(started: Instant) -> Result<Self, CommandError> {
        let settings_path = settings::default_path();
        let settings = Settings::load(&settings_path)?;
        let keys: Arc<dyn KeyStore> = Arc::new(KeyringStore::new(KEYRING_SERVICE));
        let mut notifier = Notifier::new(settings.dnd);
        // How long a collector may stay unreachable before the operator is told (default 30 s);
        // the end-to-end test shortens it.
        if let Some(secs) = std::env::var("FLEETDECK_UNREACHABLE_GRACE_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            notifier.set_unreachable_grace(Duration::from_secs(secs));
        }
        let backend = Self {
            settings_path,
            settings: Mutex::new(settings.clone()),
            keys,
            conns: Mutex::new(BTreeMap::new()),
            updates: Mutex::new(None),
            notifier: Mutex::new(notifier),
            tray: Mutex::new(None),
            follows: Mutex::new(HashMap::new()),
            next_follow: AtomicU64::new(1),
            started,
            first_paint: AtomicBool::new(false),
        };
        for saved in &settings.collectors {
            let conn = backend.connect_saved(saved);
            lock(&backend.conns).insert(saved.name.clone(), conn);
        }
        Ok(backend)
    }

    fn connect_saved(&self, saved: &SavedCollector) -> Conn {
        let failing = |message: String| Conn {
            client: None,
            info: CollectorInfo {
                name: saved.name.clone(),
                url: saved.url.clone(),
                status: status(ConnState::Failing, Some(message)),
                warning: None,
            },
            fleet: None,
            alerts: Vec::new(),
            watcher: None,
        };
        let key = match self.keys.get(&saved.name) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return failing(format!(
                    "No API key for \"{}\" in the OS keyring. Remove this collector in Settings and add it again with its key.",
                    saved.name
                ))
            }
            Err(e) => return failing(e.message),
        };
        match CollectorClient::for_saved(&saved.url, saved.tls_fingerprint.as_deref(), key)
            .and_then(|c| c.with_standby_urls(&saved.standby_urls))
        {
            Ok(client) => Conn {
                info: CollectorInfo {
                    name: saved.name.clone(),
                    url: saved.url.clone(),
                    status: status(ConnState::Connecting, None),
                    warning: client.transport_warning().map(str::to_owned),
                },
                client: Some(client),
                fleet: None,
                alerts: Vec::new(),
                watcher: None,
            },
            Err(e) => failing(e.message),
        }
    }

    /// Starts a watcher per collector; from now on collectors added get one too. Needs a tokio
    /// runtime context.
    pub fn start_watchers(&self, updates: UnboundedSender<WatchUpdate>) {
        let mut conns = lock(&self.conns);
        for (name, conn) in conns.iter_mut() {
            if let Some(client) = &conn.client {
                conn.watcher = Some(Watcher::spawn(
                    name.clone(),
                    client.clone(),
                    None,
                    POLL_EVERY,
                    updates.clone(),
                ));
            }
        }
        *lock(&self.updates) = Some(updates);
    }

    pub fn client(&self, collector: &str) -> Result<CollectorClient, CommandError> {
        let conns = lock(&self.conns);
        let conn = conns.get(collector).ok_or_else(|| {
            CommandError::new(
                "unknown_collector",
                format!("No collector named \"{collector}\": add it in Settings."),
            )
        })?;
        conn.client.clone().ok_or_else(|| {
            CommandError::new(
                "keyring",
                conn.info
                    .status
                    .message
                    .clone()
                    .unwrap_or_else(|| "This collector has no usable key.".into()),
            )
        })
    }

    /// Why each failing collector fails, for the outage notice.
    pub fn failing_reasons(&self) -> std::collections::HashMap<String, String> {
        lock(&self.conns)
            .iter()
            .filter(|(_, c)| c.info.status.state == ConnState::Failing)
            .filter_map(|(name, c)| Some((name.clone(), c.info.status.message.clone()?)))
            .collect()
    }

    pub fn has(&self, collector: &str) -> bool {
        lock(&self.conns).contains_key(collector)
    }

    /// Each saved collector, by name, with its fleet read with the key the keyring gave at load,
    /// or why it could not be (no key, the keyring's error, the collector's answer).
    pub async fn check_collectors(&self) -> Vec<(CollectorInfo, Result<Fleet, CommandError>)> {
        let names: Vec<String> = lock(&self.conns).keys().cloned().collect();
        let mut checked = Vec::with_capacity(names.len());
        for name in names {
            let Some(info) = lock(&self.conns).get(&name).map(|c| c.info.clone()) else {
                continue;
            };
            let fleet = match self.client(&name) {
                Ok(client) => client.fleet().await,
                Err(e) => Err(e),
            };
            checked.push((info, fleet));
        }
        checked
    }

    pub fn collectors(&self) -> Vec<CollectorInfo> {
        lock(&self.conns).values().map(|c| c.info.clone()).collect()
    }

    /// Checks that the collector answers with this key, then keeps the key in the keyring and
    /// the rest in the settings file. With `replace`, a collector of that name is replaced.
    pub async fn add_collector(
        &self,
        new: NewCollector,
        replace: bool,
    ) -> Result<CollectorInfo, CommandError> {
        let name = new.name.trim().to_owned();
        let (url, standby_urls) = settings::split_urls(&new.url);
        {
            let settings = lock(&self.settings);
            let others: Vec<SavedCollector> = settings
                .collectors
                .iter()
                .filter(|c| !(replace && c.name == name))
                .cloned()
                .collect();
            settings::validate_name(&name, &others)?;
        }
        let key = new.key.trim().to_owned();
        if key.is_empty() {
            return Err(CommandError::new(
                "invalid_input",
                "The API key is empty: paste the key the collector's admin gave you (it starts with fdk_).",
            ));
        }
        let tls_fingerprint = new
            .tls_fingerprint
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| fleetdeck_desktop_core::client::parse_fingerprint(f).map(|f| f.to_string()))
            .transpose()?;
        let client =
            CollectorClient::for_saved(&url, tls_fingerprint.as_deref(), ApiKey::new(key.clone()))?
                .with_standby_urls(&standby_urls)?;
        let fleet = client.fleet().await?;

        let keys = Arc::clone(&self.keys);
        let (key_name, key_value) = (name.clone(), ApiKey::new(key));
        tauri::async_runtime::spawn_blocking(move || keys.set(&key_name, &key_value))
            .await
            .map_err(|e| CommandError::new("keyring", format!("the keyring call failed: {e}")))??;

        let mut urls = client.urls().into_iter();
        let saved = SavedCollector {
            name: name.clone(),
            url: urls.next().unwrap_or_default(),
            standby_urls: urls.collect(),
            tls_fingerprint,
        };
        {
            let mut settings = lock(&self.settings);
            let mut next = settings.clone();
            next.collectors.retain(|c| c.name != name);
            next.collectors.push(saved.clone());
            next.save(&self.settings_path)?;
            *settings = next;
        }
        let info = CollectorInfo {
            name: name.clone(),
            url: saved.url.clone(),
            status: status(ConnState::Connected, None),
            warning: client.transport_warning().map(str::to_owned),
        };
        let watcher = lock(&self.updates)
            .as_ref()
            .map(|tx| Watcher::spawn(name.clone(), client.clone(), None, POLL_EVERY, tx.clone()));
        lock(&self.conns).insert(
            name.clone(),
            Conn {
                client: Some(client),
                info: info.clone(),
                fleet: Some(fleet),
                alerts: Vec::new(),
                watcher,
            },
        );
        tracing::info!(collector = %name, url = %saved.url, "collector added");
        Ok(info)
    }

    pub async fn remove_collector(&self, name: &str) -> Result<(), CommandError> {
        {
            let mut settings = lock(&self.settings);
            let mut next = settings.clone();
            next.collectors.retain(|c| c.name != name);
            next.save(&self.settings_path)?;
            *settings = next;
        }
        lock(&self.conns).remove(name);
        lock(&self.notifier).forget(name);
        let keys = Arc::clone(&self.keys);
        let key_name = name.to_owned();
        // The collector is gone either way; a key the keyring would not delete is only logged
        // (the error names no secret).
        match tauri::async_runtime::spawn_blocking(move || keys.delete(&key_name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(collector = %name, error = %e.message, "the key stays in the OS keyring")
            }
            Err(e) => {
                tracing::warn!(collector = %name, error = %e, "the key stays in the OS keyring")
            }
        }
        tracing::info!(collector = %name, "collector removed");
        Ok(())
    }

    /// The desktop's settings; `autostart` is the OS's, read by the caller.
    pub fn settings(&self, autostart: bool) -> DesktopSettings {
        let settings = lock(&self.settings);
        DesktopSettings {
            dnd: settings.dnd,
            theme: settings.theme,
            last_view: settings.last_view.clone(),
            autostart,
        }
    }

    /// Changes the saved settings and writes the file (nothing changes if it cannot be written).
    fn change_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<(), CommandError> {
        let mut settings = lock(&self.settings);
        let mut next = settings.clone();
        change(&mut next);
        if next != *settings {
            next.save(&self.settings_path)?;
            *settings = next;
        }
        Ok(())
    }

    pub fn set_dnd(&self, dnd: bool, autostart: bool) -> Result<DesktopSettings, CommandError> {
        self.change_settings(|s| s.dnd = dnd)?;
        lock(&self.notifier).set_dnd(dnd);
        Ok(self.settings(autostart))
    }

    /// Saves the theme and the last view (autostart is the caller's, with the OS).
    pub fn update_settings(
        &self,
        change: SettingsChange,
        autostart: bool,
    ) -> Result<DesktopSettings, CommandError> {
        self.change_settings(|s| {
            if let Some(theme) = change.theme {
                s.theme = theme;
            }
            if let Some(view) = change.last_view {
                s.last_view = Some(view);
            }
        })?;
        Ok(self.settings(autostart))
    }

    /// Records a collector's fleet; `None` when the collector was removed meanwhile.
    pub fn set_fleet(&self, collector: &str, fleet: Fleet) -> bool {
        match lock(&self.conns).get_mut(collector) {
            Some(conn) => {
                conn.fleet = Some(fleet);
                true
            }
            None => false,
        }
    }

    /// Records a collector's open alerts; whether the collector still exists.
    pub fn set_alerts(&self, collector: &str, alerts: Vec<fleetdeck_proto::AlertRecord>) -> bool {
        match lock(&self.conns).get_mut(collector) {
            Some(conn) => {
                conn.alerts = alerts;
                true
            }
            None => false,
        }
    }

    /// Records a collector's connection status; the updated info, if the collector still exists.
    pub fn set_status(&self, collector: &str, status: ConnStatus) -> Option<CollectorInfo> {
        let mut conns = lock(&self.conns);
        let conn = conns.get_mut(collector)?;
        conn.info.status = status;
        Some(conn.info.clone())
    }

    /// The tray's state now, and whether it changed since the last call.
    pub fn tray_update(&self) -> (TrayState, bool) {
        let state = self.tray_state();
        let mut last = lock(&self.tray);
        let changed = last.as_ref() != Some(&state);
        *last = Some(state.clone());
        (state, changed)
    }

    pub fn tray_state(&self) -> TrayState {
        let conns = lock(&self.conns);
        let views: Vec<CollectorView<'_>> = conns
            .values()
            .map(|c| CollectorView {
                name: &c.info.name,
                status: &c.info.status,
                fleet: c.fleet.as_ref(),
            })
            .collect();
        let mut state = tray_state(&views);
        let alerts: Vec<(&str, &[fleetdeck_proto::AlertRecord])> = conns
            .values()
            .filter(|c| c.info.status.state == ConnState::Connected)
            .map(|c| (c.info.name.as_str(), c.alerts.as_slice()))
            .collect();
        state.alerts = fleetdeck_desktop_core::tray::alert_items(&alerts);
        state
    }

    /// Stops every log follow (the page that asked for them is gone).
    pub fn stop_follows(&self) {
        for (_, task) in lock(&self.follows).drain() {
            task.abort();
        }
    }

    pub fn next_follow_id(&self) -> u64 {
        self.next_follow.fetch_add(1, Ordering::Relaxed)
    }

    /// True the first time only.
    pub fn first_paint(&self) -> bool {
        !self.first_paint.swap(true, Ordering::Relaxed)
    }
}

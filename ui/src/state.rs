//! The UI's state as one reducer: collectors, fleets, the route, the event log ([`events`]), the
//! log buffer, banners and settings. Pure Rust (no web-sys), so every transition is unit-tested natively.

use std::collections::BTreeMap;
use std::rc::Rc;

use fleetdeck_proto::desktop::{
    AppRef, CollectorInfo, DesktopSettings, EventFilter, FleetEventFrom, SavedView, TrayState,
};
use fleetdeck_proto::{AppView, EventsPage, Fleet, HostView, LogEntry};
use yew::Reducible;

use crate::logbuf::{LevelFilter, LogBuffer, LogKey};

mod events;
pub use events::{EventsState, EVENTS_CAP};
/// Banners shown at once; older ones go first.
pub const BANNERS_CAP: usize = 5;

/// Where the window is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Fleet,
    Host(String),
    App(String, String),
    Logs,
    Events,
    Alerts,
    Admin,
    Settings,
}

/// A log line to show in its app's log with the lines around it (a search result opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAnchor {
    pub collector: String,
    pub host: String,
    pub app: String,
    pub unix_us: u64,
    pub cursor: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BannerKind {
    Error,
    Info,
}

/// A dismissible message over the view: what failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    pub id: u64,
    pub kind: BannerKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UiState {
    pub collectors: Vec<CollectorInfo>,
    /// `list_collectors` answered (before that the app does not know whether to welcome).
    pub collectors_loaded: bool,
    pub selected: Option<String>,
    pub fleets: BTreeMap<String, Rc<Fleet>>,
    pub route: Route,
    pub events: EventsState,
    pub logs: LogBuffer,
    pub banners: Vec<Banner>,
    next_banner: u64,
    /// The desktop's own settings (do not disturb, theme, last view, start at login).
    pub settings: DesktopSettings,
    /// The last view saved in the settings was opened (once per start, when they first arrive).
    pub view_restored: bool,
    pub tray: Option<TrayState>,
    /// The search result the app's page shows in context, until closed or another app opens.
    pub log_anchor: Option<LogAnchor>,
    /// `first_paint` was reported (it is reported once per start).
    pub first_paint_sent: bool,
}

impl Default for UiState {
    fn default() -> Self {
        Self {
            collectors: Vec::new(),
            collectors_loaded: false,
            selected: None,
            fleets: BTreeMap::new(),
            route: Route::Fleet,
            events: EventsState::default(),
            logs: LogBuffer::default(),
            banners: Vec::new(),
            next_banner: 1,
            settings: DesktopSettings::default(),
            view_restored: false,
            tray: None,
            log_anchor: None,
            first_paint_sent: false,
        }
    }
}

// A live event is the largest variant; an action is made and consumed once per user or
// collector event, so its size costs nothing worth a Box in every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CollectorsLoaded(Vec<CollectorInfo>),
    CollectorAdded(CollectorInfo),
    CollectorRemoved(String),
    /// A `collector-status` event.
    CollectorStatus(CollectorInfo),
    SelectCollector(String),
    /// A `fleet` answer or a `fleet-updated` event: replaces that collector's fleet.
    FleetLoaded {
        collector: String,
        fleet: Fleet,
    },
    Navigate(Route),
    /// An `open-app` event (tray or notification).
    OpenApp(AppRef),
    /// A search result: its app's page, showing the line with the lines around it.
    OpenLogAt(LogAnchor),
    /// The context of a search result is closed.
    CloseLogAnchor,
    /// New event filters: the list empties and a first page is awaited.
    EventsFilter(EventFilter),
    /// The event view asked for a page (first or older).
    EventsRequested,
    EventsLoaded {
        collector: String,
        filter: EventFilter,
        page: EventsPage,
    },
    EventsFailed,
    /// A `fleet-event` event.
    LiveEvent(FleetEventFrom),
    /// The app view opened this app's log: the buffer empties for it.
    LogsOpen(LogKey),
    LogsInitial {
        key: LogKey,
        newest_first: Vec<LogEntry>,
        asked: u32,
    },
    LogsLines {
        key: LogKey,
        entries: Vec<LogEntry>,
    },
    LogsOlderRequested,
    LogsOlder {
        key: LogKey,
        newest_first: Vec<LogEntry>,
        asked: u32,
    },
    LogsOlderFailed,
    /// The follow broke (`Some(reason)`) or resumed (`None`).
    LogsInterrupted {
        key: LogKey,
        message: Option<String>,
    },
    /// The follow ended for good.
    LogsStopped {
        key: LogKey,
        message: String,
    },
    LogsToggleFollow,
    LogsSearch(String),
    LogsLevel(LevelFilter),
    /// A command failed: `what` names it for a person ("Loading the fleet of prod").
    Failed {
        what: String,
        message: String,
    },
    Notice(String),
    Dismiss(u64),
    Settings(DesktopSettings),
    Tray(TrayState),
    FirstPaintSent,
}

impl UiState {
    pub fn selected_fleet(&self) -> Option<&Rc<Fleet>> {
        self.selected.as_ref().and_then(|c| self.fleets.get(c))
    }

    pub fn selected_info(&self) -> Option<&CollectorInfo> {
        let name = self.selected.as_ref()?;
        self.collectors.iter().find(|c| &c.name == name)
    }

    pub fn host(&self, host: &str) -> Option<&HostView> {
        self.selected_fleet()?.hosts.iter().find(|h| h.name == host)
    }

    pub fn app(&self, host: &str, app: &str) -> Option<&AppView> {
        self.host(host)?.apps.iter().find(|a| a.status.name == app)
    }

    fn push_banner(&mut self, kind: BannerKind, text: String) {
        // The same failure repeating (a poll failing every few seconds) stays one banner.
        if self.banners.iter().any(|b| b.text == text) {
            return;
        }
        let id = self.next_banner;
        self.next_banner += 1;
        self.banners.push(Banner { id, kind, text });
        let over = self.banners.len().saturating_sub(BANNERS_CAP);
        self.banners.drain(..over);
    }

    /// Selects a collector; another one's events and logs do not carry over.
    fn select(&mut self, name: String) {
        if self.selected.as_ref() != Some(&name) {
            self.selected = Some(name);
            self.events = EventsState::default();
            self.logs = LogBuffer::default();
        }
    }

    /// Opens a saved view, if its collector is still configured (else the view stays).
    fn restore(&mut self, view: &SavedView) {
        if self.collectors.is_empty() {
            return; // the welcome in Settings stays
        }
        let known = |c: &str| self.collectors.iter().any(|x| x.name == c);
        self.route = match view {
            SavedView::Fleet => Route::Fleet,
            SavedView::Logs => Route::Logs,
            SavedView::Events => Route::Events,
            SavedView::Alerts => Route::Alerts,
            SavedView::Admin => Route::Admin,
            SavedView::Settings => Route::Settings,
            SavedView::Host { collector, host } if known(collector) => {
                self.select(collector.clone());
                Route::Host(host.clone())
            }
            SavedView::App {
                collector,
                host,
                app,
            } if known(collector) => {
                self.select(collector.clone());
                Route::App(host.clone(), app.clone())
            }
            SavedView::Host { .. } | SavedView::App { .. } => return,
        };
    }

    /// The view to save: where the window is, with its collector for a host's or an app's page.
    pub fn saved_view(&self) -> SavedView {
        match (&self.route, &self.selected) {
            (Route::Host(host), Some(collector)) => SavedView::Host {
                collector: collector.clone(),
                host: host.clone(),
            },
            (Route::App(host, app), Some(collector)) => SavedView::App {
                collector: collector.clone(),
                host: host.clone(),
                app: app.clone(),
            },
            (Route::Logs, _) => SavedView::Logs,
            (Route::Events, _) => SavedView::Events,
            (Route::Alerts, _) => SavedView::Alerts,
            (Route::Admin, _) => SavedView::Admin,
            (Route::Settings, _) => SavedView::Settings,
            _ => SavedView::Fleet,
        }
    }

    fn logs_for(&mut self, key: &LogKey) -> Option<&mut LogBuffer> {
        (self.logs.key.as_ref() == Some(key)).then_some(&mut self.logs)
    }

    pub fn apply(&mut self, action: Action) {
        match action {
            Action::CollectorsLoaded(list) => {
                self.collectors = list;
                self.collectors_loaded = true;
                self.fleets
                    .retain(|name, _| self.collectors.iter().any(|c| &c.name == name));
                let keep = self
                    .selected
                    .as_ref()
                    .is_some_and(|s| self.collectors.iter().any(|c| &c.name == s));
                if !keep {
                    self.selected = None;
                    if let Some(first) = self.collectors.first().map(|c| c.name.clone()) {
                        self.select(first);
                    }
                }
                if self.collectors.is_empty() {
                    self.route = Route::Settings;
                }
            }
            Action::CollectorAdded(info) => {
                let name = info.name.clone();
                match self.collectors.iter_mut().find(|c| c.name == info.name) {
                    Some(c) => *c = info,
                    None => self.collectors.push(info),
                }
                if self.selected.is_none() {
                    self.select(name);
                }
            }
            Action::CollectorRemoved(name) => {
                self.collectors.retain(|c| c.name != name);
                self.fleets.remove(&name);
                if self.selected.as_ref() == Some(&name) {
                    self.selected = None;
                    self.events = EventsState::default();
                    self.logs = LogBuffer::default();
                    if let Some(first) = self.collectors.first().map(|c| c.name.clone()) {
                        self.select(first);
                    }
                }
                if self.collectors.is_empty() {
                    self.route = Route::Settings;
                }
            }
            Action::CollectorStatus(info) => {
                // A late status of a removed collector must not bring it back.
                if let Some(c) = self.collectors.iter_mut().find(|c| c.name == info.name) {
                    *c = info;
                }
            }
            Action::SelectCollector(name) => {
                if self.collectors.iter().any(|c| c.name == name) {
                    self.select(name);
                    // Host and app names belong to the previous collector.
                    if matches!(self.route, Route::Host(_) | Route::App(..)) {
                        self.route = Route::Fleet;
                    }
                }
            }
            Action::FleetLoaded { collector, fleet } => {
                if self.collectors.iter().any(|c| c.name == collector) {
                    self.fleets.insert(collector, Rc::new(fleet));
                }
            }
            Action::Navigate(route) => self.route = route,
            Action::OpenApp(target) => {
                if self.collectors.iter().any(|c| c.name == target.collector) {
                    self.select(target.collector);
                    self.route = match target.app {
                        Some(app) => Route::App(target.host, app),
                        None => Route::Host(target.host),
                    };
                } else {
                    self.push_banner(
                        BannerKind::Error,
                        format!(
                            "Cannot open {}: collector {} is not configured here.",
                            target.host, target.collector
                        ),
                    );
                }
            }
            Action::EventsFilter(mut filter) => {
                filter.before = None;
                self.events = EventsState {
                    collector: self.selected.clone(),
                    filter,
                    ..EventsState::default()
                };
            }
            Action::EventsRequested => self.events.loading = true,
            Action::EventsLoaded {
                collector,
                mut filter,
                page,
            } => {
                filter.before = None;
                // An answer for a collector or filter no longer shown is stale.
                if self.selected.as_ref() != Some(&collector) || filter != self.events.filter {
                    return;
                }
                if self.events.collector.as_ref() != Some(&collector) {
                    self.events.collector = Some(collector);
                    self.events.events = Rc::default();
                }
                self.events.loading = false;
                self.events.loaded = true;
                self.events.next_before = page.next_before;
                self.events.merge(page.events);
            }
            Action::EventsFailed => self.events.loading = false,
            Action::LiveEvent(from) => {
                if self.selected.as_ref() == Some(&from.collector)
                    && self.events.collector.as_ref() == Some(&from.collector)
                    && self.events.admits(&from.event)
                {
                    self.events.merge(vec![from.event]);
                }
            }
            Action::LogsOpen(key) => self.logs.reset(key),
            Action::LogsInitial {
                key,
                newest_first,
                asked,
            } => {
                if let Some(logs) = self.logs_for(&key) {
                    logs.load_initial(newest_first, asked);
                }
            }
            Action::LogsLines { key, entries } => {
                if let Some(logs) = self.logs_for(&key) {
                    logs.append(entries);
                }
            }
            Action::LogsOlderRequested => self.logs.loading_older = true,
            Action::LogsOlder {
                key,
                newest_first,
                asked,
            } => {
                if let Some(logs) = self.logs_for(&key) {
                    logs.prepend_older(newest_first, asked);
                }
            }
            Action::LogsOlderFailed => self.logs.loading_older = false,
            Action::LogsInterrupted { key, message } => {
                if let Some(logs) = self.logs_for(&key) {
                    logs.interrupted = message;
                }
            }
            Action::LogsStopped { key, message } => {
                if let Some(logs) = self.logs_for(&key) {
                    logs.interrupted = None;
                    logs.stopped = Some(message);
                }
            }
            Action::LogsToggleFollow => self.logs.toggle_follow(),
            Action::LogsSearch(text) => self.logs.set_search(text),
            Action::LogsLevel(level) => self.logs.set_level(level),
            Action::Failed { what, message } => {
                self.push_banner(BannerKind::Error, format!("{what} failed: {message}"));
            }
            Action::Notice(text) => self.push_banner(BannerKind::Info, text),
            Action::Dismiss(id) => self.banners.retain(|b| b.id != id),
            Action::OpenLogAt(anchor) => {
                if self.collectors.iter().any(|c| c.name == anchor.collector) {
                    self.select(anchor.collector.clone());
                    self.route = Route::App(anchor.host.clone(), anchor.app.clone());
                    self.log_anchor = Some(anchor);
                }
            }
            Action::CloseLogAnchor => self.log_anchor = None,
            Action::Settings(settings) => {
                if !self.view_restored {
                    self.view_restored = true;
                    if let Some(view) = &settings.last_view {
                        self.restore(view);
                    }
                }
                self.settings = settings;
            }
            Action::Tray(tray) => self.tray = Some(tray),
            Action::FirstPaintSent => self.first_paint_sent = true,
        }
    }
}

impl Reducible for UiState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        next.apply(action);
        Rc::new(next)
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! The reducer, driven by actions as the views and the backend send them.

use fleetdeck_proto::desktop::{ConnState, ConnStatus};
use fleetdeck_proto::{
    AppKind, AppState, AppStatus, FleetEvent, FleetEventKind, FleetHealth, FleetSummary,
    HostStatus, Severity,
};

use super::*;

fn collector(name: &str, state: ConnState) -> CollectorInfo {
    CollectorInfo {
        name: name.into(),
        url: format!("http://{name}:7070"),
        status: ConnStatus {
            state,
            message: None,
            since_unix_ms: 0,
        },
        warning: None,
    }
}

pub(crate) fn app(name: &str, state: AppState) -> AppView {
    AppView {
        status: AppStatus {
            name: name.into(),
            kind: AppKind::Systemd,
            target: format!("{name}.service"),
            state,
            since_unix_ms: None,
            last_exit: None,
            restarts: None,
            memory_bytes: None,
            error: None,
            systemd: None,
            docker: None,
            expect: Default::default(),
            stopped_by_request: false,
            checks: Vec::new(),
            degraded: false,
        },
        state_since_unix_ms: 0,
        uptime_30d: None,
        uptime_known_since_unix_ms: None,
    }
}

pub(crate) fn fleet(hosts: &[(&str, Vec<AppView>)]) -> Fleet {
    Fleet {
        summary: FleetSummary {
            health: FleetHealth::Ok,
            hosts: hosts.len() as u32,
            hosts_up: hosts.len() as u32,
            hosts_down: 0,
            apps: 0,
            apps_running: 0,
            apps_down: 0,
            apps_degraded: 0,
            apps_stopped: 0,
            problems_warning: 0,
            problems_critical: 0,
        },
        hosts: hosts
            .iter()
            .map(|(name, apps)| HostView {
                name: (*name).into(),
                status: HostStatus::Up,
                status_since_unix_ms: None,
                last_seen_unix_ms: None,
                error: None,
                hostname: None,
                agent_instance_id: None,
                agent_version: None,
                wire_version: None,
                agent_outdated: false,
                cpu_percent: None,
                memory_used_bytes: None,
                memory_total_bytes: None,
                apps: apps.clone(),
                metrics: None,
            })
            .collect(),
        problems: Vec::new(),
        alert_policy: None,
    }
}

fn event(id: i64, host: &str, severity: Severity) -> FleetEvent {
    FleetEvent {
        id,
        at_unix_ms: id as u64 * 1000,
        severity,
        source: "poll".into(),
        kind: FleetEventKind::Transition,
        host: host.into(),
        app: Some("api".into()),
        from: Some("running".into()),
        to: Some("failed".into()),
        exit: None,
        message: format!("event {id}"),
        context: None,
        check: None,
        threshold: None,
    }
}

fn ids(s: &UiState) -> Vec<i64> {
    s.events.events.iter().map(|e| e.id).collect()
}

fn key(app: &str) -> LogKey {
    LogKey {
        collector: "prod".into(),
        host: "web-1".into(),
        app: app.into(),
    }
}

fn line(n: u32) -> LogEntry {
    LogEntry {
        cursor: format!("c{n}"),
        unix_us: u64::from(n),
        priority: Some(6),
        stream: None,
        message: format!("line {n}"),
        truncated: false,
    }
}

fn with_collectors(names: &[&str]) -> UiState {
    let mut s = UiState::default();
    s.apply(Action::CollectorsLoaded(
        names
            .iter()
            .map(|n| collector(n, ConnState::Connected))
            .collect(),
    ));
    s
}

fn dispatch(s: UiState, action: Action) -> UiState {
    Rc::unwrap_or_clone(Rc::new(s).reduce(action))
}

#[test]
fn no_collector_at_start_opens_settings() {
    let s = with_collectors(&[]);
    assert!(s.collectors_loaded);
    assert_eq!(s.route, Route::Settings);
    assert_eq!(s.selected, None);
}

#[test]
fn first_collector_is_selected() {
    let s = with_collectors(&["prod", "staging"]);
    assert_eq!(s.selected.as_deref(), Some("prod"));
    assert_eq!(s.route, Route::Fleet);
}

#[test]
fn adding_the_first_collector_selects_it_and_stays_on_settings() {
    let mut s = with_collectors(&[]);
    s.apply(Action::CollectorAdded(collector(
        "prod",
        ConnState::Connecting,
    )));
    assert_eq!(s.selected.as_deref(), Some("prod"));
    assert_eq!(s.route, Route::Settings);
    s.apply(Action::CollectorAdded(collector(
        "prod",
        ConnState::Connected,
    )));
    assert_eq!(s.collectors.len(), 1, "adding the same name replaces it");
}

#[test]
fn removing_the_selected_collector_selects_another_or_welcomes() {
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::FleetLoaded {
        collector: "prod".into(),
        fleet: fleet(&[]),
    });
    s.apply(Action::CollectorRemoved("prod".into()));
    assert_eq!(s.selected.as_deref(), Some("staging"));
    assert!(!s.fleets.contains_key("prod"));
    s.apply(Action::CollectorRemoved("staging".into()));
    assert_eq!(s.selected, None);
    assert_eq!(s.route, Route::Settings);
}

#[test]
fn status_updates_only_known_collectors() {
    let mut s = with_collectors(&["prod"]);
    let mut failing = collector("prod", ConnState::Failing);
    failing.status.message = Some("connection refused".into());
    s.apply(Action::CollectorStatus(failing.clone()));
    assert_eq!(s.selected_info(), Some(&failing));
    s.apply(Action::CollectorStatus(collector(
        "gone",
        ConnState::Failing,
    )));
    assert_eq!(s.collectors.len(), 1);
}

#[test]
fn fleet_update_replaces_the_collectors_fleet() {
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::FleetLoaded {
        collector: "prod".into(),
        fleet: fleet(&[("web-1", vec![app("api", AppState::Running)])]),
    });
    assert_eq!(
        s.app("web-1", "api").map(|a| a.status.state),
        Some(AppState::Running)
    );
    s.apply(Action::FleetLoaded {
        collector: "prod".into(),
        fleet: fleet(&[("web-2", vec![app("api", AppState::Failed)])]),
    });
    assert!(s.host("web-1").is_none(), "the update replaces, not merges");
    assert_eq!(
        s.app("web-2", "api").map(|a| a.status.state),
        Some(AppState::Failed)
    );
    s.apply(Action::FleetLoaded {
        collector: "staging".into(),
        fleet: fleet(&[]),
    });
    assert!(
        s.host("web-2").is_some(),
        "another collector's fleet is kept apart"
    );
    s.apply(Action::FleetLoaded {
        collector: "unknown".into(),
        fleet: fleet(&[]),
    });
    assert!(!s.fleets.contains_key("unknown"));
}

#[test]
fn navigation_and_collector_switch() {
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::Navigate(Route::App("web-1".into(), "api".into())));
    assert_eq!(s.route, Route::App("web-1".into(), "api".into()));
    s.apply(Action::Navigate(Route::Events));
    assert_eq!(s.route, Route::Events);
    s.apply(Action::Navigate(Route::Host("web-1".into())));
    s.apply(Action::SelectCollector("staging".into()));
    assert_eq!(s.selected.as_deref(), Some("staging"));
    assert_eq!(s.route, Route::Fleet, "a host of prod is not on staging");
    s.apply(Action::Navigate(Route::Events));
    s.apply(Action::SelectCollector("prod".into()));
    assert_eq!(s.route, Route::Events, "the events view stays");
    s.apply(Action::SelectCollector("nope".into()));
    assert_eq!(s.selected.as_deref(), Some("prod"));
}

#[test]
fn open_app_routes_to_the_app_or_the_host() {
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::Navigate(Route::Settings));
    s.apply(Action::OpenApp(AppRef {
        collector: "staging".into(),
        host: "db-1".into(),
        app: Some("postgres".into()),
    }));
    assert_eq!(s.selected.as_deref(), Some("staging"));
    assert_eq!(s.route, Route::App("db-1".into(), "postgres".into()));
    s.apply(Action::OpenApp(AppRef {
        collector: "prod".into(),
        host: "web-1".into(),
        app: None,
    }));
    assert_eq!(s.selected.as_deref(), Some("prod"));
    assert_eq!(s.route, Route::Host("web-1".into()));
    s.apply(Action::OpenApp(AppRef {
        collector: "elsewhere".into(),
        host: "x".into(),
        app: None,
    }));
    assert_eq!(s.route, Route::Host("web-1".into()));
    assert_eq!(s.banners.len(), 1);
}

#[test]
fn events_pages_merge_newest_first_and_dedupe() {
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::EventsFilter(EventFilter::default()));
    s.apply(Action::EventsRequested);
    assert!(s.events.loading);
    s.apply(Action::EventsLoaded {
        collector: "prod".into(),
        filter: EventFilter::default(),
        page: EventsPage {
            events: vec![
                event(10, "web-1", Severity::Critical),
                event(9, "web-1", Severity::Info),
            ],
            next_before: Some(9),
        },
    });
    assert!(!s.events.loading);
    assert_eq!(s.events.next_before, Some(9));
    // The older page overlaps by one.
    s.apply(Action::EventsLoaded {
        collector: "prod".into(),
        filter: EventFilter {
            before: Some(9),
            ..EventFilter::default()
        },
        page: EventsPage {
            events: vec![
                event(9, "web-1", Severity::Info),
                event(7, "web-2", Severity::Info),
            ],
            next_before: None,
        },
    });
    assert_eq!(ids(&s), [10, 9, 7]);
    assert_eq!(s.events.next_before, None);
}

#[test]
fn live_events_are_prepended_once_when_they_match() {
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::EventsFilter(EventFilter {
        severity: Some(Severity::Critical),
        ..EventFilter::default()
    }));
    s.apply(Action::EventsLoaded {
        collector: "prod".into(),
        filter: EventFilter {
            severity: Some(Severity::Critical),
            ..EventFilter::default()
        },
        page: EventsPage {
            events: vec![event(5, "web-1", Severity::Critical)],
            next_before: None,
        },
    });
    let live = |collector: &str, e: FleetEvent| {
        Action::LiveEvent(FleetEventFrom {
            collector: collector.into(),
            event: e,
        })
    };
    s.apply(live("prod", event(6, "web-1", Severity::Critical)));
    s.apply(live("prod", event(6, "web-1", Severity::Critical)));
    s.apply(live("prod", event(7, "web-1", Severity::Info)));
    s.apply(live("staging", event(8, "web-1", Severity::Critical)));
    assert_eq!(ids(&s), [6, 5]);
}

#[test]
fn event_filter_matches_like_the_collector() {
    let f = EventsState {
        filter: EventFilter {
            host: Some("web-1".into()),
            app: Some("api".into()),
            kind: Some(FleetEventKind::Transition),
            ..EventFilter::default()
        },
        ..EventsState::default()
    };
    assert!(f.admits(&event(1, "web-1", Severity::Info)));
    assert!(!f.admits(&event(1, "web-10", Severity::Info)));
    let mut other_app = event(1, "web-1", Severity::Info);
    other_app.app = None;
    assert!(!f.admits(&other_app));
    let mut restarted = event(1, "web-1", Severity::Info);
    restarted.kind = FleetEventKind::Restarted;
    assert!(!f.admits(&restarted));
}

#[test]
fn stale_event_pages_are_ignored() {
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::EventsFilter(EventFilter::default()));
    s.apply(Action::EventsFilter(EventFilter {
        host: Some("web-1".into()),
        ..EventFilter::default()
    }));
    s.apply(Action::EventsLoaded {
        collector: "prod".into(),
        filter: EventFilter::default(),
        page: EventsPage {
            events: vec![event(1, "web-2", Severity::Info)],
            next_before: None,
        },
    });
    assert!(s.events.events.is_empty());
    assert!(!s.events.loaded);
}

#[test]
fn events_list_is_bounded() {
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::EventsFilter(EventFilter::default()));
    s.apply(Action::EventsLoaded {
        collector: "prod".into(),
        filter: EventFilter::default(),
        page: EventsPage {
            events: (0..EVENTS_CAP as i64 + 10)
                .map(|i| event(i, "h", Severity::Info))
                .collect(),
            next_before: None,
        },
    });
    assert_eq!(s.events.events.len(), EVENTS_CAP);
    assert_eq!(s.events.events[0].id, EVENTS_CAP as i64 + 9);
}

#[test]
fn log_lines_for_another_app_are_dropped() {
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::LogsOpen(key("api")));
    s.apply(Action::LogsInitial {
        key: key("api"),
        newest_first: vec![line(2), line(1)],
        asked: 200,
    });
    s.apply(Action::LogsLines {
        key: key("worker"),
        entries: vec![line(99)],
    });
    s.apply(Action::LogsLines {
        key: key("api"),
        entries: vec![line(3)],
    });
    assert_eq!(s.logs.len(), 3);
    s.apply(Action::LogsOpen(key("worker")));
    assert!(s.logs.is_empty());
    s.apply(Action::LogsLines {
        key: key("api"),
        entries: vec![line(4)],
    });
    assert!(
        s.logs.is_empty(),
        "a late line of the previous app is stale"
    );
}

#[test]
fn log_controls_go_through_the_reducer() {
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::LogsOpen(key("api")));
    s.apply(Action::LogsLines {
        key: key("api"),
        entries: vec![line(1)],
    });
    s.apply(Action::LogsToggleFollow);
    s.apply(Action::LogsLines {
        key: key("api"),
        entries: vec![line(2), line(3)],
    });
    assert_eq!(s.logs.new_since_pause(), 2);
    s.apply(Action::LogsSearch("LINE 3".into()));
    s.apply(Action::LogsToggleFollow);
    assert_eq!(s.logs.window(500).len(), 1);
    s.apply(Action::LogsLevel(LevelFilter::Errors));
    assert!(s.logs.window(500).is_empty());
    s.apply(Action::LogsOlderRequested);
    assert!(s.logs.loading_older);
    s.apply(Action::LogsOlder {
        key: key("api"),
        newest_first: vec![line(0)],
        asked: 200,
    });
    assert!(!s.logs.loading_older);
    assert!(s.logs.at_start);
    s.apply(Action::LogsInterrupted {
        key: key("api"),
        message: Some("agent unreachable".into()),
    });
    assert_eq!(s.logs.interrupted.as_deref(), Some("agent unreachable"));
    s.apply(Action::LogsStopped {
        key: key("api"),
        message: "app not found".into(),
    });
    assert_eq!(s.logs.interrupted, None);
    assert_eq!(s.logs.stopped.as_deref(), Some("app not found"));
}

#[test]
fn banners_are_deduped_bounded_and_dismissible() {
    let mut s = UiState::default();
    let fail = |n: u32| Action::Failed {
        what: format!("Loading fleet {n}"),
        message: "unreachable".into(),
    };
    s.apply(fail(1));
    s.apply(fail(1));
    assert_eq!(s.banners.len(), 1);
    assert_eq!(s.banners[0].text, "Loading fleet 1 failed: unreachable");
    for n in 2..10 {
        s.apply(fail(n));
    }
    assert_eq!(s.banners.len(), BANNERS_CAP);
    assert_eq!(s.banners[0].text, "Loading fleet 5 failed: unreachable");
    let id = s.banners[0].id;
    s.apply(Action::Dismiss(id));
    assert!(s.banners.iter().all(|b| b.id != id));
}

#[test]
fn settings_tray_and_first_paint() {
    let s = dispatch(
        UiState::default(),
        Action::Settings(DesktopSettings {
            dnd: true,
            ..Default::default()
        }),
    );
    assert!(s.settings.dnd);
    let s = dispatch(s, Action::FirstPaintSent);
    assert!(s.first_paint_sent);
}

#[test]
fn switching_collector_resets_events_and_logs() {
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::EventsFilter(EventFilter::default()));
    s.apply(Action::LogsOpen(key("api")));
    s.apply(Action::SelectCollector("staging".into()));
    assert_eq!(s.events, EventsState::default());
    assert_eq!(s.logs.key, None);
}

#[test]
fn the_last_view_opens_once_at_start_and_only_on_a_known_collector() {
    let app = SavedView::App {
        collector: "staging".into(),
        host: "web-1".into(),
        app: "api".into(),
    };
    let settings = |view: Option<SavedView>| DesktopSettings {
        last_view: view,
        ..Default::default()
    };
    let mut s = with_collectors(&["prod", "staging"]);
    s.apply(Action::Settings(settings(Some(app.clone()))));
    assert_eq!(s.route, Route::App("web-1".into(), "api".into()));
    assert_eq!(s.selected.as_deref(), Some("staging"));
    assert_eq!(s.saved_view(), app);
    // Settings read again later (a toggle) do not move the window.
    s.apply(Action::Navigate(Route::Alerts));
    s.apply(Action::Settings(settings(Some(app.clone()))));
    assert_eq!(s.route, Route::Alerts);
    assert_eq!(s.saved_view(), SavedView::Alerts);

    // A view on a collector that was removed since: the fleet of the first one.
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::Settings(settings(Some(app))));
    assert_eq!(s.route, Route::Fleet);
    assert_eq!(s.selected.as_deref(), Some("prod"));
    // With no collector at all, the welcome in Settings stays.
    let mut s = UiState::default();
    s.apply(Action::CollectorsLoaded(Vec::new()));
    s.apply(Action::Settings(settings(Some(SavedView::Events))));
    assert_eq!(s.route, Route::Settings);
}

#[test]
fn a_search_result_opens_its_app_with_the_line_in_context() {
    let mut s = with_collectors(&["prod", "staging"]);
    let anchor = LogAnchor {
        collector: "staging".into(),
        host: "web-2".into(),
        app: "api".into(),
        unix_us: 42,
        cursor: "c42".into(),
    };
    s.apply(Action::OpenLogAt(anchor.clone()));
    assert_eq!(s.route, Route::App("web-2".into(), "api".into()));
    assert_eq!(s.selected.as_deref(), Some("staging"));
    assert_eq!(s.log_anchor, Some(anchor.clone()));
    s.apply(Action::CloseLogAnchor);
    assert_eq!(s.log_anchor, None);
    // On a collector no longer configured: nothing moves.
    let mut s = with_collectors(&["prod"]);
    s.apply(Action::OpenLogAt(anchor));
    assert_eq!(
        (s.route.clone(), s.log_anchor.clone()),
        (Route::Fleet, None)
    );
}

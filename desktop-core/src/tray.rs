//! What the tray shows, from every collector's connection and fleet: a colour (red for anything
//! down or any critical problem, amber for warnings and degraded apps), a tooltip that counts
//! them, and a menu entry for each host that is down, each app that failed or crash-loops, and
//! each other critical problem.

use fleetdeck_proto::desktop::{AppRef, ConnState, ConnStatus, DownItem, TrayHealth, TrayState};
use fleetdeck_proto::{AppState, AppStatus, Exit, Fleet, FleetHealth, HostStatus, Severity};

use crate::notice::signal_name;

/// At most this many entries in the tray's menu.
pub const MAX_DOWN_ITEMS: usize = 20;
/// A problem's menu entry is cut to this many characters (a check's error can be long).
pub const MAX_LABEL_CHARS: usize = 80;

/// One configured collector as the tray sees it.
#[derive(Debug, Clone, Copy)]
pub struct CollectorView<'a> {
    pub name: &'a str,
    pub status: &'a ConnStatus,
    /// The last fleet read, if any.
    pub fleet: Option<&'a Fleet>,
}

fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// How an app's process ended, briefly: `exit 1`, `SIGKILL`.
fn short_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit {code}"),
        Exit::Signal(signal) => {
            signal_name(signal).map_or_else(|| format!("signal {signal}"), str::to_owned)
        }
    }
}

/// An app is degraded (never green) when the agent says so or one of its checks fails.
pub fn app_degraded(status: &AppStatus) -> bool {
    status.degraded || status.checks.iter().any(|c| !c.ok)
}

/// Open problems of a fleet by severity: (critical, warning). The list when the collector sent
/// one, else the summary's counts.
fn problem_counts(fleet: &Fleet) -> (u32, u32) {
    if fleet.problems.is_empty() {
        return (
            fleet.summary.problems_critical,
            fleet.summary.problems_warning,
        );
    }
    let count = |severity| {
        u32::try_from(
            fleet
                .problems
                .iter()
                .filter(|p| p.severity == severity)
                .count(),
        )
        .unwrap_or(u32::MAX)
    };
    (count(Severity::Critical), count(Severity::Warning))
}

/// The tray's state: grey when no collector is configured or none is connected with a fleet;
/// else red if a connected fleet has a host down, an app failed or crash-looping, or a critical
/// problem; amber if it has a warning, a degraded app (a failing check) or is degraded, or a
/// collector is failing; green otherwise.
pub fn tray_state(collectors: &[CollectorView<'_>]) -> TrayState {
    if collectors.is_empty() {
        return TrayState {
            health: TrayHealth::Disconnected,
            tooltip: "Fleetdeck: no collector configured".into(),
            down: Vec::new(),
            alerts: Vec::new(),
        };
    }
    let live: Vec<(&str, &Fleet)> = collectors
        .iter()
        .filter(|c| c.status.state == ConnState::Connected)
        .filter_map(|c| Some((c.name, c.fleet?)))
        .collect();
    if live.is_empty() {
        return TrayState {
            health: TrayHealth::Disconnected,
            tooltip: "Fleetdeck: not connected".into(),
            down: Vec::new(),
            alerts: Vec::new(),
        };
    }
    let failing = collectors
        .iter()
        .filter(|c| c.status.state == ConnState::Failing)
        .count() as u32;
    // With several collectors, each entry says which one it is on.
    let tag = |collector: &str| {
        if collectors.len() > 1 {
            format!("[{collector}] ")
        } else {
            String::new()
        }
    };
    let mut down: Vec<DownItem> = Vec::new();
    for (collector, fleet) in &live {
        for host in &fleet.hosts {
            if host.status == HostStatus::Down {
                // Its apps' states are stale while the host is down: the host is the entry.
                down.push(DownItem {
                    target: AppRef {
                        collector: (*collector).to_owned(),
                        host: host.name.clone(),
                        app: None,
                    },
                    label: format!("{}{}: down", tag(collector), host.name),
                });
                continue;
            }
            for app in &host.apps {
                let status = &app.status;
                if !matches!(status.state, AppState::Failed | AppState::CrashLooping) {
                    continue;
                }
                let exit = status
                    .last_exit
                    .filter(|e| *e != Exit::Code(0))
                    .map(|e| format!(" ({})", short_exit(e)))
                    .unwrap_or_default();
                down.push(DownItem {
                    target: AppRef {
                        collector: (*collector).to_owned(),
                        host: host.name.clone(),
                        app: Some(status.name.clone()),
                    },
                    label: format!(
                        "{}{} / {}: {}{exit}",
                        tag(collector),
                        host.name,
                        status.name,
                        status.state
                    ),
                });
            }
        }
    }
    let down_count = down.len() as u32;
    // Critical problems the entries above do not already stand for (a threshold, a check...).
    for (collector, fleet) in &live {
        for p in &fleet.problems {
            if p.severity != Severity::Critical
                || matches!(p.kind.as_str(), "host-down" | "app-down")
            {
                continue;
            }
            let what = match &p.app {
                Some(app) => format!("{} / {app}", p.host),
                None => p.host.clone(),
            };
            down.push(DownItem {
                target: AppRef {
                    collector: (*collector).to_owned(),
                    host: p.host.clone(),
                    app: p.app.clone(),
                },
                label: crate::notice::cut_chars(
                    &format!("{}{what}: {}", tag(collector), p.message),
                    MAX_LABEL_CHARS,
                ),
            });
        }
    }
    down.sort_by(|a, b| {
        (&a.target.collector, &a.target.host, &a.target.app).cmp(&(
            &b.target.collector,
            &b.target.host,
            &b.target.app,
        ))
    });
    down.truncate(MAX_DOWN_ITEMS);
    let (critical, warnings) = live.iter().fold((0, 0), |(c, w), (_, f)| {
        let (fc, fw) = problem_counts(f);
        (c + fc, w + fw)
    });
    let degraded_apps = live
        .iter()
        .flat_map(|(_, f)| &f.hosts)
        .filter(|h| h.status != HostStatus::Down)
        .flat_map(|h| &h.apps)
        .filter(|a| app_degraded(&a.status))
        .count() as u32;

    let health = if down_count > 0
        || critical > 0
        || live
            .iter()
            .any(|(_, f)| f.summary.health == FleetHealth::Down)
    {
        TrayHealth::Down
    } else if failing > 0
        || warnings > 0
        || degraded_apps > 0
        || live
            .iter()
            .any(|(_, f)| f.summary.health == FleetHealth::Degraded)
    {
        TrayHealth::Degraded
    } else {
        TrayHealth::Ok
    };

    let (hosts, apps, running) = live.iter().fold((0, 0, 0), |(h, a, r), (_, f)| {
        (
            h + f.summary.hosts,
            a + f.summary.apps,
            r + f.summary.apps_running,
        )
    });
    let mut tooltip = format!(
        "Fleetdeck: {}, {running}/{} running",
        plural(hosts, "host", "hosts"),
        plural(apps, "app", "apps")
    );
    let mut trouble = Vec::new();
    if down_count > 0 {
        trouble.push(format!("{down_count} down"));
    }
    if critical > 0 {
        trouble.push(plural(critical, "critical problem", "critical problems"));
    }
    if warnings > 0 {
        trouble.push(plural(warnings, "warning", "warnings"));
    }
    if degraded_apps > 0 {
        trouble.push(plural(degraded_apps, "app degraded", "apps degraded"));
    }
    if failing > 0 {
        trouble.push(format!(
            "{} out of contact",
            plural(failing, "collector", "collectors")
        ));
    }
    if !trouble.is_empty() {
        tooltip.push_str(" — ");
        tooltip.push_str(&trouble.join(", "));
    }
    TrayState {
        health,
        tooltip,
        down,
        alerts: Vec::new(),
    }
}

/// The tray's entries for open alerts nobody acknowledged, per collector (newest first, at most
/// [`MAX_DOWN_ITEMS`] in all): `web-1 / api: web-1 / api failed (exit code 3)`.
pub fn alert_items(collectors: &[(&str, &[fleetdeck_proto::AlertRecord])]) -> Vec<DownItem> {
    let several = collectors.len() > 1;
    let mut items: Vec<(u64, DownItem)> = collectors
        .iter()
        .flat_map(|(collector, alerts)| {
            alerts
                .iter()
                .filter(|a| a.state == fleetdeck_proto::AlertState::Open && a.silenced_by.is_none())
                .map(move |a| {
                    let tag = if several {
                        format!("[{collector}] ")
                    } else {
                        String::new()
                    };
                    (
                        a.started_unix_ms,
                        DownItem {
                            target: AppRef {
                                collector: (*collector).to_owned(),
                                host: a.host.clone(),
                                app: a.app.clone(),
                            },
                            label: crate::notice::cut_chars(
                                &format!("{tag}{}: {}", a.severity.as_str(), a.message),
                                MAX_LABEL_CHARS,
                            ),
                        },
                    )
                })
        })
        .collect();
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    items
        .into_iter()
        .map(|(_, i)| i)
        .take(MAX_DOWN_ITEMS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_proto::{AppKind, AppView, FleetSummary, HostView, Problem};

    fn status(state: ConnState) -> ConnStatus {
        ConnStatus {
            state,
            message: (state == ConnState::Failing).then(|| "refused the key".to_owned()),
            since_unix_ms: 0,
        }
    }

    fn app(name: &str, state: AppState, exit: Option<Exit>) -> AppView {
        AppView {
            status: AppStatus {
                name: name.into(),
                kind: AppKind::Systemd,
                target: format!("{name}.service"),
                state,
                since_unix_ms: None,
                last_exit: exit,
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

    fn host(name: &str, status: HostStatus, apps: Vec<AppView>) -> HostView {
        HostView {
            name: name.into(),
            status,
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
            apps,
            metrics: None,
        }
    }

    /// A fleet whose summary is computed from its hosts, as the collector does.
    fn fleet(hosts: Vec<HostView>) -> Fleet {
        let mut s = FleetSummary {
            health: FleetHealth::Ok,
            hosts: hosts.len() as u32,
            hosts_up: 0,
            hosts_down: 0,
            apps: 0,
            apps_running: 0,
            apps_down: 0,
            apps_degraded: 0,
            apps_stopped: 0,
            problems_warning: 0,
            problems_critical: 0,
        };
        for h in &hosts {
            match h.status {
                HostStatus::Up => s.hosts_up += 1,
                HostStatus::Down => s.hosts_down += 1,
                HostStatus::Unknown => {}
            }
            for a in &h.apps {
                s.apps += 1;
                match a.status.state {
                    AppState::Running => s.apps_running += 1,
                    AppState::Failed | AppState::CrashLooping => s.apps_down += 1,
                    AppState::Stopped => s.apps_stopped += 1,
                    _ => s.apps_degraded += 1,
                }
            }
        }
        s.health = if s.hosts_down > 0 || s.apps_down > 0 {
            FleetHealth::Down
        } else if s.apps_degraded > 0 {
            FleetHealth::Degraded
        } else {
            FleetHealth::Ok
        };
        Fleet {
            summary: s,
            hosts,
            problems: Vec::new(),
            alert_policy: None,
        }
    }

    fn healthy(prefix: &str, hosts: usize) -> Fleet {
        fleet(
            (0..hosts)
                .map(|i| {
                    host(
                        &format!("{prefix}-{i}"),
                        HostStatus::Up,
                        vec![
                            app("api", AppState::Running, None),
                            app("db", AppState::Running, None),
                        ],
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn no_collectors_is_grey() {
        let state = tray_state(&[]);
        assert_eq!(state.health, TrayHealth::Disconnected);
        assert!(state.down.is_empty());
        assert!(state.tooltip.starts_with("Fleetdeck:"));
    }

    #[test]
    fn none_connected_is_grey() {
        let f = healthy("web", 2);
        let (failing, connecting, connected) = (
            status(ConnState::Failing),
            status(ConnState::Connecting),
            status(ConnState::Connected),
        );
        let state = tray_state(&[
            CollectorView {
                name: "a",
                status: &failing,
                fleet: Some(&f),
            },
            CollectorView {
                name: "b",
                status: &connecting,
                fleet: None,
            },
            // Connected, but no fleet read yet.
            CollectorView {
                name: "c",
                status: &connected,
                fleet: None,
            },
        ]);
        assert_eq!(state.health, TrayHealth::Disconnected);
        assert_eq!(state.tooltip, "Fleetdeck: not connected");
        assert!(state.down.is_empty());
    }

    #[test]
    fn all_well_is_green() {
        let f = healthy("web", 3);
        let connected = status(ConnState::Connected);
        let state = tray_state(&[CollectorView {
            name: "home",
            status: &connected,
            fleet: Some(&f),
        }]);
        assert_eq!(state.health, TrayHealth::Ok);
        assert_eq!(state.tooltip, "Fleetdeck: 3 hosts, 6/6 apps running");
        assert!(state.down.is_empty());
    }

    #[test]
    fn a_degraded_fleet_or_a_failing_collector_is_amber() {
        let mut hosts = healthy("web", 2).hosts;
        hosts[1].apps.push(app("worker", AppState::Starting, None));
        let degraded = fleet(hosts);
        let ok = healthy("db", 1);
        let (connected, failing) = (status(ConnState::Connected), status(ConnState::Failing));
        let state = tray_state(&[CollectorView {
            name: "home",
            status: &connected,
            fleet: Some(&degraded),
        }]);
        assert_eq!(state.health, TrayHealth::Degraded);
        assert_eq!(state.tooltip, "Fleetdeck: 2 hosts, 4/5 apps running");
        let state = tray_state(&[
            CollectorView {
                name: "home",
                status: &connected,
                fleet: Some(&ok),
            },
            CollectorView {
                name: "work",
                status: &failing,
                fleet: None,
            },
        ]);
        assert_eq!(state.health, TrayHealth::Degraded);
        assert_eq!(
            state.tooltip,
            "Fleetdeck: 1 host, 2/2 apps running — 1 collector out of contact"
        );
        assert!(state.down.is_empty());
    }

    #[test]
    fn down_hosts_and_crashed_apps_are_red_and_listed() {
        let mut hosts = healthy("web", 3).hosts;
        hosts[0].apps[0] = app("api", AppState::Failed, Some(Exit::Code(1)));
        hosts[0].apps[1] = app("db", AppState::CrashLooping, Some(Exit::Signal(9)));
        hosts[2].status = HostStatus::Down;
        hosts[2].apps[0] = app("api", AppState::Failed, None); // stale: the host is the entry
        hosts[1].apps.push(app("cron", AppState::Stopped, None));
        hosts[1]
            .apps
            .push(app("old", AppState::Failed, Some(Exit::Code(0))));
        let f = fleet(hosts);
        let connected = status(ConnState::Connected);
        let state = tray_state(&[CollectorView {
            name: "home",
            status: &connected,
            fleet: Some(&f),
        }]);
        assert_eq!(state.health, TrayHealth::Down);
        let labels: Vec<&str> = state.down.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "web-0 / api: failed (exit 1)",
                "web-0 / db: crash-looping (SIGKILL)",
                "web-1 / old: failed",
                "web-2: down",
            ]
        );
        assert_eq!(
            state.down[3].target,
            AppRef {
                collector: "home".into(),
                host: "web-2".into(),
                app: None
            }
        );
        assert_eq!(
            state.down[0].target,
            AppRef {
                collector: "home".into(),
                host: "web-0".into(),
                app: Some("api".into())
            }
        );
        assert!(state.tooltip.ends_with(" — 4 down"), "{}", state.tooltip);
        assert!(
            state
                .tooltip
                .starts_with("Fleetdeck: 3 hosts, 3/8 apps running"),
            "{}",
            state.tooltip
        );
    }

    #[test]
    fn entries_are_sorted_across_collectors_and_capped() {
        let crashed = |prefix: &str, n: usize| {
            fleet(
                (0..n)
                    .rev()
                    .map(|i| {
                        host(
                            &format!("{prefix}-{i:02}"),
                            HostStatus::Up,
                            vec![app("api", AppState::Failed, Some(Exit::Code(2)))],
                        )
                    })
                    .collect(),
            )
        };
        let (z, a) = (crashed("z", 15), crashed("a", 15));
        let connected = status(ConnState::Connected);
        let state = tray_state(&[
            CollectorView {
                name: "zulu",
                status: &connected,
                fleet: Some(&z),
            },
            CollectorView {
                name: "alpha",
                status: &connected,
                fleet: Some(&a),
            },
        ]);
        assert_eq!(state.health, TrayHealth::Down);
        assert_eq!(state.down.len(), MAX_DOWN_ITEMS);
        assert_eq!(state.down[0].label, "[alpha] a-00 / api: failed (exit 2)");
        assert_eq!(state.down[14].label, "[alpha] a-14 / api: failed (exit 2)");
        assert_eq!(state.down[15].label, "[zulu] z-00 / api: failed (exit 2)");
        let keys: Vec<_> = state.down.iter().map(|d| d.target.clone()).collect();
        let mut sorted = keys.clone();
        sorted
            .sort_by(|a, b| (&a.collector, &a.host, &a.app).cmp(&(&b.collector, &b.host, &b.app)));
        assert_eq!(keys, sorted);
        // The tooltip counts them all, not only those listed.
        assert!(state.tooltip.ends_with(" — 30 down"), "{}", state.tooltip);
    }

    fn problem(
        kind: &str,
        severity: Severity,
        host: &str,
        app: Option<&str>,
        message: &str,
    ) -> Problem {
        Problem {
            kind: kind.into(),
            rule: (kind == "threshold").then(|| "disk-full".into()),
            severity,
            host: host.into(),
            app: app.map(str::to_owned),
            subject: None,
            message: message.into(),
            since_unix_ms: 0,
        }
    }

    fn one(fleet: &Fleet) -> TrayState {
        let connected = status(ConnState::Connected);
        tray_state(&[CollectorView {
            name: "home",
            status: &connected,
            fleet: Some(fleet),
        }])
    }

    #[test]
    fn a_warning_is_amber_and_counted() {
        let mut f = healthy("web", 2);
        f.problems = vec![
            problem(
                "threshold",
                Severity::Warning,
                "web-0",
                None,
                "/ is 91.0 % full",
            ),
            problem(
                "source",
                Severity::Warning,
                "web-1",
                None,
                "docker not answering",
            ),
        ];
        let state = one(&f);
        assert_eq!(state.health, TrayHealth::Degraded);
        assert_eq!(
            state.tooltip,
            "Fleetdeck: 2 hosts, 4/4 apps running — 2 warnings"
        );
        assert!(state.down.is_empty(), "warnings are not menu entries");
        // The summary's counts stand when the list is absent (an older collector).
        let mut f = healthy("web", 1);
        f.summary.problems_warning = 1;
        let state = one(&f);
        assert_eq!(state.health, TrayHealth::Degraded);
        assert!(state.tooltip.ends_with(" — 1 warning"), "{}", state.tooltip);
    }

    #[test]
    fn a_critical_problem_is_red_and_listed() {
        let mut f = healthy("web", 2);
        f.problems = vec![
            problem(
                "threshold",
                Severity::Critical,
                "web-1",
                None,
                "/var is 97.5 % full (critical at 97 %)",
            ),
            problem(
                "check",
                Severity::Warning,
                "web-0",
                Some("api"),
                "health: status 500",
            ),
        ];
        let state = one(&f);
        assert_eq!(state.health, TrayHealth::Down);
        assert_eq!(
            state.tooltip,
            "Fleetdeck: 2 hosts, 4/4 apps running — 1 critical problem, 1 warning"
        );
        let labels: Vec<&str> = state.down.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["web-1: /var is 97.5 % full (critical at 97 %)"]);
        assert_eq!(state.down[0].target.app, None);
        // A long message is cut for the menu.
        f.problems[0].message = "x".repeat(200);
        let state = one(&f);
        assert_eq!(state.down[0].label.chars().count(), MAX_LABEL_CHARS + 1);
        assert!(
            state.down[0].label.ends_with("x…"),
            "{}",
            state.down[0].label
        );
    }

    #[test]
    fn an_app_with_a_failing_check_is_never_green() {
        let mut f = healthy("web", 1);
        f.hosts[0].apps[0]
            .status
            .checks
            .push(fleetdeck_proto::CheckResult {
                name: "health".into(),
                kind: fleetdeck_proto::CheckKind::Tcp,
                target: "127.0.0.1:9".into(),
                ok: false,
                consecutive_failures: 1,
                status_code: None,
                latency_ms: None,
                error: Some("connection refused".into()),
                cert_not_after_unix_ms: None,
                checked_unix_ms: 0,
            });
        let state = one(&f);
        assert_eq!(state.health, TrayHealth::Degraded);
        assert_eq!(
            state.tooltip,
            "Fleetdeck: 1 host, 2/2 apps running — 1 app degraded"
        );
        let mut f = healthy("web", 1);
        f.hosts[0].apps[1].status.degraded = true;
        f.hosts[0].apps[0].status.degraded = true;
        let state = one(&f);
        assert_eq!(state.health, TrayHealth::Degraded);
        assert!(
            state.tooltip.ends_with(" — 2 apps degraded"),
            "{}",
            state.tooltip
        );
    }

    #[test]
    fn open_unacknowledged_unsilenced_alerts_are_listed_newest_first() {
        use fleetdeck_proto::{AlertRecord, AlertState};
        let alert = |id: i64, state: AlertState, silenced: bool, at: u64| AlertRecord {
            id,
            kind: "problem".into(),
            state,
            severity: Severity::Critical,
            host: "web-1".into(),
            app: Some(format!("app{id}")),
            aspect: "state".into(),
            aspect_name: None,
            message: format!("app{id} on web-1 failed"),
            context: None,
            check: None,
            threshold: None,
            reason: None,
            started_unix_ms: at,
            acknowledged_unix_ms: None,
            acknowledged_by: None,
            ack_note: None,
            resolved_unix_ms: None,
            duration_ms: 0,
            silenced_by: silenced.then_some(1),
            deliveries: Vec::new(),
        };
        let alerts = vec![
            alert(1, AlertState::Open, false, 10),
            alert(2, AlertState::Acknowledged, false, 20),
            alert(3, AlertState::Open, true, 30),
            alert(4, AlertState::Open, false, 40),
        ];
        let items = alert_items(&[("home", &alerts)]);
        let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "critical: app4 on web-1 failed",
                "critical: app1 on web-1 failed"
            ]
        );
        assert_eq!(items[0].target.app.as_deref(), Some("app4"));
    }
}

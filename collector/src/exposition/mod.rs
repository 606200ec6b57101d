//! `GET /metrics`: the fleet and the collector itself in the Prometheus text format (0.0.4).
//! Names follow Prometheus's conventions: base units in the name (`_bytes`, `_seconds`,
//! `_ratio`), `_total` on counters, `host` and `app` labels. A host that does not answer shows
//! `fleetdeck_host_up 0` and no readings (its last ones would be stale); uptime ratios and alerts
//! are history and stay. The fleet's families are written by [`text`] family by family, as they
//! go (thousands of hosts make hundreds of thousands of series); the collector's own few
//! (histograms) by the `prometheus` crate.

pub mod text;

use std::collections::{BTreeMap, HashMap};

use fleetdeck_proto::{
    AppState, AppView, CheckResult, ClusterStatus, Fleet, HostMetrics, HostStatus, HostView,
    Severity,
};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::store::scrape::AppSample;
use crate::telemetry::Telemetry;
use text::{Kind, Text};

/// Everything one scrape shows, read from the store and the alerting task.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// Hosts with their latest metrics in full, apps with their 30-day uptime, open problems.
    pub fleet: Fleet,
    /// Each app's latest sample (CPU, memory limit, network), by (host, app).
    pub app_samples: HashMap<(String, String), AppSample>,
    /// Open alerts by severity and acknowledgement.
    pub open_alerts: Vec<(Severity, bool, u64)>,
    /// Agents in the collector's config.
    pub agents_configured: usize,
    /// This collector's role on its database.
    pub cluster: ClusterStatus,
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const APP_STATES: [AppState; 8] = [
    AppState::Running,
    AppState::Starting,
    AppState::Stopping,
    AppState::Stopped,
    AppState::Failed,
    AppState::CrashLooping,
    AppState::Unknown,
    AppState::NotFound,
];

/// A family read from each `T`: its name, its help, and its value there, if it has one.
type Read<T> = (&'static str, &'static str, fn(&T) -> Option<f64>);
/// A counter read from each `T`.
type Total<T> = (&'static str, &'static str, fn(&T) -> u64);

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

/// The exposition text of `scrape` and the collector's own figures.
pub fn render(scrape: &Scrape, telemetry: &Telemetry) -> prometheus::Result<String> {
    let all: Vec<&HostView> = scrape.fleet.hosts.iter().collect();
    let up: Vec<&HostView> = all
        .iter()
        .copied()
        .filter(|h| h.status == HostStatus::Up)
        .collect();
    // About 6 KiB of text a host with four apps.
    let mut t = Text::with_capacity(4096 + all.len() * 6 * 1024);
    t.family(
        "fleetdeck_collector_build_info",
        Kind::Gauge,
        "The collector's version (always 1).",
    );
    t.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    t.family(
        "fleetdeck_collector_agents",
        Kind::Gauge,
        "Agents in the collector's config.",
    );
    t.sample(&[], scrape.agents_configured as f64);
    cluster(&mut t, &scrape.cluster);
    hosts(&mut t, &all, &up);
    host_readings(&mut t, &up);
    apps(&mut t, &all, &up, &scrape.app_samples);
    checks(&mut t, &up);
    alerts(&mut t, scrape);
    let registry = Registry::new();
    telemetry.register(&registry)?;
    let mut own = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut own)?;
    t.append(&String::from_utf8_lossy(&own));
    Ok(t.finish())
}

/// Whether this collector leads: the one to alert on is `sum(fleetdeck_collector_leader) != 1`
/// over every collector of a database.
fn cluster(t: &mut Text, cluster: &ClusterStatus) {
    t.family(
        "fleetdeck_collector_leader",
        Kind::Gauge,
        "1 if this collector polls, subscribes and alerts (alone on its database, or the leader of a shared PostgreSQL database); 0 on a standby.",
    );
    let leads = matches!(cluster.role.as_str(), "single" | "leader");
    t.sample(&[], if leads { 1.0 } else { 0.0 });
    if let Some(epoch) = cluster.epoch {
        t.family(
            "fleetdeck_collector_leader_epoch",
            Kind::Gauge,
            "The shared database's leader epoch as this collector last saw it: it rises by one at each new leader.",
        );
        t.sample(&[], epoch as f64);
    }
}

/// A family with one sample per host of `hosts` for which `value` has one.
fn per_host(
    t: &mut Text,
    hosts: &[&HostView],
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: impl Fn(&HostView) -> Option<f64>,
) {
    t.family(name, kind, help);
    for h in hosts {
        if let Some(v) = value(h) {
            t.sample(&[("host", &h.name)], v);
        }
    }
}

fn hosts(t: &mut Text, all: &[&HostView], up: &[&HostView]) {
    per_host(
        t,
        all,
        "fleetdeck_host_up",
        Kind::Gauge,
        "1 if the host's agent answers its polls, 0 if not (then its readings are not shown).",
        |h| Some(flag(h.status == HostStatus::Up)),
    );
    per_host(
        t,
        all,
        "fleetdeck_host_last_seen_timestamp_seconds",
        Kind::Gauge,
        "When the host's agent last answered a poll.",
        |h| h.last_seen_unix_ms.map(seconds),
    );
    t.family(
        "fleetdeck_agent_info",
        Kind::Gauge,
        "The host's agent: its version and wire version (always 1).",
    );
    for h in all {
        if let Some(version) = &h.agent_version {
            let wire = h.wire_version.map(|w| w.to_string()).unwrap_or_default();
            t.sample(
                &[
                    ("host", &h.name),
                    ("version", version),
                    ("wire_version", &wire),
                ],
                1.0,
            );
        }
    }
    per_host(
        t,
        all,
        "fleetdeck_agent_outdated",
        Kind::Gauge,
        "1 if the host's agent is older than the collector: upgrade it.",
        |h| Some(flag(h.agent_outdated)),
    );
    let metric =
        |f: fn(&HostMetrics) -> Option<f64>| move |h: &HostView| h.metrics.as_ref().and_then(f);
    let gauges: [Read<HostMetrics>; 9] = [
        ("fleetdeck_host_cpu_usage_ratio", "Busy time of all cores together, 0-1.", |m| {
            m.cpu.total_percent.map(|p| p / 100.0)
        }),
        ("fleetdeck_host_cpu_cores", "CPU cores.", |m| Some(m.cpu.cores as f64)),
        (
            "fleetdeck_host_memory_used_bytes",
            "Memory in use: total less what is available (page cache the kernel can drop is not used).",
            |m| Some(m.memory.used_bytes as f64),
        ),
        ("fleetdeck_host_memory_total_bytes", "Memory in all.", |m| {
            Some(m.memory.total_bytes as f64)
        }),
        ("fleetdeck_host_swap_used_bytes", "Swap in use.", |m| Some(m.swap.used_bytes as f64)),
        ("fleetdeck_host_load1", "Load average over 1 minute.", |m| Some(m.load.one)),
        ("fleetdeck_host_load5", "Load average over 5 minutes.", |m| Some(m.load.five)),
        ("fleetdeck_host_load15", "Load average over 15 minutes.", |m| Some(m.load.fifteen)),
        ("fleetdeck_host_uptime_seconds", "Time since the host booted.", |m| {
            Some(m.uptime_secs)
        }),
    ];
    for (name, help, read) in gauges {
        per_host(t, up, name, Kind::Gauge, help, metric(read));
    }
}

fn host_readings(t: &mut Text, up: &[&HostView]) {
    type Fs = fleetdeck_proto::Filesystem;
    let filesystems: [Read<Fs>; 5] = [
        (
            "fleetdeck_host_filesystem_size_bytes",
            "A filesystem's size.",
            |f| Some(f.total_bytes as f64),
        ),
        (
            "fleetdeck_host_filesystem_used_bytes",
            "A filesystem's blocks in use, as df counts them (root's reserve included).",
            |f| Some(f.used_bytes as f64),
        ),
        (
            "fleetdeck_host_filesystem_avail_bytes",
            "What an unprivileged process can still write to a filesystem.",
            |f| Some(f.available_bytes as f64),
        ),
        (
            "fleetdeck_host_filesystem_files",
            "A filesystem's inodes.",
            |f| (f.inodes_total > 0).then_some(f.inodes_total as f64),
        ),
        (
            "fleetdeck_host_filesystem_files_used",
            "A filesystem's inodes in use.",
            |f| (f.inodes_total > 0).then_some(f.inodes_used as f64),
        ),
    ];
    for (name, help, read) in filesystems {
        t.family(name, Kind::Gauge, help);
        for h in up {
            for fs in h.metrics.iter().flat_map(|m| &m.filesystems) {
                if let Some(v) = read(fs) {
                    t.sample(
                        &[
                            ("device", &fs.device),
                            ("fstype", &fs.fs_type),
                            ("host", &h.name),
                            ("mountpoint", &fs.mount_point),
                        ],
                        v,
                    );
                }
            }
        }
    }
    type Net = fleetdeck_proto::NetInterface;
    let network: [Total<Net>; 2] = [
        (
            "fleetdeck_host_network_receive_bytes_total",
            "Bytes an interface received since the host booted.",
            |n| n.rx_bytes_total,
        ),
        (
            "fleetdeck_host_network_transmit_bytes_total",
            "Bytes an interface sent since the host booted.",
            |n| n.tx_bytes_total,
        ),
    ];
    per_device(t, up, network, |m| &m.network, |n| &n.name);
    type Disk = fleetdeck_proto::DiskIo;
    let disks: [Total<Disk>; 2] = [
        (
            "fleetdeck_host_disk_read_bytes_total",
            "Bytes read from a block device since the host booted.",
            |d| d.read_bytes_total,
        ),
        (
            "fleetdeck_host_disk_written_bytes_total",
            "Bytes written to a block device since the host booted.",
            |d| d.written_bytes_total,
        ),
    ];
    per_device(t, up, disks, |m| &m.disks, |d| &d.device);
}

/// Counter families with one sample per device (`devices` of each host's metrics).
fn per_device<T>(
    t: &mut Text,
    up: &[&HostView],
    families: [Total<T>; 2],
    devices: fn(&HostMetrics) -> &Vec<T>,
    device: fn(&T) -> &str,
) {
    for (name, help, read) in families {
        t.family(name, Kind::Counter, help);
        for h in up {
            for d in h.metrics.iter().flat_map(devices) {
                t.sample(&[("device", device(d)), ("host", &h.name)], read(d) as f64);
            }
        }
    }
}

/// A family with one sample per app of `hosts` for which `value` has one.
fn per_app(
    t: &mut Text,
    hosts: &[&HostView],
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: impl Fn(&HostView, &AppView) -> Option<f64>,
) {
    t.family(name, kind, help);
    for h in hosts {
        for a in &h.apps {
            if let Some(v) = value(h, a) {
                t.sample(&[("app", &a.status.name), ("host", &h.name)], v);
            }
        }
    }
}

fn apps(
    t: &mut Text,
    all: &[&HostView],
    up: &[&HostView],
    samples: &HashMap<(String, String), AppSample>,
) {
    t.family(
        "fleetdeck_app_uptime_ratio",
        Kind::Gauge,
        "Time running over time known in the window, 0-1.",
    );
    for h in all {
        for a in &h.apps {
            if let Some(ratio) = a.uptime_30d {
                t.sample(
                    &[
                        ("app", &a.status.name),
                        ("host", &h.name),
                        ("window", "30d"),
                    ],
                    ratio,
                );
            }
        }
    }
    per_app(
        t,
        up,
        "fleetdeck_app_up",
        Kind::Gauge,
        "1 if the app is running (a degraded one too: see fleetdeck_app_degraded), else 0.",
        |_, a| Some(flag(a.status.state == AppState::Running)),
    );
    t.family(
        "fleetdeck_app_state",
        Kind::Gauge,
        "1 for the app's current state, 0 for the others.",
    );
    for h in up {
        for a in &h.apps {
            for state in APP_STATES {
                t.sample(
                    &[
                        ("app", &a.status.name),
                        ("host", &h.name),
                        ("state", state.as_str()),
                    ],
                    flag(a.status.state == state),
                );
            }
        }
    }
    per_app(
        t,
        up,
        "fleetdeck_app_degraded",
        Kind::Gauge,
        "1 if a check of the app failed twice in a row or more: it runs but does not serve.",
        |_, a| Some(flag(a.status.degraded)),
    );
    per_app(
        t,
        up,
        "fleetdeck_app_state_since_timestamp_seconds",
        Kind::Gauge,
        "When the collector saw the app enter its current state.",
        |_, a| Some(seconds(a.state_since_unix_ms)),
    );
    per_app(
        t,
        up,
        "fleetdeck_app_restarts_total",
        Kind::Counter,
        "Restarts the source counted (systemd NRestarts, Docker RestartCount).",
        |_, a| a.status.restarts.map(|r| r as f64),
    );
    per_app(
        t,
        up,
        "fleetdeck_app_memory_bytes",
        Kind::Gauge,
        "The app's memory (its cgroup's, or its main process's resident memory).",
        |_, a| a.status.memory_bytes.map(|m| m as f64),
    );
    let sample = |h: &HostView, a: &AppView| samples.get(&(h.name.clone(), a.status.name.clone()));
    let from_samples: [Read<AppSample>; 4] = [
        (
            "fleetdeck_app_cpu_usage_ratio",
            "CPU the app used at its latest sample, in cores (1 = one core busy).",
            |s| s.cpu_percent.map(|p| p / 100.0),
        ),
        (
            "fleetdeck_app_memory_limit_bytes",
            "The app's memory limit.",
            |s| s.memory_limit_bytes.map(|l| l as f64),
        ),
        (
            "fleetdeck_app_network_receive_bytes_per_second",
            "What the app's network received per second at its latest sample (containers).",
            |s| s.net_rx_bytes_per_sec,
        ),
        (
            "fleetdeck_app_network_transmit_bytes_per_second",
            "What the app's network sent per second at its latest sample (containers).",
            |s| s.net_tx_bytes_per_sec,
        ),
    ];
    for (name, help, read) in from_samples {
        per_app(t, up, name, Kind::Gauge, help, |h, a| {
            sample(h, a).and_then(read)
        });
    }
}

fn checks(t: &mut Text, up: &[&HostView]) {
    let families: [Read<CheckResult>; 5] = [
        (
            "fleetdeck_check_up",
            "1 if the check's last run passed, else 0.",
            |c| Some(flag(c.ok)),
        ),
        (
            "fleetdeck_check_consecutive_failures",
            "Failed runs of the check in a row (0 after a pass).",
            |c| Some(c.consecutive_failures as f64),
        ),
        (
            "fleetdeck_check_latency_seconds",
            "Time to the answer at the check's last run.",
            |c| c.latency_ms.map(|ms| ms / 1000.0),
        ),
        (
            "fleetdeck_check_http_status_code",
            "The HTTP status of the check's last run.",
            |c| c.status_code.map(f64::from),
        ),
        (
            "fleetdeck_check_certificate_expiry_timestamp_seconds",
            "When the certificate the check's server showed expires.",
            |c| c.cert_not_after_unix_ms.map(seconds),
        ),
    ];
    for (name, help, read) in families {
        t.family(name, Kind::Gauge, help);
        for h in up {
            for a in &h.apps {
                for c in &a.status.checks {
                    if let Some(v) = read(c) {
                        t.sample(
                            &[
                                ("app", &a.status.name),
                                ("check", &c.name),
                                ("host", &h.name),
                                ("kind", c.kind.as_str()),
                            ],
                            v,
                        );
                    }
                }
            }
        }
    }
}

fn alerts(t: &mut Text, scrape: &Scrape) {
    t.family(
        "fleetdeck_alerts_open",
        Kind::Gauge,
        "Open alerts (not resolved) by severity and whether someone acknowledged them.",
    );
    for (severity, acked, n) in &scrape.open_alerts {
        t.sample(
            &[
                ("acknowledged", if *acked { "true" } else { "false" }),
                ("severity", severity.as_str()),
            ],
            *n as f64,
        );
    }
    let mut problems: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for p in &scrape.fleet.problems {
        *problems
            .entry((p.severity.as_str(), p.kind.as_str()))
            .or_default() += 1;
    }
    t.family(
        "fleetdeck_problems",
        Kind::Gauge,
        "Problems open now (the fleet's problem list) by severity and kind.",
    );
    for ((severity, kind), n) in problems {
        t.sample(&[("kind", kind), ("severity", severity)], n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_proto::{AppKind, AppStatus, AppView, HostMetrics, HostView};

    fn app(name: &str, state: AppState) -> AppView {
        AppView {
            status: AppStatus {
                name: name.into(),
                kind: AppKind::Systemd,
                target: format!("{name}.service"),
                state,
                since_unix_ms: None,
                last_exit: None,
                restarts: Some(3),
                memory_bytes: Some(1024),
                error: None,
                systemd: None,
                docker: None,
                expect: Default::default(),
                stopped_by_request: false,
                checks: Vec::new(),
                degraded: false,
            },
            state_since_unix_ms: 1_500,
            uptime_30d: Some(0.5),
            uptime_known_since_unix_ms: None,
        }
    }

    fn host(name: &str, status: HostStatus, mount: &str) -> HostView {
        let metrics: HostMetrics = serde_json::from_value(serde_json::json!({
            "hostname": name, "boot_id": "b", "uptime_secs": 10.0, "window_secs": 1.0,
            "cpu": {"cores": 2, "total_percent": 50.0, "per_core_percent": []},
            "memory": {"total_bytes": 100, "available_bytes": 60, "used_bytes": 40},
            "swap": {"total_bytes": 0, "free_bytes": 0, "used_bytes": 0},
            "load": {"one": 0.5, "five": 0.25, "fifteen": 0.125},
            "filesystems": [{"mount_point": mount, "device": "/dev/x", "fs_type": "ext4",
                "total_bytes": 10, "used_bytes": 4, "available_bytes": 6}],
            "network": [{"name": "eth0", "rx_bytes_total": 7, "tx_bytes_total": 8}]
        }))
        .expect("host metrics");
        HostView {
            name: name.into(),
            status,
            status_since_unix_ms: None,
            last_seen_unix_ms: Some(2_000),
            error: None,
            hostname: Some(name.into()),
            agent_instance_id: None,
            agent_version: Some("0.1.0".into()),
            wire_version: Some(1),
            agent_outdated: false,
            cpu_percent: Some(50.0),
            memory_used_bytes: Some(40),
            memory_total_bytes: Some(100),
            apps: vec![app("web", AppState::Running)],
            metrics: Some(metrics),
        }
    }

    fn render_hosts(hosts: Vec<HostView>) -> String {
        let scrape = Scrape {
            fleet: Fleet {
                summary: crate::store::query::summarize(&hosts),
                hosts,
                problems: Vec::new(),
                alert_policy: None,
            },
            app_samples: HashMap::new(),
            open_alerts: vec![(Severity::Critical, false, 2)],
            agents_configured: 2,
            cluster: ClusterStatus {
                role: "standby".into(),
                this: "b".into(),
                leader: Some("a".into()),
                epoch: Some(3),
                since_unix_ms: 0,
            },
        };
        render(&scrape, &Telemetry::default()).expect("render")
    }

    #[test]
    fn a_label_value_with_quotes_backslashes_and_newlines_is_escaped() {
        let text = render_hosts(vec![host("up", HostStatus::Up, "/mnt/a \"b\"\\\nc")]);
        assert!(
            text.contains(r#"mountpoint="/mnt/a \"b\"\\\nc""#),
            "the mount point is escaped: {text}"
        );
        // No series line is broken in two by the newline.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "a torn line: {line:?}");
        }
    }

    #[test]
    fn a_down_host_shows_up_0_and_its_history_but_no_stale_readings() {
        let text = render_hosts(vec![
            host("up", HostStatus::Up, "/"),
            host("gone", HostStatus::Down, "/"),
        ]);
        let has = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
        assert!(has(r#"fleetdeck_host_up{host="up"} 1"#), "{text}");
        assert!(has(r#"fleetdeck_host_up{host="gone"} 0"#), "{text}");
        assert!(
            has(r#"fleetdeck_host_memory_used_bytes{host="up"} 40"#),
            "{text}"
        );
        assert!(
            !has(r#"fleetdeck_host_memory_used_bytes{host="gone"}"#),
            "{text}"
        );
        assert!(has(r#"fleetdeck_app_up{app="web",host="up"} 1"#), "{text}");
        assert!(!has(r#"fleetdeck_app_up{app="web",host="gone"}"#), "{text}");
        assert!(
            has(r#"fleetdeck_app_uptime_ratio{app="web",host="gone",window="30d"} 0.5"#),
            "{text}"
        );
        assert!(
            has(r#"fleetdeck_host_cpu_usage_ratio{host="up"} 0.5"#),
            "{text}"
        );
        assert!(
            has(r#"fleetdeck_app_restarts_total{app="web",host="up"} 3"#),
            "{text}"
        );
        assert!(
            has(r#"fleetdeck_host_network_receive_bytes_total{device="eth0",host="up"} 7"#),
            "{text}"
        );
        assert!(
            has(r#"fleetdeck_alerts_open{acknowledged="false",severity="critical"} 2"#),
            "{text}"
        );
        assert!(has("fleetdeck_collector_agents 2"), "{text}");
        assert!(has("fleetdeck_collector_leader 0"), "a standby: {text}");
        assert!(has("fleetdeck_collector_leader_epoch 3"), "{text}");
        assert!(
            has(r#"fleetdeck_collector_polls_total{result="failed"} 0"#),
            "{text}"
        );
    }
}

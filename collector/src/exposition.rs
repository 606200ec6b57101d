//! `GET /metrics`: the fleet and the collector itself in the Prometheus text format (0.0.4),
//! written by the `prometheus` crate. Names follow Prometheus's conventions: base units in the
//! name (`_bytes`, `_seconds`, `_ratio`), `_total` on counters, `host` and `app` labels. A host
//! that does not answer shows `fleetdeck_host_up 0` and no readings (its last ones would be
//! stale); uptime ratios and alerts are history and stay.

use std::collections::HashMap;

use fleetdeck_proto::{AppState, Fleet, HostStatus, Severity};
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry, TextEncoder};

use crate::store::scrape::AppSample;
use crate::telemetry::Telemetry;

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

/// Families made as they are first needed and registered once.
struct Families {
    registry: Registry,
    gauges: HashMap<&'static str, GaugeVec>,
    counters: HashMap<&'static str, CounterVec>,
}

impl Families {
    fn gauge(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<GaugeVec> {
        if let Some(g) = self.gauges.get(name) {
            return Ok(g.clone());
        }
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(g.clone()))?;
        self.gauges.insert(name, g.clone());
        Ok(g)
    }

    fn counter(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<CounterVec> {
        if let Some(c) = self.counters.get(name) {
            return Ok(c.clone());
        }
        let c = CounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(c.clone()))?;
        self.counters.insert(name, c.clone());
        Ok(c)
    }

    fn set(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> prometheus::Result<()> {
        let (keys, values): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        self.gauge(name, help, &keys)?
            .get_metric_with_label_values(&values)?
            .set(value);
        Ok(())
    }

    /// A counter the agent keeps (a total read from the host): shown as it is.
    fn total(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> prometheus::Result<()> {
        let (keys, values): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        let c = self
            .counter(name, help, &keys)?
            .get_metric_with_label_values(&values)?;
        c.reset();
        c.inc_by(value.max(0.0));
        Ok(())
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The exposition text of `scrape` and the collector's own figures.
pub fn render(scrape: &Scrape, telemetry: &Telemetry) -> prometheus::Result<String> {
    let mut f = Families {
        registry: Registry::new(),
        gauges: HashMap::new(),
        counters: HashMap::new(),
    };
    telemetry.register(&f.registry)?;
    f.set(
        "fleetdeck_collector_build_info",
        "The collector's version (always 1).",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    )?;
    f.set(
        "fleetdeck_collector_agents",
        "Agents in the collector's config.",
        &[],
        scrape.agents_configured as f64,
    )?;
    for host in &scrape.fleet.hosts {
        hosts(&mut f, host, &scrape.app_samples)?;
    }
    for (severity, acked, n) in &scrape.open_alerts {
        f.set(
            "fleetdeck_alerts_open",
            "Open alerts (not resolved) by severity and whether someone acknowledged them.",
            &[
                ("severity", severity.as_str()),
                ("acknowledged", if *acked { "true" } else { "false" }),
            ],
            *n as f64,
        )?;
    }
    let mut problems: HashMap<(&str, &str), u64> = HashMap::new();
    for p in &scrape.fleet.problems {
        *problems
            .entry((p.severity.as_str(), p.kind.as_str()))
            .or_default() += 1;
    }
    for ((severity, kind), n) in problems {
        f.set(
            "fleetdeck_problems",
            "Problems open now (the fleet's problem list) by severity and kind.",
            &[("severity", severity), ("kind", kind)],
            n as f64,
        )?;
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&f.registry.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

fn hosts(
    f: &mut Families,
    host: &fleetdeck_proto::HostView,
    app_samples: &HashMap<(String, String), AppSample>,
) -> prometheus::Result<()> {
    let h = host.name.as_str();
    let up = host.status == HostStatus::Up;
    f.set(
        "fleetdeck_host_up",
        "1 if the host's agent answered its last polls, 0 if not (then its readings are not shown).",
        &[("host", h)],
        if up { 1.0 } else { 0.0 },
    )?;
    if let Some(seen) = host.last_seen_unix_ms {
        f.set(
            "fleetdeck_host_last_seen_timestamp_seconds",
            "When the host's agent last answered a poll.",
            &[("host", h)],
            seconds(seen),
        )?;
    }
    if let Some(version) = &host.agent_version {
        let wire = host.wire_version.map(|w| w.to_string()).unwrap_or_default();
        f.set(
            "fleetdeck_agent_info",
            "The host's agent: its version and wire version (always 1).",
            &[("host", h), ("version", version), ("wire_version", &wire)],
            1.0,
        )?;
    }
    f.set(
        "fleetdeck_agent_outdated",
        "1 if the host's agent is older than the collector: upgrade it.",
        &[("host", h)],
        if host.agent_outdated { 1.0 } else { 0.0 },
    )?;
    for app in &host.apps {
        let a = app.status.name.as_str();
        if let Some(ratio) = app.uptime_30d {
            f.set(
                "fleetdeck_app_uptime_ratio",
                "Time running over time known in the window, 0-1.",
                &[("host", h), ("app", a), ("window", "30d")],
                ratio,
            )?;
        }
    }
    if !up {
        return Ok(());
    }
    if let Some(m) = &host.metrics {
        host_readings(f, h, m)?;
    }
    for app in &host.apps {
        apps(
            f,
            h,
            app,
            app_samples.get(&(host.name.clone(), app.status.name.clone())),
        )?;
    }
    Ok(())
}

fn host_readings(
    f: &mut Families,
    h: &str,
    m: &fleetdeck_proto::HostMetrics,
) -> prometheus::Result<()> {
    let host = [("host", h)];
    if let Some(cpu) = m.cpu.total_percent {
        f.set(
            "fleetdeck_host_cpu_usage_ratio",
            "Busy time of all cores together, 0-1.",
            &host,
            cpu / 100.0,
        )?;
    }
    f.set(
        "fleetdeck_host_cpu_cores",
        "CPU cores.",
        &host,
        m.cpu.cores as f64,
    )?;
    f.set(
        "fleetdeck_host_memory_used_bytes",
        "Memory in use: total less what is available (page cache the kernel can drop is not used).",
        &host,
        m.memory.used_bytes as f64,
    )?;
    f.set(
        "fleetdeck_host_memory_total_bytes",
        "Memory in all.",
        &host,
        m.memory.total_bytes as f64,
    )?;
    f.set(
        "fleetdeck_host_swap_used_bytes",
        "Swap in use.",
        &host,
        m.swap.used_bytes as f64,
    )?;
    f.set(
        "fleetdeck_host_load1",
        "Load average over 1 minute.",
        &host,
        m.load.one,
    )?;
    f.set(
        "fleetdeck_host_load5",
        "Load average over 5 minutes.",
        &host,
        m.load.five,
    )?;
    f.set(
        "fleetdeck_host_load15",
        "Load average over 15 minutes.",
        &host,
        m.load.fifteen,
    )?;
    f.set(
        "fleetdeck_host_uptime_seconds",
        "Time since the host booted.",
        &host,
        m.uptime_secs,
    )?;
    for fs in &m.filesystems {
        let labels = [
            ("host", h),
            ("mountpoint", fs.mount_point.as_str()),
            ("device", fs.device.as_str()),
            ("fstype", fs.fs_type.as_str()),
        ];
        f.set(
            "fleetdeck_host_filesystem_size_bytes",
            "A filesystem's size.",
            &labels,
            fs.total_bytes as f64,
        )?;
        f.set(
            "fleetdeck_host_filesystem_used_bytes",
            "A filesystem's blocks in use, as df counts them (root's reserve included).",
            &labels,
            fs.used_bytes as f64,
        )?;
        f.set(
            "fleetdeck_host_filesystem_avail_bytes",
            "What an unprivileged process can still write to a filesystem.",
            &labels,
            fs.available_bytes as f64,
        )?;
        if fs.inodes_total > 0 {
            f.set(
                "fleetdeck_host_filesystem_files",
                "A filesystem's inodes.",
                &labels,
                fs.inodes_total as f64,
            )?;
            f.set(
                "fleetdeck_host_filesystem_files_used",
                "A filesystem's inodes in use.",
                &labels,
                fs.inodes_used as f64,
            )?;
        }
    }
    for n in &m.network {
        let labels = [("host", h), ("device", n.name.as_str())];
        f.total(
            "fleetdeck_host_network_receive_bytes_total",
            "Bytes an interface received since the host booted.",
            &labels,
            n.rx_bytes_total as f64,
        )?;
        f.total(
            "fleetdeck_host_network_transmit_bytes_total",
            "Bytes an interface sent since the host booted.",
            &labels,
            n.tx_bytes_total as f64,
        )?;
    }
    for d in &m.disks {
        let labels = [("host", h), ("device", d.device.as_str())];
        f.total(
            "fleetdeck_host_disk_read_bytes_total",
            "Bytes read from a block device since the host booted.",
            &labels,
            d.read_bytes_total as f64,
        )?;
        f.total(
            "fleetdeck_host_disk_written_bytes_total",
            "Bytes written to a block device since the host booted.",
            &labels,
            d.written_bytes_total as f64,
        )?;
    }
    Ok(())
}

fn apps(
    f: &mut Families,
    h: &str,
    app: &fleetdeck_proto::AppView,
    sample: Option<&AppSample>,
) -> prometheus::Result<()> {
    let s = &app.status;
    let a = s.name.as_str();
    let labels = [("host", h), ("app", a)];
    f.set(
        "fleetdeck_app_up",
        "1 if the app is running (a degraded one too: see fleetdeck_app_degraded), else 0.",
        &labels,
        if s.state == AppState::Running {
            1.0
        } else {
            0.0
        },
    )?;
    for state in APP_STATES {
        f.set(
            "fleetdeck_app_state",
            "1 for the app's current state, 0 for the others.",
            &[("host", h), ("app", a), ("state", state.as_str())],
            if s.state == state { 1.0 } else { 0.0 },
        )?;
    }
    f.set(
        "fleetdeck_app_degraded",
        "1 if a check of the app failed twice in a row or more: it runs but does not serve.",
        &labels,
        if s.degraded { 1.0 } else { 0.0 },
    )?;
    f.set(
        "fleetdeck_app_state_since_timestamp_seconds",
        "When the collector saw the app enter its current state.",
        &labels,
        seconds(app.state_since_unix_ms),
    )?;
    if let Some(restarts) = s.restarts {
        f.total(
            "fleetdeck_app_restarts_total",
            "Restarts the source counted (systemd NRestarts, Docker RestartCount).",
            &labels,
            restarts as f64,
        )?;
    }
    if let Some(memory) = s.memory_bytes {
        f.set(
            "fleetdeck_app_memory_bytes",
            "The app's memory (its cgroup's, or its main process's resident memory).",
            &labels,
            memory as f64,
        )?;
    }
    if let Some(sample) = sample {
        if let Some(cpu) = sample.cpu_percent {
            f.set(
                "fleetdeck_app_cpu_usage_ratio",
                "CPU the app used at its latest sample, in cores (1 = one core busy).",
                &labels,
                cpu / 100.0,
            )?;
        }
        if let Some(limit) = sample.memory_limit_bytes {
            f.set(
                "fleetdeck_app_memory_limit_bytes",
                "The app's memory limit.",
                &labels,
                limit as f64,
            )?;
        }
        if let Some(rx) = sample.net_rx_bytes_per_sec {
            f.set(
                "fleetdeck_app_network_receive_bytes_per_second",
                "What the app's network received per second at its latest sample (containers).",
                &labels,
                rx,
            )?;
        }
        if let Some(tx) = sample.net_tx_bytes_per_sec {
            f.set(
                "fleetdeck_app_network_transmit_bytes_per_second",
                "What the app's network sent per second at its latest sample (containers).",
                &labels,
                tx,
            )?;
        }
    }
    for c in &s.checks {
        let labels = [
            ("host", h),
            ("app", a),
            ("check", c.name.as_str()),
            ("kind", c.kind.as_str()),
        ];
        f.set(
            "fleetdeck_check_up",
            "1 if the check's last run passed, else 0.",
            &labels,
            if c.ok { 1.0 } else { 0.0 },
        )?;
        f.set(
            "fleetdeck_check_consecutive_failures",
            "Failed runs of the check in a row (0 after a pass).",
            &labels,
            c.consecutive_failures as f64,
        )?;
        if let Some(ms) = c.latency_ms {
            f.set(
                "fleetdeck_check_latency_seconds",
                "Time to the answer at the check's last run.",
                &labels,
                ms / 1000.0,
            )?;
        }
        if let Some(code) = c.status_code {
            f.set(
                "fleetdeck_check_http_status_code",
                "The HTTP status of the check's last run.",
                &labels,
                code as f64,
            )?;
        }
        if let Some(expiry) = c.cert_not_after_unix_ms {
            f.set(
                "fleetdeck_check_certificate_expiry_timestamp_seconds",
                "When the certificate the check's server showed expires.",
                &labels,
                seconds(expiry),
            )?;
        }
    }
    Ok(())
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
        assert!(
            has(r#"fleetdeck_collector_polls_total{result="failed"} 0"#),
            "{text}"
        );
    }
}

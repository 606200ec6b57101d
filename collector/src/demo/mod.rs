//! `fleetdeck-collector --demo`: a simulated fleet (virtual agents from `fleetdeck-sim`: several
//! hosts, apps that crash and recover, log lines, `.env` files in a temporary directory) served
//! through the very same collector, API and database, on loopback only. For a newcomer, and for UI
//! work without agents. It starts with [`history`]: 30 days of the fleet's past, stored.

pub mod history;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fleetdeck_daemon::secret::Token;
use fleetdeck_proto::Role;
use fleetdeck_sim::{Sim, SimConfig};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::config::{AgentConfig, Config, Retention};
use crate::store::{keys, now_ms, Store};

/// How many simulated hosts by default, and apps on each.
pub const DEMO_HOSTS: u16 = 6;
pub const DEMO_APPS: usize = 4;

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What `--demo` serves.
#[derive(Debug, Clone)]
pub struct Demo {
    /// On 127.0.0.1.
    pub port: u16,
    pub hosts: usize,
    /// Every app's time between log lines (`None`: each its own).
    pub log_every: Option<Duration>,
    /// Days of history stored before serving (0: none).
    pub history_days: u64,
}

/// Runs the demo until SIGINT or SIGTERM.
pub async fn run(demo: Demo) -> anyhow::Result<()> {
    let Demo {
        port,
        hosts,
        log_every,
        history_days,
    } = demo;
    let dir = tempfile::Builder::new()
        .prefix("fleetdeck-demo-")
        .tempdir()
        .context("cannot create the demo's temporary directory")?;
    let token = random_hex(24);
    let sim = Sim::new(SimConfig {
        hosts,
        apps_per_host: DEMO_APPS,
        sample_interval: Duration::from_secs(5),
        token: token.clone(),
        env_dir: Some(dir.path().join("env")),
        chaos: true,
        seed: rand::rng().next_u64(),
        host_prefix: "demo".into(),
        log_period: log_every,
    })
    .context("cannot create the simulated fleet")?;
    let sim_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let sim_addr = sim_listener.local_addr()?;
    let router = sim.router();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(sim_listener, router).await {
            tracing::error!(error = %e, "the simulated fleet stopped");
        }
    });
    let _chaos = sim.spawn_chaos();

    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port}; is another process using it? pass --port")
        })?;
    let config = Config {
        lease: crate::config::DEFAULT_LEASE,
        listen: Vec::new(),
        tls: None,
        database: crate::store::Target::Sqlite(dir.path().join("collector.db")),
        config_dir: dir.path().to_owned(),
        poll_interval: Duration::from_secs(5),
        poll_timeout: Duration::from_secs(2),
        poll_concurrency: 64,
        down_after: 2,
        agents: sim
            .agents()
            .into_iter()
            .map(|(name, prefix)| AgentConfig {
                name,
                url: format!("http://{sim_addr}{prefix}"),
                token: Token::new(token.clone()),
                tls_fingerprint: None,
                token_file: PathBuf::new(),
                from: None,
            })
            .collect(),
        webhooks: Vec::new(),
        channels: Vec::new(),
        routes: Vec::new(),
        maintenance: Vec::new(),
        alerts: Default::default(),
        retry: Default::default(),
        retention: Retention::default(),
        rules: crate::alerting::thresholds::default_rules(),
        metrics: None,
    };
    let store = Store::open(&config.database)?;
    let started = std::time::Instant::now();
    let agents = config
        .agents
        .iter()
        .map(|a| (a.name.clone(), a.url.clone()))
        .collect();
    history::seed(&store, &sim, agents, history_days, now_ms()).await?;
    if history_days > 0 {
        tracing::info!(
            days = history_days,
            took_ms = started.elapsed().as_millis() as u64,
            "demo history stored"
        );
    }
    let key = store
        .with_conn_blocking(|conn| keys::create(conn, "demo-operator", Role::Operator, now_ms()))?;
    let url = format!("http://{}", listener.local_addr()?);
    // Whoever started the demo may stop reading its output: that must not stop the demo.
    let _ = writeln!(
        std::io::stdout(),
        "Fleetdeck demo collector: {hosts} simulated hosts, database and .env files in {}\n\
         \x20 URL:          {url}\n\
         \x20 operator key: {}\n\
         \x20 try:          curl -s -H \"Authorization: Bearer {}\" {url}/v1/fleet | jq .summary\n\
         Ctrl-C stops it (the temporary directory is removed).",
        dir.path().display(),
        key.key,
        key.key
    );
    crate::run::serve_config(
        &config,
        store,
        vec![listener],
        crate::run::shutdown_signal(),
    )
    .await
}

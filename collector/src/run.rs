//! The binary's edge: tracing, config, binding, the background work (poller, event subscribers,
//! alerter, rollups) and signals.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetdeck_daemon::listen;
use fleetdeck_proto::Role;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::agent_client::AgentClient;
use crate::alerting::{self, AlertConfig, AlertLog};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::poll::{Agent, Poller};
use crate::store::{ingest, keys, now_ms, rollup, Store};

/// How long a shutdown waits for requests in flight (streams never end by themselves).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often rollups and retention run.
const ROLLUP_EVERY: Duration = Duration::from_secs(60);

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The HTTP client for agents and webhooks: rustls, and no proxy from the environment (agent
/// tokens and `.env` values must go to the agent over the tailnet, not through a proxy).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("fleetdeck-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")
}

/// The running collector's background work; dropping `stop` (or sending on it) ends it.
#[derive(Debug)]
pub struct Background {
    pub state: AppState,
    pub poller: Poller,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Background {
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Registers the configured agents and starts polling, subscribing, alerting and rolling up.
pub async fn start(config: &Config, store: Store) -> anyhow::Result<Background> {
    let http = http_client()?;
    let names: Vec<(String, String)> = config
        .agents
        .iter()
        .map(|a| (a.name.clone(), a.url.clone()))
        .collect();
    let cursors = store
        .write(move |ctx| ingest::register_agents(ctx, &names))
        .await
        .context("cannot register the agents in the database")?;
    let agents: Vec<Arc<Agent>> = config
        .agents
        .iter()
        .zip(cursors)
        .map(|(a, cursor)| {
            let client =
                AgentClient::new(http.clone(), &a.url, a.token.clone(), config.poll_timeout);
            Arc::new(Agent::new(client, cursor))
        })
        .collect();

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let alerter = alerting::spawn(
        AlertConfig {
            policy: config.alerts.clone(),
            webhooks: config.webhooks.clone(),
            retry: config.retry.clone(),
        },
        Arc::new(store.clone()) as Arc<dyn AlertLog>,
        http.clone(),
    );
    if let Some(mut transitions) = store.take_transitions() {
        let mut stop_rx = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    t = transitions.recv() => match t {
                        Some(t) => alerter.observe(t),
                        None => return,
                    },
                    _ = stop_rx.changed() => return,
                }
            }
        });
    }

    let poller = Poller {
        agents: Arc::new(agents.clone()),
        store: store.clone(),
        concurrency: config.poll_concurrency,
        timeout: config.poll_timeout,
        down_after: config.down_after,
        jitter: (config.poll_interval / 10).min(Duration::from_secs(3)),
    };
    tasks.spawn(poller.clone().run(config.poll_interval, stop_rx.clone()));
    for agent in &agents {
        tasks.spawn(crate::subscribe::follow(
            agent.clone(),
            store.clone(),
            stop_rx.clone(),
        ));
    }

    let retention = config.retention;
    let rollup_store = store.clone();
    let mut rollup_stop = stop_rx.clone();
    tasks.spawn(async move {
        let mut ticker = tokio::time::interval(ROLLUP_EVERY);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = rollup_stop.changed() => return,
            }
            let result = rollup_store
                .with_conn(move |conn| rollup::run(conn, now_ms(), &retention))
                .await;
            match result {
                Ok(report) => tracing::debug!(?report, "rollups and retention"),
                Err(e) => tracing::error!(error = %e, "rollups failed; retried in a minute"),
            }
        }
    });

    Ok(Background {
        state: AppState::new(store, &agents, config.retention),
        poller,
        stop,
        tasks,
    })
}

/// Binds every listen address, enforcing the bind policy.
pub async fn bind(config: &Config, allow_public_bind: bool) -> anyhow::Result<Vec<TcpListener>> {
    let addrs = listen::resolve(&config.listen, allow_public_bind, listen::run_tailscale_ip)?;
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !listen::is_private_to_operator(addr.ip()) {
            tracing::warn!(
                %addr,
                "LISTENING ON A PUBLIC ADDRESS because --allow-public-bind was given: anyone who can \
                 reach {addr} can try keys against this collector"
            );
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; is another process using it?"))?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Loads the config, opens the database, starts the background work and serves until SIGINT or
/// SIGTERM.
pub async fn run(config_path: &Path, allow_public_bind: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let listeners = bind(&config, allow_public_bind).await?;
    let store = Store::open(&config.database)?;
    serve_config(&config, store, listeners, shutdown_signal()).await
}

/// Runs a collector on an open store and bound listeners until `shutdown` completes.
pub async fn serve_config(
    config: &Config,
    store: Store,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let background = start(config, store).await?;
    tracing::info!(
        agents = config.agents.len(),
        webhooks = config.webhooks.len(),
        interval = ?config.poll_interval,
        "fleetdeck-collector started"
    );
    let served = serve(background.state.clone(), listeners, shutdown).await;
    background.stop().await;
    tracing::info!("stopped");
    served.map_err(Into::into)
}

/// Serves the API on every listener until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    state: AppState,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(state);
    let (stop_tx, stop_rx) = watch::channel(());
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let mut stop = stop_rx.clone();
        let server = axum::serve(listener, app.clone()).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        servers.spawn(async move { server.await });
    }
    drop(stop_rx);
    tokio::select! {
        () = shutdown => {}
        Some(result) = servers.join_next() => {
            let _ = stop_tx.send(());
            servers.join_all().await;
            return result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        }
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, servers.join_all()).await {
        Ok(results) => results
            .into_iter()
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// `keys create`: prints what was made, the key itself alone on the last line.
pub fn create_key(config_path: &Path, name: &str, role: Role) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database)?;
    let created = store.with_conn_blocking(|conn| keys::create(conn, name, role, now_ms()))?;
    Ok(format!(
        "created API key {:?} with role {}; it is shown only now, store it safely:\n{}",
        created.name,
        created.role.as_str(),
        created.key
    ))
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stop the collector with SIGINT");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

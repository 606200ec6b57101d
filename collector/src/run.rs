//! The binary's edge: tracing, config, binding, the background work (poller, event subscribers,
//! alerter, rollups) and signals.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetdeck_proto::Role;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::agent_client::AgentClient;
use crate::alerting::{self, AlertConfig, AlertLog};
use crate::api::{self, AppState};
use crate::config::{AgentConfig, Config};
use crate::poll::{Agent, Poller, Roster};
use crate::reload::{Reloader, Subscriptions};
use crate::store::{alerts, ingest, keys, now_ms, rollup, Store};
use fleetdeck_daemon::transport::addr::{is_plain_http_outside_tailnet, resolves_privately};
use fleetdeck_daemon::transport::pin::pinned_client_config;
use fleetdeck_daemon::transport::server::ServerTls;

/// How long a shutdown waits for requests in flight (streams never end by themselves).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often rollups and retention run.
const ROLLUP_EVERY: Duration = Duration::from_secs(60);
/// How often maintenance windows are looked at: one opens within this of its start.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);

pub use fleetdeck_daemon::serve::{init_tracing, shutdown_signal};

/// The connections the collector serves (desktops and scripts; agents are dialled out). The
/// shipped unit raises the descriptor limit well above this.
pub(crate) const LIMITS: fleetdeck_daemon::serve::Limits = fleetdeck_daemon::serve::Limits {
    max_connections: 4096,
    header_timeout: std::time::Duration::from_secs(10),
};

/// The HTTP client for agents and webhooks: rustls, no proxy from the environment (agent tokens
/// and `.env` values must go to the agent over the tailnet, not through a proxy), and redirects
/// never followed: an agent or a webhook receiver that answers 3xx cannot turn a request (with
/// its token, or a proxied page reaching the desktop) into one to another address.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    http_client_builder()
        .build()
        .context("cannot build the HTTP client")
}

fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("fleetdeck-collector/", env!("CARGO_PKG_VERSION")))
}

/// The client for one agent: the shared one, or for an agent with `tls_fingerprint` one that
/// trusts exactly that certificate. An agent reached by plain HTTP outside loopback and the
/// tailnet earns a warning, once (its token and `.env` values cross that network in clear); a name
/// is looked up first, so a MagicDNS short name (`http://web1:7070`) earns none.
pub(crate) fn agent_http(
    shared: &reqwest::Client,
    agent: &AgentConfig,
) -> anyhow::Result<reqwest::Client> {
    if let Ok(url) = reqwest::Url::parse(&agent.url) {
        let host = url.host_str().unwrap_or_default();
        if is_plain_http_outside_tailnet(url.scheme(), host) && !resolves_privately(host) {
            tracing::warn!(
                agent = %agent.name,
                url = %agent.url,
                "PLAIN HTTP OUTSIDE LOOPBACK AND THE TAILNET: agent {:?} is reached at {} without \
                 TLS, so its token and .env values cross that network in clear; serve the agent \
                 with tls_cert/tls_key and pin it with tls_fingerprint, or reach it over Tailscale",
                agent.name,
                agent.url
            );
        }
    }
    match agent.tls_fingerprint {
        None => Ok(shared.clone()),
        Some(pin) => http_client_builder()
            .use_preconfigured_tls(pinned_client_config(pin))
            .build()
            .with_context(|| format!("cannot build the HTTP client for agent {:?}", agent.name)),
    }
}

/// The running collector's background work; dropping `stop` (or sending on it) ends it.
#[derive(Debug)]
pub struct Background {
    pub state: AppState,
    pub poller: Poller,
    /// Takes up a reloaded collector.toml (SIGHUP).
    pub reloader: Reloader,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Background {
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.reloader.subscriptions.join().await;
    }
}

/// Registers the configured agents and starts polling, subscribing, alerting and rolling up.
pub async fn start(config: &Config, store: Store) -> anyhow::Result<Background> {
    crate::telemetry::tune_allocator();
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
            let client = AgentClient::new(
                agent_http(&http, a)?,
                &a.url,
                a.token.clone(),
                config.poll_timeout,
            );
            Ok(Arc::new(Agent::new(client, cursor)))
        })
        .collect::<anyhow::Result<_>>()?;

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    // Problems a previous run alerted are not alerted again (their recovery is); open problems
    // it had not alerted yet go through the rules as if just seen.
    let open = store
        .with_conn(|conn| crate::store::query::open_problems(conn))
        .await
        .context("cannot read the open problems from the database")?;
    let (already, pending): (Vec<_>, Vec<_>) = open.into_iter().partition(|(_, sent)| *sent);
    let resumed_thresholds = store
        .with_conn(|conn| crate::store::audit::open_thresholds(conn))
        .await
        .context("cannot read the open thresholds from the database")?;
    let alerter = alerting::spawn_resuming(
        AlertConfig {
            policy: config.alerts.clone(),
            // [[webhooks]] are among the channels, as webhook-N.
            webhooks: Vec::new(),
            channels: config.channels.clone(),
            routes: config.routes.clone(),
            retry: config.retry.clone(),
            thresholds: config.rules.clone(),
            resumed_thresholds,
        },
        already.into_iter().map(|(t, _)| t).collect(),
        Arc::new(store.clone()) as Arc<dyn AlertLog>,
        http.clone(),
    );
    for (t, _) in pending {
        alerter.observe(t).await;
    }
    let problems = alerter.problems();
    let thresholds = alerter.open_thresholds();
    let reload_alerter = alerter.clone();
    if let Some(mut transitions) = store.take_transitions() {
        let mut stop_rx = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    t = transitions.recv() => match t {
                        Some(input) => alerter.send(input).await,
                        None => return,
                    },
                    _ = stop_rx.changed() => return,
                }
            }
        });
    }

    let roster = Roster::new(agents.clone());
    let poller = Poller {
        agents: roster.clone(),
        store: store.clone(),
        concurrency: config.poll_concurrency,
        timeout: config.poll_timeout,
        down_after: config.down_after,
        jitter: (config.poll_interval / 10).min(Duration::from_secs(3)),
        wake: Default::default(),
    };
    tasks.spawn(poller.clone().run(config.poll_interval, stop_rx.clone()));
    let subscriptions = Subscriptions::new(store.clone(), stop_rx.clone());
    for agent in &agents {
        subscriptions.follow(agent.clone());
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

    let (maintenance_tx, maintenance_rx) = watch::channel(config.maintenance.clone());
    {
        let maintenance_store = store.clone();
        let mut maintenance_stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut ticker = tokio::time::interval(MAINTENANCE_EVERY);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = maintenance_stop.changed() => return,
                }
                let windows = maintenance_rx.borrow().clone();
                if windows.is_empty() {
                    continue;
                }
                let opened = maintenance_store
                    .with_conn(move |conn| {
                        let now = now_ms();
                        let mut opened = Vec::new();
                        for m in &windows {
                            if let Some((start, end)) = m.window_at(now) {
                                if let Some(s) = alerts::open_maintenance(conn, m, start, end, now)? {
                                    opened.push(s);
                                }
                            }
                        }
                        Ok(opened)
                    })
                    .await;
                match opened {
                    Ok(opened) => {
                        for s in opened {
                            tracing::info!(silence = s.id, by = %s.created_by, until = s.ends_unix_ms, "maintenance window open: its hosts are silenced");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot open a maintenance window's silence; tried again shortly"),
                }
            }
        });
    }

    let state = AppState::new(store.clone(), roster.clone(), config.retention)
        .with_problems(problems, thresholds)
        .with_channels(config.channels.clone(), http.clone())
        .with_policy(config.alerts.clone());
    state
        .scrape_token
        .set(config.metrics.as_ref().map(|m| &m.token));
    // Keys deleted at the command line: their open streams end within KEY_RECHECK.
    tasks.spawn(
        state
            .revocations
            .clone()
            .recheck_every(api::KEY_RECHECK, stop_rx.clone()),
    );
    let reloader = Reloader {
        alerter: reload_alerter,
        maintenance: Arc::new(maintenance_tx),
        channels: Arc::clone(&state.channels),
        policy: Arc::clone(&state.alert_policy),
        scrape_token: state.scrape_token.clone(),
        roster,
        subscriptions,
        poll_now: poller.wake.clone(),
        store,
        http,
        agents: Arc::new(tokio::sync::Mutex::new(config.agents.clone())),
    };
    Ok(Background {
        reloader,
        state,
        poller,
        stop,
        tasks,
    })
}

/// Loads the config, opens the database, starts the background work and serves until SIGINT or
/// SIGTERM; SIGHUP reloads the config.
pub async fn run(config_path: &Path, allow_public_bind: bool) -> anyhow::Result<()> {
    // Caught from the start: `agents add` signals whoever holds the lock, and a SIGHUP before the
    // reloader runs is a reload once it does (not the default action, which ends the process).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    // One collector per database: a second one, or a restore, is refused while this one runs.
    // Taken before anything waits (for Tailscale, say), so `agents add` finds this collector.
    let lock_base = Config::load(config_path)?.lock_base();
    let _lock = crate::care::RunLock::take(&lock_base)?;
    // Read again under the lock: what `agents add` wrote before the lock was taken (it found no
    // collector to signal) is in this reading; what it writes after comes with a SIGHUP.
    let config = Config::load(config_path)?;
    // Read before binding, so a bad certificate or key stops the collector before it listens.
    let tls = load_tls(&config)?;
    let listeners =
        fleetdeck_daemon::serve::bind(&config.listen, allow_public_bind, "collector").await?;
    let store = Store::open(&config.database)?;
    serve_with(
        &config,
        tls,
        store,
        listeners,
        shutdown_signal(),
        Some((config_path.to_owned(), hangups)),
    )
    .await
}

fn load_tls(config: &Config) -> anyhow::Result<Option<ServerTls>> {
    Ok(config.tls.as_ref().map(|files| files.load()).transpose()?)
}

/// Runs a collector on an open store and bound listeners until `shutdown` completes (HTTPS when
/// the config names `tls_cert` and `tls_key`).
pub async fn serve_config(
    config: &Config,
    store: Store,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = load_tls(config)?;
    serve_with(config, tls, store, listeners, shutdown, None).await
}

async fn serve_with(
    config: &Config,
    tls: Option<ServerTls>,
    store: Store,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload_on: Option<(std::path::PathBuf, tokio::signal::unix::Signal)>,
) -> anyhow::Result<()> {
    if matches!(config.database, crate::store::Target::Postgres(_)) {
        // Collectors on other machines may share the database: one leads, the others stand by.
        return crate::cluster::serve(config.clone(), tls, store, listeners, shutdown, reload_on)
            .await;
    }
    let background = start(config, store).await?;
    let hangups = reload_on.map(|(path, hangups)| {
        tokio::spawn(crate::reload::on_hangup(
            background.reloader.clone(),
            path,
            hangups,
        ))
    });
    tracing::info!(
        database = %config.database,
        agents = config.agents.len(),
        channels = config.channels.len(),
        routes = config.routes.len(),
        interval = ?config.poll_interval,
        "fleetdeck-collector started"
    );
    let served = match tls {
        Some(tls) => {
            tracing::info!(
                fingerprint = %tls.fingerprint,
                "serving HTTPS; the desktop pins this certificate with --tls-fingerprint {}",
                tls.fingerprint
            );
            let app = api::router(background.state.clone());
            fleetdeck_daemon::serve::serve_tls(
                app,
                listeners,
                tls.config,
                shutdown,
                SHUTDOWN_GRACE,
                LIMITS,
            )
            .await
        }
        None => serve(background.state.clone(), listeners, shutdown).await,
    };
    if let Some(hangups) = hangups {
        hangups.abort();
    }
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
    fleetdeck_daemon::serve::serve(
        api::router(state),
        listeners,
        shutdown,
        SHUTDOWN_GRACE,
        LIMITS,
    )
    .await
}

/// `keys create`: prints what was made, the key itself alone on the last line.
pub fn create_key(config_path: &Path, name: &str, role: Role) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database)?;
    let created = store.with_conn_blocking(|conn| {
        let created = keys::create(conn, name, role, now_ms())?;
        // Made at the command line, not through the API: audited under that name.
        crate::store::audit::record(
            conn,
            &crate::store::audit::Who::command_line(),
            "key.create",
            &format!("key {name}"),
            &format!("ok (role {})", role.as_str()),
            now_ms(),
        )?;
        Ok(created)
    })?;
    Ok(format!(
        "created API key {:?} with role {}; it is shown only now, store it safely:\n{}",
        created.name,
        created.role.as_str(),
        created.key
    ))
}

/// `channels list` (no `test`), or `channels test NAME`: what to print, and whether it went
/// well. The test posts from this process with the collector's client settings.
pub async fn channels(config_path: &Path, test: Option<String>) -> anyhow::Result<(String, bool)> {
    let config = Config::load(config_path)?;
    let Some(name) = test else {
        if config.channels.is_empty() {
            return Ok((
                "no channels: add [[channels]] or [[webhooks]] to collector.toml".to_owned(),
                true,
            ));
        }
        let lines: Vec<String> = config
            .channels
            .iter()
            .map(|c| {
                let i = c.info();
                format!("{}\t{}\t{}\t{}", i.name, i.kind, i.format, i.target)
            })
            .collect();
        return Ok((lines.join("\n"), true));
    };
    let channel = config
        .channels
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
            anyhow::anyhow!(
                "no channel named {name:?} in {}; the channels are: {}",
                config_path.display(),
                if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let result = channel.test(&http_client()?).await;
    let text = match &result.error {
        None => format!(
            "test alert to {} delivered: HTTP {} in {} ms",
            result.channel,
            result.status.unwrap_or_default(),
            result.took_ms
        ),
        Some(e) => format!(
            "test alert to {} NOT delivered after {} ms: {e}",
            result.channel, result.took_ms
        ),
    };
    Ok((text, result.ok))
}

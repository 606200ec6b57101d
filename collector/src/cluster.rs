//! A collector on a PostgreSQL database it may share with others: the leader (the holder of
//! [`crate::store::db::leader`]'s lock) polls, subscribes, alerts and rolls up; the others stand
//! by, serving the API from the shared database. One HTTP server runs for the process; its
//! router is swapped when the role changes, so the API never stops answering.
//!
//! A standby's API: what the database holds (fleet, history, uptime, alerts, audit) as the
//! leader wrote it; keys, silences and acknowledgements written to the database (the leader
//! reads them there); logs, `.env` and actions passed to the agent directly, as the leader
//! does; the event stream fed by reading the events table every [`TAIL_EVERY`]; the fleet's
//! problems read from the open alerts every [`PROBLEMS_EVERY`].
//!
//! Taking over is a start from the database, as after a restart: each agent's sample cursor
//! (the agents' buffers fill the gap), the problems already alerted (not alerted again, their
//! recoveries are), and the alerts recorded but not delivered (delivered now).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::Router;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::agent_client::AgentClient;
use crate::alerting::thresholds::{Evaluator, OpenThresholds, Rule};
use crate::alerting::{self, problems::OpenProblems};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::poll::{Agent, Roster};
use crate::store::db::leader::{who_am_i, Leadership, Lease, Role};
use crate::store::ingest::HostCursor;
use crate::store::tail::Tail;
use crate::store::{Store, STANDBY_FENCE};

/// How often a standby reads the events its leader wrote, for its live streams.
pub const TAIL_EVERY: Duration = Duration::from_millis(250);
/// How often a standby reads the open problems.
pub const PROBLEMS_EVERY: Duration = Duration::from_secs(2);
/// How long a leader that steps down waits for its background work to end.
const STEP_DOWN_WAIT: Duration = Duration::from_secs(5);

/// The router the server calls, replaced whole on a role change.
#[derive(Clone, Default)]
struct Swap(Arc<RwLock<Option<Router>>>);

impl Swap {
    fn set(&self, router: Router) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(router);
    }

    fn router(&self) -> Router {
        let swap = self.clone();
        Router::new().fallback_service(tower::service_fn(move |req: Request| {
            let current = swap.0.read().unwrap_or_else(|e| e.into_inner()).clone();
            async move {
                match current {
                    Some(router) => router.oneshot(req).await,
                    None => Ok(axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()),
                }
            }
        }))
    }
}

/// Serves `config` as a member of its database's cluster until `shutdown`.
pub async fn serve(
    config: Config,
    tls: Option<fleetdeck_daemon::transport::server::ServerTls>,
    store: Store,
    listeners: Vec<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload_on: Option<(PathBuf, tokio::signal::unix::Signal)>,
) -> anyhow::Result<()> {
    let crate::store::Target::Postgres(pg) = &config.database else {
        anyhow::bail!("a cluster member needs a PostgreSQL database");
    };
    let lease = Lease(config.lease);
    let leadership = Leadership::start((**pg).clone(), lease, who_am_i());
    let mut role = leadership.watch();
    let swap = Swap::default();
    let view = api::cluster::ClusterView::default();
    store.set_fence(STANDBY_FENCE);

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let server_stop = {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    // The server starts once the first role's router is in place, so a client that sees it
    // listening is answered by a leader or a standby, never by a collector still deciding.
    let mut listen = Some((tls, listeners, swap.router(), server_stop));
    let mut server = None;
    let mut serve_once = |server: &mut Option<tokio::task::JoinHandle<std::io::Result<()>>>| {
        if let Some((tls, listeners, router, stop)) = listen.take() {
            *server = Some(spawn_server(tls, listeners, router, stop));
        }
    };
    tracing::info!(
        database = %config.database,
        agents = config.agents.len(),
        lease = ?config.lease,
        "fleetdeck-collector started as a cluster member: standing by until it holds the lead"
    );
    if config.lease + lease.tick() > 2 * config.poll_interval {
        tracing::warn!(lease = ?config.lease, poll_interval = ?config.poll_interval, "a standby takes over up to lease + lease/5 after its leader goes, more than two poll intervals: shorten [cluster] lease");
    }

    let (path, mut hangups) = match reload_on {
        Some((path, hangups)) => (Some(path), Some(hangups)),
        None => (None, None),
    };
    let mut config = config;
    while !*stop_rx.borrow() {
        let mut now = role.borrow_and_update().clone();
        if now == Role::Starting {
            // The first answer comes within a tick; a database that gives none within the lease
            // leaves this collector standing by (serving what it can, saying why it cannot).
            if let Ok(Ok(())) = tokio::time::timeout(config.lease, role.changed()).await {
                continue;
            }
            now = Role::Standby {
                leader: None,
                epoch: None,
            };
        }
        match now {
            Role::Leader { epoch, until } if until > Instant::now() => {
                store.set_fence(epoch);
                let background = match crate::run::start(&config, store.clone()).await {
                    Ok(b) => b,
                    Err(e) => {
                        store.set_fence(STANDBY_FENCE);
                        tracing::error!(error = %e, "cannot start leading; standing by");
                        tokio::time::sleep(lease.tick()).await;
                        continue;
                    }
                };
                let mut state = background.state.clone();
                state.cluster = view.clone();
                view.set("leader", Some(who_am_i()), Some(epoch));
                swap.set(api::router(state));
                serve_once(&mut server);
                let mut until = until;
                let mut stopping = false;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {
                            let renewed = match &*role.borrow() {
                                Role::Leader { epoch: e, until: u } if *e == epoch => Some(*u),
                                _ => None,
                            };
                            match renewed {
                                Some(u) if u > Instant::now() => until = u,
                                _ => {
                                    tracing::warn!(epoch, "the lease ran out before the database renewed it: no longer leading");
                                    break;
                                }
                            }
                        }
                        changed = role.changed() => {
                            if changed.is_err() { break; }
                            match &*role.borrow_and_update() {
                                Role::Leader { epoch: e, until: u } if *e == epoch => until = *u,
                                _ => break,
                            }
                        }
                        _ = stop_rx.changed() => {
                            stopping = true;
                            break;
                        }
                        Some(()) = recv(&mut hangups) => {
                            if let Some(path) = &path {
                                background.reloader.reload_and_log(path).await;
                            }
                        }
                    }
                }
                // Losing the lead, writes stop first: anything still queued is refused, not
                // written late. Stopping, the work in flight ends first, then the lock goes.
                if !stopping {
                    store.set_fence(STANDBY_FENCE);
                }
                if tokio::time::timeout(STEP_DOWN_WAIT, background.stop())
                    .await
                    .is_err()
                {
                    tracing::warn!("the leader's work did not end in time; left to finish");
                }
                store.set_fence(STANDBY_FENCE);
            }
            Role::Leader { .. } => {
                // A stale leadership: the lock's thread is about to say more.
                let _ = tokio::time::timeout(lease.tick(), role.changed()).await;
            }
            Role::Starting | Role::Standby { .. } => {
                let (leader, epoch) = match now {
                    Role::Standby { leader, epoch } => (leader, epoch),
                    _ => (None, None),
                };
                store.set_fence(STANDBY_FENCE);
                let standby = Standby::start(&config, store.clone(), view.clone())
                    .await
                    .context("cannot start as a standby")?;
                view.set("standby", leader, epoch);
                swap.set(api::router(standby.state.clone()));
                serve_once(&mut server);
                loop {
                    tokio::select! {
                        changed = role.changed() => {
                            if changed.is_err() { break; }
                            match &*role.borrow() {
                                Role::Standby { leader, epoch } => {
                                    view.set("standby", leader.clone(), *epoch)
                                }
                                Role::Starting => {}
                                Role::Leader { .. } => break,
                            }
                        }
                        _ = stop_rx.changed() => break,
                        Some(()) = recv(&mut hangups) => {
                            if let Some(p) = &path {
                                match Config::load(p) {
                                    Ok(fresh) => {
                                        tracing::info!(config = %p.display(), "collector.toml reloaded (standing by: taken up now and when leading)");
                                        config = fresh;
                                        break;
                                    }
                                    Err(e) => tracing::warn!("collector.toml not reloaded, the running configuration stays: {e}"),
                                }
                            }
                        }
                    }
                }
                standby.stop().await;
            }
        }
    }
    let served = match server {
        Some(server) => server.await.context("the server task")?,
        None => Ok(()),
    };
    drop(leadership);
    tracing::info!("stopped");
    served.map_err(Into::into)
}

fn spawn_server(
    tls: Option<fleetdeck_daemon::transport::server::ServerTls>,
    listeners: Vec<tokio::net::TcpListener>,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    match tls {
        Some(tls) => {
            tracing::info!(fingerprint = %tls.fingerprint, "serving HTTPS; the desktop pins this certificate with --tls-fingerprint {}", tls.fingerprint);
            tokio::spawn(fleetdeck_daemon::serve::serve_tls(
                router,
                listeners,
                tls.config,
                stop,
                crate::run::SHUTDOWN_GRACE,
                crate::run::LIMITS,
            ))
        }
        None => tokio::spawn(fleetdeck_daemon::serve::serve(
            router,
            listeners,
            stop,
            crate::run::SHUTDOWN_GRACE,
            crate::run::LIMITS,
        )),
    }
}

async fn recv(hangups: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(h) => h.recv().await,
        None => std::future::pending().await,
    }
}

/// A standby's work: its API state and the tasks that keep it current.
struct Standby {
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Standby {
    async fn start(
        config: &Config,
        store: Store,
        view: api::cluster::ClusterView,
    ) -> anyhow::Result<Self> {
        let http = crate::run::http_client()?;
        // The hosts as the leader registered them (read, never written here).
        let known: Vec<(i64, String)> = store
            .with_conn(|conn| {
                conn.query_map("SELECT id, name FROM hosts", crate::params![], |r| {
                    Ok((r.get::<i64>(0)?, r.get::<String>(1)?))
                })
            })
            .await
            .unwrap_or_default();
        let agents = config
            .agents
            .iter()
            .map(|a| {
                let client = AgentClient::new(
                    crate::run::agent_http(&http, a)?,
                    &a.url,
                    a.token.clone(),
                    config.poll_timeout,
                );
                let id = known
                    .iter()
                    .find(|(_, name)| *name == a.name)
                    .map_or(0, |(id, _)| *id);
                Ok(Arc::new(Agent::new(
                    client,
                    HostCursor {
                        id,
                        name: a.name.clone(),
                        instance_id: None,
                        last_seq: 0,
                        last_event_id: None,
                    },
                )))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut state = AppState::new(store.clone(), Roster::new(agents), config.retention)
            .with_channels(config.channels.clone(), http)
            .with_policy(config.alerts.clone());
        state
            .scrape_token
            .set(config.metrics.as_ref().map(|m| &m.token));
        state.cluster = view;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(tail_events(store.clone(), stop_rx.clone()));
        tasks.spawn(read_problems(
            store.clone(),
            (state.problems.clone(), state.thresholds.clone()),
            config.rules.clone(),
            stop_rx.clone(),
        ));
        tasks.spawn(
            state
                .revocations
                .clone()
                .recheck_every(api::KEY_RECHECK, stop_rx),
        );
        Ok(Self { state, stop, tasks })
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Hands the events the leader writes to this standby's live streams (see [`Tail`]).
async fn tail_events(store: Store, mut stop: watch::Receiver<bool>) {
    let newest = store
        .with_conn(|conn| {
            conn.query_row(
                "SELECT coalesce(max(id), 0) FROM events",
                crate::params![],
                |r| r.get::<i64>(0),
            )
        })
        .await;
    let tail = Arc::new(std::sync::Mutex::new(Tail::after(newest.unwrap_or(0))));
    let mut ticker = tokio::time::interval(TAIL_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let tail = Arc::clone(&tail);
        let read = store
            .with_conn(move |conn| {
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                tail.read(conn, Instant::now())
            })
            .await;
        match read {
            Ok(events) => events.into_iter().for_each(|e| store.publish(e)),
            Err(e) => tracing::debug!(error = %e, "cannot read the leader's events; trying again"),
        }
    }
}

/// Keeps the fleet's problems as the database's open alerts say: the alerted app and host
/// problems, and the thresholds whose last alert is a problem (with their rules' severity).
async fn read_problems(
    store: Store,
    (problems, thresholds): (alerting::SharedProblems, OpenThresholds),
    rules: Vec<Rule>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(PROBLEMS_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let open = store
            .with_conn(|conn| {
                Ok((
                    crate::store::query::open_problems(conn)?,
                    crate::store::audit::open_thresholds(conn)?,
                ))
            })
            .await;
        let Ok((open, firing)) = open else { continue };
        let mut fresh = OpenProblems::default();
        for (t, alerted) in &open {
            if *alerted {
                fresh.observe(t);
            }
        }
        *alerting::lock(&problems) = fresh;
        let mut evaluator = Evaluator::new(rules.clone());
        for threshold in &firing {
            evaluator.resume(threshold, crate::store::now_ms());
        }
        thresholds.mirror(&evaluator.open());
    }
}

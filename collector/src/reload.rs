//! Reloading collector.toml at SIGHUP: alerting (channels, routes, policy, threshold rules), the
//! maintenance windows, the channels the API lists, and the agents. An invalid file changes
//! nothing and says why; open alerts, silences and acknowledgements survive.
//!
//! Agents: one whose name, URL, token and pin are unchanged keeps running as it was (its poll
//! cursor, its event stream, its log follows). A new one is registered and polled at once, and
//! its event stream opens at once. A removed one stops being polled and streamed,
//! leaves the fleet (its history stays in the database), and its open alerts are resolved
//! without a recovery message: nothing reminds or escalates about a host nobody watches. A
//! changed one is a removed one and a new one under the same name (its history continues).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent_client::AgentClient;
use crate::alerting::{self, route::Channel};
use crate::config::{AgentConfig, Config};
use crate::poll::{Agent, Roster};
use crate::store::{ingest, now_ms, Store};

/// The event-stream subscriptions, one task per agent, by host name.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    store: Store,
    stop: watch::Receiver<bool>,
    running: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
}

impl Subscriptions {
    pub fn new(store: Store, stop: watch::Receiver<bool>) -> Self {
        Self {
            store,
            stop,
            running: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows `agent`'s event stream until the collector stops or [`Subscriptions::end`];
    /// a subscription of the same host before it ends.
    pub fn follow(&self, agent: Arc<Agent>) {
        let name = agent.name.clone();
        let task = tokio::spawn(crate::subscribe::follow(
            agent,
            self.store.clone(),
            self.stop.clone(),
        ));
        if let Some(old) = self.lock().insert(name, task) {
            old.abort();
        }
    }

    pub fn end(&self, host: &str) {
        if let Some(task) = self.lock().remove(host) {
            task.abort();
        }
    }

    /// Waits for every subscription to end (after the collector's stop was sent).
    pub async fn join(&self) {
        let tasks: Vec<JoinHandle<()>> = self.lock().drain().map(|(_, t)| t).collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// What a reload changes in a running collector.
#[derive(Debug, Clone)]
pub struct Reloader {
    pub alerter: alerting::AlerterHandle,
    pub maintenance: Arc<watch::Sender<Vec<crate::alerting::maintenance::Maintenance>>>,
    pub channels: Arc<std::sync::RwLock<Vec<Channel>>>,
    /// The policy the fleet API tells the desktop.
    pub policy: Arc<std::sync::RwLock<alerting::AlertPolicy>>,
    /// `GET /metrics`'s token: a reload turns metrics on, off, or rotates the token.
    pub scrape_token: crate::api::metrics::ScrapeToken,
    pub roster: Roster,
    pub subscriptions: Subscriptions,
    /// Wakes the poller: new agents are polled at once.
    pub poll_now: Arc<tokio::sync::Notify>,
    pub store: Store,
    /// The shared client agents without a pin use.
    pub http: reqwest::Client,
    /// The agents as configured now (under a lock, so two reloads do not interleave).
    pub agents: Arc<tokio::sync::Mutex<Vec<AgentConfig>>>,
}

/// What a reload did to the agents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AgentChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Reloader {
    /// Reads `path` again and takes it up; an invalid file changes nothing and says why.
    pub async fn reload(&self, path: &Path) -> Result<AgentChanges, String> {
        let config = Config::load(path).map_err(|e| e.to_string())?;
        let mut configured = self.agents.lock().await;
        let plan = plan(&configured, &config.agents);
        // Every new client first: a certificate pin that cannot be built refuses the whole file.
        let mut fresh: HashMap<String, AgentClient> = HashMap::new();
        for a in config
            .agents
            .iter()
            .filter(|a| plan.added.contains(&a.name) || plan.changed.contains(&a.name))
        {
            let http = crate::run::agent_http(&self.http, a).map_err(|e| format!("{e:#}"))?;
            fresh.insert(
                a.name.clone(),
                AgentClient::new(http, &a.url, a.token.clone(), config.poll_timeout),
            );
        }
        if plan != AgentChanges::default() {
            let names: Vec<(String, String)> = config
                .agents
                .iter()
                .map(|a| (a.name.clone(), a.url.clone()))
                .collect();
            let cursors = self
                .store
                .write(move |ctx| ingest::register_agents(ctx, &names))
                .await
                .map_err(|e| format!("cannot register the agents in the database: {e}"))?;
            let now = self.roster.all();
            let mut agents = Vec::with_capacity(cursors.len());
            for cursor in cursors {
                let name = cursor.name.clone();
                match (fresh.remove(&name), now.iter().find(|a| a.name == name)) {
                    (None, Some(kept)) => agents.push(kept.clone()),
                    (client, _) => {
                        let client = client.ok_or_else(|| {
                            format!("agent {name:?} has no client (a bug: please report it)")
                        })?;
                        let agent = Arc::new(Agent::new(client, cursor));
                        self.subscriptions.follow(agent.clone());
                        agents.push(agent);
                    }
                }
            }
            for host in &plan.removed {
                self.subscriptions.end(host);
            }
            self.roster.replace(agents);
            if !plan.added.is_empty() || !plan.changed.is_empty() {
                self.poll_now.notify_one();
            }
            let removed = plan.removed.clone();
            let resolved = self
                .store
                .with_conn(move |conn| {
                    crate::store::alerts::resolve_hosts(conn, &removed, now_ms())
                })
                .await
                .map_err(|e| format!("cannot resolve the removed hosts' alerts: {e}"))?;
            if resolved > 0 {
                tracing::info!(
                    alerts = resolved,
                    hosts = ?plan.removed,
                    "open alerts of hosts no longer in collector.toml resolved"
                );
            }
        }
        self.alerter
            .send(alerting::AlertInput::Reload(Box::new(alerting::Reload {
                channels: config.channels.clone(),
                routes: config.routes.clone(),
                policy: config.alerts.clone(),
                thresholds: config.rules.clone(),
                removed_hosts: plan.removed.clone(),
            })))
            .await;
        self.maintenance.send_replace(config.maintenance.clone());
        *self.channels.write().unwrap_or_else(|e| e.into_inner()) = config.channels;
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = config.alerts;
        self.scrape_token
            .set(config.metrics.as_ref().map(|m| &m.token));
        *configured = config.agents;
        Ok(plan)
    }
}

/// Which agents a reload adds, removes, and changes (same name, another URL, token or pin).
pub fn plan(now: &[AgentConfig], wanted: &[AgentConfig]) -> AgentChanges {
    let find = |list: &[AgentConfig], name: &str| list.iter().position(|a| a.name == name);
    let mut changes = AgentChanges::default();
    for a in wanted {
        match find(now, &a.name) {
            None => changes.added.push(a.name.clone()),
            Some(i) if now[i] != *a => changes.changed.push(a.name.clone()),
            Some(_) => {}
        }
    }
    changes.removed = now
        .iter()
        .filter(|a| find(wanted, &a.name).is_none())
        .map(|a| a.name.clone())
        .collect();
    changes
}

/// Reloads `path` at each SIGHUP (one already received included) until the process ends.
pub async fn on_hangup(
    reloader: Reloader,
    path: std::path::PathBuf,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        reloader.reload_and_log(&path).await;
    }
}

impl Reloader {
    /// Reloads `path` and logs what changed, or why the running configuration stays.
    pub async fn reload_and_log(&self, path: &std::path::Path) {
        match self.reload(path).await {
            Ok(changes) => tracing::info!(
                config = %path.display(),
                added = ?changes.added,
                removed = ?changes.removed,
                changed = ?changes.changed,
                "collector.toml reloaded"
            ),
            Err(e) => {
                tracing::warn!("collector.toml not reloaded, the running configuration stays: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetdeck_daemon::secret::Token;

    fn agent(name: &str, url: &str, token: &str) -> AgentConfig {
        AgentConfig {
            name: name.to_owned(),
            url: url.to_owned(),
            token: Token::new(token),
            tls_fingerprint: None,
            token_file: std::path::PathBuf::new(),
            from: None,
        }
    }

    #[test]
    fn a_reload_adds_removes_and_changes_agents_by_name() {
        let now = [
            agent("a", "http://a:7070", "t"),
            agent("b", "http://b:7070", "t"),
            agent("c", "http://c:7070", "t"),
        ];
        let wanted = [
            agent("a", "http://a:7070", "t"),
            agent("c", "http://c:7070", "rotated"),
            agent("d", "http://d:7070", "t"),
        ];
        assert_eq!(
            plan(&now, &wanted),
            AgentChanges {
                added: vec!["d".into()],
                removed: vec!["b".into()],
                changed: vec!["c".into()],
            }
        );
        assert_eq!(plan(&now, &now), AgentChanges::default());
        let moved = [agent("a", "http://elsewhere:7070", "t")];
        assert_eq!(plan(&now[..1], &moved).changed, vec!["a".to_owned()]);
    }
}

//! The apps the agent watches, and how they change while it runs: a reload of agent.toml
//! (SIGHUP) swaps the listed apps and the accepted tokens, a discovery pass the discovered apps.
//! Everything else the agent holds (the sample ring, the event log and its cursor, the instance
//! id) stays, so a collector sees no restart and no gap.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Agent;
use crate::config::{AppConfig, AppSource, Config};

/// The apps watched at one moment: those agent.toml lists, then those `[discover]` found that
/// no listed app covers, with names made unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    pub apps: Vec<AppConfig>,
    /// How many of `apps` (the first ones) are listed in agent.toml.
    pub listed: usize,
}

impl Watched {
    /// Listed apps first; a discovered app whose target a listed app already watches is left
    /// out, and one whose name is taken gets a `-2`, `-3`, ... suffix.
    pub fn new(listed: Vec<AppConfig>, discovered: Vec<AppConfig>) -> Self {
        let count = listed.len();
        let mut apps = listed;
        for mut found in discovered {
            if apps.iter().any(|a| a.source == found.source) {
                continue;
            }
            found.name = crate::discover::unique_name(&found.name, |n| {
                apps.iter().any(|a| a.name.as_str() == n)
            });
            apps.push(found);
        }
        Self {
            apps,
            listed: count,
        }
    }

    pub fn listed(&self) -> &[AppConfig] {
        &self.apps[..self.listed]
    }

    pub fn discovered(&self) -> &[AppConfig] {
        &self.apps[self.listed..]
    }

    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name.as_str() == name)
    }

    /// The (target, app) pairs of apps on systemd units.
    pub fn units(&self) -> Vec<(String, String)> {
        self.targets(|s| match s {
            AppSource::SystemdUnit(u) => Some(u),
            AppSource::DockerContainer(_) => None,
        })
    }

    /// The (target, app) pairs of apps on containers.
    pub fn containers(&self) -> Vec<(String, String)> {
        self.targets(|s| match s {
            AppSource::DockerContainer(c) => Some(c),
            AppSource::SystemdUnit(_) => None,
        })
    }

    fn targets(&self, select: impl Fn(&AppSource) -> Option<&String>) -> Vec<(String, String)> {
        self.apps
            .iter()
            .filter_map(|a| select(&a.source).map(|t| (t.clone(), a.name.to_string())))
            .collect()
    }
}

/// What a reload changed, for the log line that reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Settings that changed in the file but are only read at start.
    pub need_restart: Vec<&'static str>,
    /// Whether the accepted tokens changed.
    pub tokens_changed: bool,
}

/// The digests of the tokens `config` accepts.
pub(super) fn token_digests(config: &Config) -> Vec<[u8; 32]> {
    std::iter::once(&config.token)
        .chain(config.next_token.as_ref())
        .map(|t| Sha256::digest(t.expose().as_bytes()).into())
        .collect()
}

impl Agent {
    /// The apps watched now.
    pub fn watched(&self) -> Arc<Watched> {
        self.watched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `[discover]` as last loaded.
    pub fn discover(&self) -> crate::discover::Discover {
        self.discover
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn docker_source(&self) -> &crate::docker::DockerSource {
        &self.docker
    }

    pub fn systemd_source(&self) -> &crate::systemd::Systemd {
        &self.systemd
    }

    /// Completes when a read found a discovered app gone (see [`Agent::gone_discovered`]).
    pub async fn discover_now(&self) {
        self.discover_now.notified().await;
    }

    /// Whether `status` is of a discovered app that is gone (its container or unit no longer
    /// exists): it is no problem of anyone's but the end of its watch, so it is not reported or
    /// recorded, and discovery looks again at once, which drops it.
    pub(super) fn gone_discovered(
        &self,
        watched: &Watched,
        status: &fleetdeck_proto::AppStatus,
    ) -> bool {
        let gone = status.state == fleetdeck_proto::AppState::NotFound
            && watched
                .discovered()
                .iter()
                .any(|a| a.name.as_str() == status.name);
        if gone {
            self.discover_now.notify_one();
        }
        gone
    }

    /// The config of the watched app `name`.
    pub fn app_config(&self, name: &str) -> Option<AppConfig> {
        self.watched().app(name).cloned()
    }

    /// Changes whenever the watched apps do (see [`crate::watch`]).
    pub fn watched_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watched_changes.subscribe()
    }

    /// The lock that serializes reads of app `name`.
    pub(super) fn serial(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut all = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the watched apps: entries of apps no longer watched go at each change.
        all.entry(name.to_owned()).or_default().clone()
    }

    /// Whether `presented` (a SHA-256 of the bearer token) is that of an accepted token, compared
    /// in constant time with each.
    pub fn token_accepted(&self, presented: &[u8]) -> bool {
        let digests = self.token_digests.read().unwrap_or_else(|p| p.into_inner());
        // Every digest is compared, so the timing does not tell which one matched.
        digests
            .iter()
            .fold(subtle::Choice::from(0), |any, d| any | presented.ct_eq(d))
            .into()
    }

    /// Takes up a reloaded agent.toml: the listed apps (with their checks) and the tokens. The
    /// settings read only at start are kept, and named in the result when they differ.
    pub fn reload(&self, new: Config) -> Reloaded {
        let old = &self.config;
        let mut need_restart = Vec::new();
        if new.listen != old.listen {
            need_restart.push("listen");
        }
        if new.tls != old.tls {
            need_restart.push("tls_cert/tls_key");
        }
        if new.systemd != old.systemd {
            need_restart.push("systemd");
        }
        if new.docker_socket != old.docker_socket {
            need_restart.push("docker_socket");
        }
        if new.sample_interval != old.sample_interval
            || new.sample_retention != old.sample_retention
        {
            need_restart.push("sample_interval/sample_retention");
        }
        let digests = token_digests(&new);
        let tokens_changed = {
            let mut current = self
                .token_digests
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let changed = *current != digests;
            *current = digests;
            changed
        };
        *self.discover.write().unwrap_or_else(|p| p.into_inner()) = new.discover.clone();
        let before = self.watched();
        let (added, removed, changed) = diff(before.listed(), &new.apps);
        self.set_watched(Watched::new(new.apps, before.discovered().to_vec()));
        Reloaded {
            added,
            removed,
            changed,
            need_restart,
            tokens_changed,
        }
    }

    /// Takes up what a discovery pass found; returns the names of apps that started and stopped
    /// being watched.
    pub fn set_discovered(&self, found: Vec<AppConfig>) -> (Vec<String>, Vec<String>) {
        let before = self.watched();
        let next = Watched::new(before.listed().to_vec(), found);
        if next == *before {
            return (Vec::new(), Vec::new());
        }
        let (added, removed, _) = diff(before.discovered(), next.discovered());
        self.set_watched(next);
        (added, removed)
    }

    fn set_watched(&self, next: Watched) {
        {
            let mut current = self.watched.write().unwrap_or_else(|p| p.into_inner());
            if **current == next {
                return;
            }
            self.checks.keep(&current.apps, &next.apps);
            self.refreshing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|name, _| next.app(name).is_some());
            self.forget_unwatched(&next);
            *current = Arc::new(next);
        }
        self.watched_changes.send_modify(|n| *n += 1);
    }
}

/// Names added, removed and changed from `before` to `after`.
fn diff(before: &[AppConfig], after: &[AppConfig]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let find = |apps: &[AppConfig], name: &crate::config::AppName| {
        apps.iter().find(|a| &a.name == name).cloned()
    };
    let added = after
        .iter()
        .filter(|a| find(before, &a.name).is_none())
        .map(|a| a.name.to_string())
        .collect();
    let removed = before
        .iter()
        .filter(|a| find(after, &a.name).is_none())
        .map(|a| a.name.to_string())
        .collect();
    let changed = after
        .iter()
        .filter(|a| find(before, &a.name).is_some_and(|b| b != **a))
        .map(|a| a.name.to_string())
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppName;

    fn app(name: &str, source: AppSource) -> AppConfig {
        AppConfig {
            name: AppName::parse(name).expect("valid"),
            source,
            env_file: None,
            env_links: crate::env_file::Links::Refused,
            allow_actions: false,
            checks: Vec::new(),
            expect: fleetdeck_proto::Expect::Running,
        }
    }

    #[test]
    fn listed_apps_win_and_discovered_names_stay_unique() {
        let listed = vec![
            app("web", AppSource::DockerContainer("web-1".into())),
            app("api", AppSource::SystemdUnit("api.service".into())),
        ];
        let found = vec![
            // Already watched as "web": left out.
            app("web-1", AppSource::DockerContainer("web-1".into())),
            // Name taken by a listed app: suffixed.
            app("api", AppSource::DockerContainer("api".into())),
            app("worker", AppSource::DockerContainer("worker".into())),
        ];
        let w = Watched::new(listed, found);
        let names: Vec<_> = w.apps.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(names, ["web", "api", "api-2", "worker"]);
        assert_eq!(w.listed().len(), 2);
        assert_eq!(w.discovered().len(), 2);
        assert_eq!(
            w.containers(),
            [
                ("web-1".to_owned(), "web".to_owned()),
                ("api".to_owned(), "api-2".to_owned()),
                ("worker".to_owned(), "worker".to_owned())
            ]
        );
    }

    #[test]
    fn diff_names_what_changed() {
        let before = vec![
            app("a", AppSource::DockerContainer("a".into())),
            app("b", AppSource::DockerContainer("b".into())),
        ];
        let after = vec![
            app("b", AppSource::DockerContainer("b2".into())),
            app("c", AppSource::DockerContainer("c".into())),
        ];
        let (added, removed, changed) = diff(&before, &after);
        assert_eq!(added, ["c"]);
        assert_eq!(removed, ["a"]);
        assert_eq!(changed, ["b"]);
    }
}

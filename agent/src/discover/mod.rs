//! Apps found, not typed: `[discover]` in agent.toml watches containers and units that match as
//! they appear and stops watching them when they are gone, and `fleetdeck-agent suggest` prints
//! `[[apps]]` stanzas for what runs on the host.
//!
//! [`scan`] asks Docker and systemd what there is; [`found_container`] and [`found_unit`] turn
//! one finding into an app (its env file found where the app reads it); [`suggest`] renders
//! stanzas. The naming rules ([`app_name_for`], [`unique_name`]) keep every name valid and
//! unique.

pub mod scan;
pub mod suggest;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{AppConfig, AppName, AppSource};
use crate::docker::Listed;
use crate::systemd::FoundUnit;
use crate::Agent;

/// How often `[discover]` looks for apps that appeared or went.
pub const DISCOVER_EVERY: Duration = Duration::from_secs(3);

/// The compose labels that tell where a container's project lives.
pub const COMPOSE_PROJECT: &str = crate::docker::COMPOSE_LABELS[0];
pub const COMPOSE_WORKING_DIR: &str = crate::docker::COMPOSE_LABELS[1];
pub const COMPOSE_SERVICE: &str = crate::docker::COMPOSE_LABELS[3];

/// `[discover]`: which apps are watched without being listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discover {
    /// Container name globs (`containers = true` is `["*"]`); empty: no container.
    pub containers: Vec<String>,
    /// Unit name globs, e.g. `app-*.service`; empty: no unit.
    pub units: Vec<String>,
}

impl Discover {
    pub fn is_on(&self) -> bool {
        !self.containers.is_empty() || !self.units.is_empty()
    }
}

/// `containers = true` or a list of globs.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawContainers {
    All(bool),
    Matching(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscover {
    containers: Option<RawContainers>,
    #[serde(default)]
    units: Vec<String>,
}

impl RawDiscover {
    pub fn validate(self) -> Result<Discover, String> {
        let containers = match self.containers {
            None | Some(RawContainers::All(false)) => Vec::new(),
            Some(RawContainers::All(true)) => vec!["*".to_owned()],
            Some(RawContainers::Matching(globs)) => globs,
        };
        for glob in &containers {
            check_glob("[discover] containers", glob, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?')
            })?;
        }
        for glob in &self.units {
            check_glob("[discover] units", glob, |c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '.' | '_' | '-' | '*' | '?' | '@' | ':' | '\\')
            })?;
        }
        Ok(Discover {
            containers,
            units: self.units,
        })
    }
}

fn check_glob(field: &str, glob: &str, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if glob.is_empty() || glob.len() > 128 || !glob.chars().all(allowed) {
        return Err(format!(
            "{field}: {glob:?} is not a name glob: use 1-128 letters, digits, '.', '_', '-' with '*' and '?', e.g. \"app-*\""
        ));
    }
    Ok(())
}

/// A valid app name for a unit or container name: a unit's `.service` suffix dropped, any other
/// character than `[A-Za-z0-9._-]` made `-`, a leading one that is no letter or digit dropped,
/// at most 64 characters; `app` if nothing is left.
pub fn app_name_for(target: &str) -> AppName {
    let base = target.strip_suffix(".service").unwrap_or(target);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    AppName::parse(&cleaned).unwrap_or_else(|_| AppName::parse("app").expect("valid name"))
}

/// `name`, or `name-2`, `name-3`, ... (shortened to stay within 64 characters), the first that
/// `taken` refuses.
pub fn unique_name(name: &AppName, taken: impl Fn(&str) -> bool) -> AppName {
    if !taken(name.as_str()) {
        return name.clone();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = name.as_str().len().min(64 - suffix.len());
            format!("{}{suffix}", &name.as_str()[..keep])
        })
        .find(|candidate| !taken(candidate))
        .and_then(|c| AppName::parse(&c).ok())
        .expect("some suffix is free")
}

/// A plain absolute path (no `.` or `..`): the only kind an app's `env_file` may be.
fn plain_absolute(path: &str) -> Option<PathBuf> {
    use std::path::Component;
    let p = Path::new(path);
    let plain = p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    plain.then(|| p.to_owned())
}

/// The app for a container: its name, and the `.env` of its compose project's working directory
/// when the container has one and the file exists (compose reads it from there).
pub fn found_container(container: &Listed) -> AppConfig {
    let env_file = container
        .labels
        .get(COMPOSE_WORKING_DIR)
        .and_then(|dir| plain_absolute(dir))
        .map(|dir| dir.join(".env"))
        .filter(|env| env.is_file());
    app(
        &container.name,
        AppSource::DockerContainer(container.name.clone()),
        env_file,
    )
}

/// The app for a unit: its name without `.service`, and the first of its `EnvironmentFile=`
/// that is a plain absolute path.
pub fn found_unit(unit: &FoundUnit) -> AppConfig {
    let env_file = unit.env_files.iter().find_map(|f| plain_absolute(f));
    app(
        &unit.name,
        AppSource::SystemdUnit(unit.name.clone()),
        env_file,
    )
}

fn app(target: &str, source: AppSource, env_file: Option<PathBuf>) -> AppConfig {
    AppConfig {
        name: app_name_for(target),
        source,
        env_file,
        env_links: crate::env_file::Links::Refused,
        // Actions are the operator's decision, made by listing the app.
        allow_actions: false,
        checks: Vec::new(),
        // Whether it should run is the operator's to say, by listing it: a failure or a crash
        // loop is a problem, a stop is not.
        expect: fleetdeck_proto::Expect::Any,
    }
}

/// Looks for apps every [`DISCOVER_EVERY`] while `[discover]` asks for any (a reload can turn it
/// on or off) and has the agent watch what it found. A pass that could not ask a source keeps
/// what that source had found: an engine down for a moment does not drop its apps.
pub async fn discover_forever(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(DISCOVER_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // A discovered app read as gone: look again now rather than at the next tick.
            () = agent.discover_now() => {}
        }
        let discover = agent.discover();
        if !discover.is_on() && agent.watched().discovered().is_empty() {
            continue;
        }
        let previous = agent.watched();
        let found = scan::discover(&agent, &discover, previous.discovered()).await;
        let (added, removed) = agent.set_discovered(found);
        for name in &added {
            tracing::info!(app = %name, "discovered: watching it");
        }
        for name in &removed {
            tracing::info!(app = %name, "no longer there: not watching it any more");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid() {
        assert_eq!(app_name_for("app-web.service").as_str(), "app-web");
        assert_eq!(app_name_for("proj_web_1").as_str(), "proj_web_1");
        assert_eq!(app_name_for("getty@tty1.service").as_str(), "getty-tty1");
        assert_eq!(app_name_for("_hidden").as_str(), "hidden");
        assert_eq!(app_name_for("___").as_str(), "app");
        assert_eq!(app_name_for(&"x".repeat(100)).as_str().len(), 64);
    }

    #[test]
    fn unique_names_get_a_suffix_within_64() {
        let taken = ["web", "web-2"];
        let web = AppName::parse("web").expect("valid");
        assert_eq!(unique_name(&web, |n| taken.contains(&n)).as_str(), "web-3");
        let long = AppName::parse(&"a".repeat(64)).expect("valid");
        let next = unique_name(&long, |n| n == long.as_str());
        assert_eq!(next.as_str().len(), 64);
        assert!(next.as_str().ends_with("-2"));
    }

    #[test]
    fn discover_config() {
        let parse = |text: &str| -> Result<Discover, String> {
            toml::from_str::<RawDiscover>(text)
                .map_err(|e| e.to_string())?
                .validate()
        };
        assert_eq!(parse("containers = true").expect("valid").containers, ["*"]);
        assert!(!parse("containers = false").expect("valid").is_on());
        let d = parse("containers = [\"web-*\"]\nunits = [\"app-*.service\"]").expect("valid");
        assert_eq!(d.containers, ["web-*"]);
        assert_eq!(d.units, ["app-*.service"]);
        let e = parse("units = [\"a b\"]").expect_err("refused");
        assert!(e.contains("[discover] units"), "{e}");
        assert!(parse("wat = 1").is_err());
    }

    #[test]
    fn env_files_are_found_where_the_app_reads_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(".env"), "A=1\n").expect("env");
        let mut labels = std::collections::HashMap::new();
        labels.insert(
            COMPOSE_WORKING_DIR.to_owned(),
            dir.path().display().to_string(),
        );
        let c = Listed {
            name: "proj-web-1".into(),
            running: true,
            labels,
        };
        let app = found_container(&c);
        assert_eq!(app.name.as_str(), "proj-web-1");
        assert_eq!(app.env_file, Some(dir.path().join(".env")));
        assert!(!app.allow_actions);
        // No .env in the project: none.
        let bare = Listed {
            labels: Default::default(),
            ..c
        };
        assert_eq!(found_container(&bare).env_file, None);
        let unit = FoundUnit {
            name: "api.service".into(),
            env_files: vec!["relative/x".into(), "/etc/api/env".into()],
            ..Default::default()
        };
        let app = found_unit(&unit);
        assert_eq!(app.name.as_str(), "api");
        assert_eq!(app.env_file, Some(PathBuf::from("/etc/api/env")));
    }
}

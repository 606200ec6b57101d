//! Asking Docker and systemd what there is: for `[discover]` (every pass) and for `suggest`
//! (once).

use fleetdeck_proto::{glob_match, AppKind};

use super::{found_container, found_unit, Discover};
use crate::config::{AppConfig, AppSource};
use crate::docker::{DockerSource, Listed};
use crate::systemd::{FoundUnit, Systemd};
use crate::Agent;

/// The apps `discover` asks for, as the sources show them now, in a stable order (by target).
/// Containers in any state count (a crashed one must stay watched); units count while they run,
/// fail or are enabled. A source that cannot be asked keeps the apps it had in `previous`.
pub async fn discover(
    agent: &Agent,
    discover: &Discover,
    previous: &[AppConfig],
) -> Vec<AppConfig> {
    let mut found = Vec::new();
    if !discover.containers.is_empty() {
        match agent.docker_source().list(true).await {
            Ok(listed) => found.extend(
                listed
                    .iter()
                    .filter(|c| discover.containers.iter().any(|g| glob_match(g, &c.name)))
                    .map(found_container),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "discovery cannot list containers; keeping those found before");
                found.extend(kept(previous, AppKind::Docker));
            }
        }
    }
    if !discover.units.is_empty() {
        match agent.systemd_source().units_matching(&discover.units).await {
            Ok(units) => found.extend(units.iter().filter(|u| u.in_use()).map(found_unit)),
            Err(e) => {
                tracing::debug!(error = %e, "discovery cannot list units; keeping those found before");
                found.extend(kept(previous, AppKind::Systemd));
            }
        }
    }
    found.sort_by(|a, b| target_of(a).cmp(&target_of(b)));
    found
}

/// The apps of `previous` a source of `kind` found.
fn kept(previous: &[AppConfig], kind: AppKind) -> impl Iterator<Item = AppConfig> + '_ {
    previous
        .iter()
        .filter(move |a| match a.source {
            AppSource::SystemdUnit(_) => kind == AppKind::Systemd,
            AppSource::DockerContainer(_) => kind == AppKind::Docker,
        })
        .cloned()
}

fn target_of(app: &AppConfig) -> (u8, &str) {
    match &app.source {
        AppSource::SystemdUnit(u) => (0, u.as_str()),
        AppSource::DockerContainer(c) => (1, c.as_str()),
    }
}

/// What `suggest` found: running containers, and services that are not the operating system's.
#[derive(Debug)]
pub struct Survey {
    pub containers: Result<Vec<Listed>, String>,
    pub units: Result<Vec<FoundUnit>, String>,
}

/// Units and containers that are Fleetdeck's own are not apps to watch.
const OWN: &[&str] = &["fleetdeck-agent.service", "fleetdeck-collector.service"];

/// Asks both sources once.
pub async fn survey(systemd: &Systemd, docker: &DockerSource) -> Survey {
    let containers = docker
        .list(false)
        .await
        .map_err(|e| e.to_string())
        .map(|mut l| {
            l.sort_by(|a, b| a.name.cmp(&b.name));
            l
        });
    let units = systemd
        .units_matching(&["*.service".to_owned()])
        .await
        .map_err(|e| e.to_string())
        .map(|units| {
            units
                .into_iter()
                .filter(|u| u.in_use() && !OWN.contains(&u.name.as_str()))
                .filter(|u| !is_the_systems(u.origin.fragment_path.as_deref()))
                .collect()
        });
    Survey { containers, units }
}

/// Whether a unit loaded from `fragment_path` is part of the OS rather than an app: a unit file
/// of the distribution (under /usr or /lib), one a generator wrote, a transient one (made by
/// `systemd-run` and the like, gone when it stops), or one with no file at all. An
/// administrator's units live in /etc/systemd, /run/systemd/system (runtime units) or a user's
/// home.
pub fn is_the_systems(fragment_path: Option<&str>) -> bool {
    match fragment_path {
        None | Some("") => true,
        Some(p) => {
            ["/usr/", "/lib/"].iter().any(|d| p.starts_with(d))
                || p.split('/')
                    .any(|part| part == "transient" || part.starts_with("generator"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systems_units_are_told_by_where_they_live() {
        assert!(is_the_systems(Some("/usr/lib/systemd/system/ssh.service")));
        assert!(is_the_systems(Some("/lib/systemd/system/cron.service")));
        assert!(is_the_systems(Some(
            "/run/user/0/systemd/transient/x.service"
        )));
        assert!(is_the_systems(Some("/run/systemd/generator/srv.mount")));
        assert!(is_the_systems(Some(
            "/run/systemd/generator.late/x.service"
        )));
        assert!(!is_the_systems(Some(
            "/run/user/0/systemd/user/myapp.service"
        )));
        assert!(is_the_systems(None));
        assert!(is_the_systems(Some("")));
        assert!(!is_the_systems(Some("/etc/systemd/system/myapp.service")));
        assert!(!is_the_systems(Some(
            "/root/.config/systemd/user/myapp.service"
        )));
    }
}

//! The binary's edge: tracing, config, bind policy, signals, and the one-shot commands.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::SystemdScope;
use crate::{serve, serve_tls, Agent, Config};

pub use fleetdeck_daemon::serve::init_tracing;

/// Loads the config, binds every listen address and serves until SIGINT or SIGTERM; SIGHUP
/// reloads the config.
pub async fn run(config_path: &Path, allow_public_bind: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // Read before binding, so a bad certificate or key stops the agent before it listens.
    let tls = config.tls.as_ref().map(|files| files.load()).transpose()?;
    let listeners =
        fleetdeck_daemon::serve::bind(&config.listen, allow_public_bind, "agent").await?;
    let apps = config.apps.len();
    let agent = Agent::new(config).context("cannot read host facts from /proc")?;
    tracing::info!(apps, instance_id = %agent.info().instance_id, "fleetdeck-agent started");
    let state_dir = state_directory();
    if let Some(dir) = &state_dir {
        restore_samples(&agent, dir);
    }
    let agent = Arc::new(agent);
    let _background = crate::watch::spawn(agent.clone());
    let hangups = tokio::spawn(reload_on_hangup(agent.clone(), config_path.to_owned()));
    let shutdown = fleetdeck_daemon::serve::shutdown_signal();
    let keeper = agent.clone();
    let served = match tls {
        Some(tls) => {
            tracing::info!(
                fingerprint = %tls.fingerprint,
                "serving HTTPS; a collector pins this certificate with tls_fingerprint = \"{}\"",
                tls.fingerprint
            );
            serve_tls(agent, listeners, tls.config, shutdown).await
        }
        None => serve(agent, listeners, shutdown).await,
    };
    hangups.abort();
    if let Some(dir) = &state_dir {
        save_samples(&keeper, dir);
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Where the sample ring is kept across a restart: systemd's `$STATE_DIRECTORY` (the unit's
/// `StateDirectory=`; the first, if it lists several). Without it the ring starts empty.
fn state_directory() -> Option<std::path::PathBuf> {
    let dirs = std::env::var_os("STATE_DIRECTORY")?;
    let first = std::env::split_paths(&dirs).next()?;
    (!first.as_os_str().is_empty()).then_some(first)
}

fn restore_samples(agent: &Agent, dir: &Path) {
    match agent.restore_samples(dir) {
        Ok(taken) => {
            if let Some(why) = &taken.dropped {
                tracing::warn!(dir = %dir.display(), "some saved samples were left out: {why}");
            }
            if taken.restored > 0 {
                tracing::info!(
                    samples = taken.restored,
                    "took back the samples saved at the last stop: a collector fetches those it missed"
                );
            }
        }
        Err(e) => tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "cannot read the samples saved at the last stop: history before this start has a gap"
        ),
    }
}

fn save_samples(agent: &Agent, dir: &Path) {
    match agent.save_samples(dir) {
        Ok(samples) => {
            tracing::info!(samples, dir = %dir.display(), "samples saved for the next start")
        }
        Err(e) => tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "cannot save the samples: those no collector fetched yet are lost with this stop"
        ),
    }
}

/// Reloads `path` at each SIGHUP: the apps, their checks, `[discover]` and the tokens. A file
/// that does not load keeps the running config, and the log says why, as at start.
async fn reload_on_hangup(agent: Arc<Agent>, path: std::path::PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reloading needs a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        match Config::load(&path) {
            Ok(config) => {
                let r = agent.reload(config);
                tracing::info!(
                    added = ?r.added,
                    removed = ?r.removed,
                    changed = ?r.changed,
                    tokens_changed = r.tokens_changed,
                    "config reloaded"
                );
                if !r.need_restart.is_empty() {
                    tracing::warn!(
                        settings = ?r.need_restart,
                        "these settings changed but are read only at start: restart the agent to use them"
                    );
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                "config not reloaded: the running config stays; fix the file and reload again"
            ),
        }
    }
}

/// The text of `fleetdeck-agent suggest`: what runs here, against `config_path`'s agent.toml if
/// given (its apps are not suggested again; its systemd scope and Docker socket are used).
pub async fn suggest(config_path: Option<&Path>, scope: Option<&str>) -> anyhow::Result<String> {
    let config = config_path.map(Config::read).transpose()?;
    let scope = match scope {
        None => config.as_ref().map_or(SystemdScope::System, |c| c.systemd),
        Some("system") => SystemdScope::System,
        Some("user") => SystemdScope::User,
        Some(other) => anyhow::bail!("--systemd {other:?}: use system or user"),
    };
    let socket = match &config {
        Some(c) => c.docker_socket.clone(),
        None => crate::config::default_docker_socket(
            std::env::var("DOCKER_HOST")
                .ok()
                .filter(|v| !v.is_empty())
                .as_deref(),
        ),
    };
    let systemd = crate::systemd::Systemd::new(scope);
    let docker = crate::docker::DockerSource::new(socket);
    let survey = crate::discover::scan::survey(&systemd, &docker).await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "this host".to_owned());
    Ok(crate::discover::suggest::render(
        &survey,
        config.as_ref(),
        &hostname,
    ))
}

/// The unit drop-in for the directories of `config_path`'s env files (empty if none).
pub fn env_drop_in(config_path: &Path) -> anyhow::Result<String> {
    let config = Config::read(config_path)?;
    let dirs = crate::discover::suggest::env_dirs(&config);
    Ok(if dirs.is_empty() {
        String::new()
    } else {
        crate::discover::suggest::drop_in(&dirs)
    })
}

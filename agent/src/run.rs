//! The binary's edge: tracing, config, bind policy, signals.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::{serve, Agent, Config};

pub use fleetdeck_daemon::serve::init_tracing;

/// Loads the config, binds every listen address and serves until SIGINT or SIGTERM.
pub async fn run(config_path: &Path, allow_public_bind: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let listeners =
        fleetdeck_daemon::serve::bind(&config.listen, allow_public_bind, "agent").await?;
    let apps = config.apps.len();
    let agent = Agent::new(config).context("cannot read host facts from /proc")?;
    tracing::info!(apps, instance_id = %agent.info().instance_id, "fleetdeck-agent started");
    let agent = Arc::new(agent);
    let _background = crate::watch::spawn(agent.clone());
    serve(agent, listeners, fleetdeck_daemon::serve::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Reports this VM's systemd units, Docker containers and host metrics to a Fleetdeck collector.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path to agent.toml.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Allow listening on addresses that are neither loopback nor Tailscale (exposes the agent).
    #[arg(long)]
    allow_public_bind: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints [[apps]] tables for the containers and services running on this host (not the
    /// operating system's own units), each with its .env file, and the unit drop-in that lets the
    /// agent write those files. With --config, apps agent.toml lists already are left out and
    /// its systemd scope and Docker socket are used.
    Suggest {
        /// Which systemd manager to ask: system or user (default: agent.toml's, else system).
        #[arg(long, value_name = "SCOPE")]
        systemd: Option<String>,
    },
    /// Prints the unit drop-in (ReadWritePaths=) for the directories of every env_file in
    /// agent.toml: the shipped unit's ProtectSystem=strict lets the agent write nowhere else.
    EnvDropIn,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    fleetdeck_agent::run::init_tracing();
    let result = match args.command {
        None => match &args.config {
            Some(config) => fleetdeck_agent::run::run(config, args.allow_public_bind).await,
            None => Err(anyhow::anyhow!(
                "--config is required: fleetdeck-agent --config /etc/fleetdeck/agent.toml"
            )),
        },
        Some(Command::Suggest { systemd }) => {
            fleetdeck_agent::run::suggest(args.config.as_deref(), systemd.as_deref())
                .await
                .map(|text| print!("{text}"))
        }
        Some(Command::EnvDropIn) => match &args.config {
            Some(config) => fleetdeck_agent::run::env_drop_in(config).map(|text| print!("{text}")),
            None => Err(anyhow::anyhow!(
                "--config is required: fleetdeck-agent env-drop-in --config /etc/fleetdeck/agent.toml"
            )),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetdeck-agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

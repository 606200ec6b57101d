use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Reports this VM's systemd units, Docker containers and host metrics to a Fleetdeck collector.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path to agent.toml.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Allow listening on addresses that are neither loopback nor Tailscale (exposes the agent).
    #[arg(long)]
    allow_public_bind: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    fleetdeck_agent::run::init_tracing();
    match fleetdeck_agent::run::run(&args.config, args.allow_public_bind).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetdeck-agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

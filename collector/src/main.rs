use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fleetdeck_proto::Role;

/// Polls and subscribes to Fleetdeck agents, keeps their history, alerts, and serves the desktop.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path to collector.toml.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Allow listening on addresses that are neither loopback nor Tailscale (exposes the collector).
    #[arg(long)]
    allow_public_bind: bool,
    /// Serve a simulated fleet (no config needed, loopback only) and print the URL and a key.
    #[arg(long, conflicts_with = "config")]
    demo: bool,
    /// The demo's port on 127.0.0.1.
    #[arg(long, default_value_t = 7080, requires = "demo")]
    port: u16,
    /// How many simulated hosts the demo serves (4 apps each).
    #[arg(long, default_value_t = fleetdeck_collector::demo::DEMO_HOSTS, requires = "demo",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    hosts: u16,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage API keys (stored hashed in the database).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// List tailnet peers that answer an agent's /healthz, as config stanzas to paste.
    Discover {
        /// The agents' port.
        #[arg(long, default_value_t = 7070)]
        port: u16,
        /// How long to wait for each peer.
        #[arg(long, default_value = "2s")]
        timeout: humantime::Duration,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once, as the last line.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    fleetdeck_collector::run::init_tracing();
    let result = match (args.command, args.config) {
        (Some(Command::Keys { command: KeysCommand::Create { name, role } }), Some(config)) => {
            fleetdeck_collector::run::create_key(&config, &name, role.into()).map(|out| println!("{out}"))
        }
        (Some(Command::Keys { .. }), None) => Err(anyhow::anyhow!(
            "keys needs --config PATH before it: fleetdeck-collector --config collector.toml keys create --name NAME --role operator"
        )),
        (Some(Command::Discover { port, timeout }), _) => {
            fleetdeck_collector::discover::run(port, *timeout).await.map(|out| print!("{out}"))
        }
        (None, _) if args.demo => fleetdeck_collector::demo::run(args.port, usize::from(args.hosts)).await,
        (None, Some(config)) => fleetdeck_collector::run::run(&config, args.allow_public_bind).await,
        (None, None) => Err(anyhow::anyhow!("pass --config PATH or --demo")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetdeck-collector: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        super::Args::command().debug_assert();
    }
}

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
    /// Every demo app writes a log line this often (e.g. `20ms`: a chatty fleet), instead of its
    /// own 0.8–2.2 s.
    #[arg(long, requires = "demo", value_parser = parse_log_every)]
    log_every: Option<humantime::Duration>,
    /// Days of the demo fleet's past stored before it starts (charts, uptime, events, alerts).
    #[arg(long, default_value_t = fleetdeck_collector::demo::history::DEFAULT_DAYS, requires = "demo",
          value_parser = clap::value_parser!(u64).range(0..=90))]
    history_days: u64,
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
    /// Silence alerts (kept from the channels and desktop notifications until the silence ends).
    Silence {
        #[command(subcommand)]
        command: SilenceArgs,
    },
    /// The channels alerts go to: list them, or send one a test alert.
    Channels {
        #[command(subcommand)]
        command: ChannelsArgs,
    },
    /// Read collector.toml exactly as at start (token files included) and say what it holds.
    CheckConfig,
    /// Copy the database while the collector runs (SQLite's online backup), checked, mode 0600.
    Backup {
        /// Where to write the copy (must not exist).
        path: PathBuf,
    },
    /// Replace the database with a backup; only while the collector is stopped.
    Restore {
        /// The backup to restore.
        path: PathBuf,
    },
    /// Copy a whole SQLite database (the old `database` file) into the PostgreSQL database of
    /// --config: it must be empty and no collector may run on it; all or nothing.
    CopyFromSqlite {
        /// The SQLite database to copy.
        path: PathBuf,
    },
    /// Join hosts: add an agent (its token on stdin), remove one, swap its token, list them.
    Agents {
        #[command(subcommand)]
        command: AgentsArgs,
    },
    /// List tailnet peers that answer an agent's /healthz, as config stanzas to paste.
    Discover {
        /// The agents' port.
        #[arg(long, default_value_t = 7070)]
        port: u16,
        /// How long to wait for each peer.
        #[arg(long, default_value = "2s")]
        timeout: humantime::Duration,
        /// Join every agent found, as `agents add` would, with its token from --tokens DIR
        /// (DIR/NAME.token, NAME as discover prints it); needs --config.
        #[arg(long, requires = "tokens")]
        add: bool,
        /// With --add: the directory holding each agent's token as NAME.token.
        #[arg(long, value_name = "DIR", requires = "add")]
        tokens: Option<PathBuf>,
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
    /// List the keys: name, role, when made, when last used (never a key).
    List,
    /// Delete a key: refused from its next request, its open streams end within seconds.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum AgentsArgs {
    /// Add an agent: its token is read from stdin and kept in the state directory (0600), its
    /// [[agents]] table is written to agents.d/NAME.toml, the agent is asked whether it answers,
    /// and the running collector reloads.
    Add {
        name: String,
        /// The agent's URL, e.g. http://100.101.1.2:7070.
        url: String,
        /// Pin the agent's certificate (https:// only): sha256:... as the agent logs it.
        #[arg(long)]
        tls_fingerprint: Option<String>,
    },
    /// Remove an agent `agents add` added; the running collector reloads.
    Rm { name: String },
    /// Replace an agent's token with the one on stdin (after install.sh --rotate-token on its VM).
    Token { name: String },
    /// List the agents and the file each comes from.
    List,
}

#[derive(Debug, Subcommand)]
enum ChannelsArgs {
    /// List the channels (name, type, format, where).
    List,
    /// Send a clearly marked test alert to a channel and say how it went (exit 1 if it failed).
    Test { name: String },
}

#[derive(Debug, Subcommand)]
enum SilenceArgs {
    /// Add a silence; its id is printed.
    Add {
        /// A glob over host names.
        #[arg(long, default_value = "*")]
        hosts: String,
        /// A glob over app names (without it: the hosts and all their apps).
        #[arg(long)]
        apps: Option<String>,
        /// Only one aspect: state, check, source, clock, cert-expiring, cert-critical, threshold.
        #[arg(long)]
        kind: Option<String>,
        /// How long, e.g. 2h or 1d (at most 90 days).
        #[arg(long)]
        duration: String,
        /// Why (shown in the list and the desktop).
        #[arg(long)]
        reason: String,
    },
    /// List the silences in force or to come.
    List,
    /// End a silence now.
    Rm { id: i64 },
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
        (Some(Command::Keys { command: KeysCommand::List }), Some(config)) => {
            fleetdeck_collector::care::keys_list(&config).map(|out| println!("{out}"))
        }
        (Some(Command::Keys { command: KeysCommand::Delete { name } }), Some(config)) => {
            fleetdeck_collector::care::keys_delete(&config, &name).map(|out| println!("{out}"))
        }
        (Some(Command::CheckConfig), Some(config)) => {
            fleetdeck_collector::care::check_config(&config).map(|out| println!("{out}"))
        }
        (Some(Command::Backup { path }), Some(config)) => {
            fleetdeck_collector::care::backup(&config, &path).map(|out| println!("{out}"))
        }
        (Some(Command::Restore { path }), Some(config)) => {
            fleetdeck_collector::care::restore(&config, &path).map(|out| println!("{out}"))
        }
        (Some(Command::CopyFromSqlite { path }), Some(config)) => {
            fleetdeck_collector::care::copy_from_sqlite(&config, &path).map(|out| println!("{out}"))
        }
        (Some(Command::CheckConfig | Command::Backup { .. } | Command::Restore { .. } | Command::CopyFromSqlite { .. }), None) => Err(anyhow::anyhow!(
            "this command needs --config PATH before it: fleetdeck-collector --config /etc/fleetdeck/collector.toml backup /var/backups/collector.db"
        )),
        (Some(Command::Keys { .. }), None) => Err(anyhow::anyhow!(
            "keys needs --config PATH before it: fleetdeck-collector --config collector.toml keys create --name NAME --role operator"
        )),
        (Some(Command::Silence { command }), Some(config)) => {
            use fleetdeck_collector::silence_cli::{run, SilenceCommand};
            let command = match command {
                SilenceArgs::Add { hosts, apps, kind, duration, reason } => {
                    SilenceCommand::Add(fleetdeck_proto::NewSilence {
                        hosts: Some(hosts),
                        apps,
                        kind,
                        duration: Some(duration),
                        until_unix_ms: None,
                        reason,
                    })
                }
                SilenceArgs::List => SilenceCommand::List,
                SilenceArgs::Rm { id } => SilenceCommand::Rm(id),
            };
            run(&config, command).map(|out| println!("{out}"))
        }
        (Some(Command::Silence { .. }), None) => Err(anyhow::anyhow!(
            "silence needs --config PATH before it: fleetdeck-collector --config collector.toml silence add --hosts 'db-*' --duration 2h --reason maintenance"
        )),
        (Some(Command::Channels { command }), Some(config)) => {
            let test = match command {
                ChannelsArgs::List => None,
                ChannelsArgs::Test { name } => Some(name),
            };
            match fleetdeck_collector::run::channels(&config, test).await {
                Ok((out, ok)) => {
                    println!("{out}");
                    if !ok {
                        return ExitCode::from(1);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        (Some(Command::Channels { .. }), None) => Err(anyhow::anyhow!(
            "channels needs --config PATH before it: fleetdeck-collector --config collector.toml channels test NAME"
        )),
        (Some(Command::Agents { command }), Some(config)) => {
            use fleetdeck_collector::join;
            let stdin = || join::read_token_from(std::io::stdin().lock());
            let out = match command {
                AgentsArgs::Add { name, url, tls_fingerprint } => match stdin() {
                    Ok(token) => join::add(&config, &name, &url, tls_fingerprint.as_deref(), &token).await,
                    Err(e) => Err(e),
                },
                AgentsArgs::Rm { name } => join::rm(&config, &name).await,
                AgentsArgs::Token { name } => match stdin() {
                    Ok(token) => join::set_token(&config, &name, &token).await,
                    Err(e) => Err(e),
                },
                AgentsArgs::List => join::list(&config),
            };
            out.map(|out| println!("{out}"))
        }
        (Some(Command::Agents { .. }), None) => Err(anyhow::anyhow!(
            "agents needs --config PATH before it: fleetdeck-collector --config /etc/fleetdeck/collector.toml agents add vm-3 http://100.101.1.3:7070 < vm-3.token"
        )),
        (Some(Command::Discover { port, timeout, add: false, .. }), _) => {
            fleetdeck_collector::discover::run(port, *timeout).await.map(|out| print!("{out}"))
        }
        (Some(Command::Discover { add: true, .. }), None) => Err(anyhow::anyhow!(
            "discover --add needs --config PATH before it: fleetdeck-collector --config /etc/fleetdeck/collector.toml discover --add --tokens DIR"
        )),
        (Some(Command::Discover { port, timeout, add: true, tokens }), Some(config)) => {
            discover_add(&config, port, *timeout, tokens.as_deref()).await
        }
        (None, _) if args.demo => {
            let demo = fleetdeck_collector::demo::Demo {
                port: args.port,
                hosts: usize::from(args.hosts),
                log_every: args.log_every.map(Into::into),
                history_days: args.history_days,
            };
            fleetdeck_collector::demo::run(demo).await
        }
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

/// `discover --add --tokens DIR`: finds the tailnet's agents and joins each whose token is in DIR.
async fn discover_add(
    config: &std::path::Path,
    port: u16,
    timeout: std::time::Duration,
    tokens: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let tokens =
        tokens.context("--add needs --tokens DIR (each agent's token as DIR/NAME.token)")?;
    let found = fleetdeck_collector::discover::find(port, timeout).await?;
    let (said, all) = fleetdeck_collector::join::add_discovered(config, &found, tokens).await?;
    print!("{said}");
    if all {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "not every agent found was added (above); fix what it says and run discover --add again"
        ))
    }
}

/// `--log-every`: a duration from 1 ms to 1 h.
fn parse_log_every(text: &str) -> Result<humantime::Duration, String> {
    let d: humantime::Duration = text
        .parse()
        .map_err(|e| format!("{e}: write a duration such as 20ms or 1s"))?;
    let ms = std::time::Duration::from(d).as_millis();
    if (1..=3_600_000).contains(&ms) {
        Ok(d)
    } else {
        Err(format!("{text} is out of range: from 1ms to 1h"))
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

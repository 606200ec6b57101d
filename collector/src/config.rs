//! The collector's one typed configuration, `collector.toml`: loaded once at start (defaults, then
//! the file; agents' tokens from their files) and passed down. Unknown keys are refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fleetdeck_daemon::listen::ListenSpec;
use fleetdeck_daemon::secret::{read_token, Token};
use fleetdeck_daemon::transport::pin::Fingerprint;
use fleetdeck_daemon::transport::server::TlsFiles;
use serde::Deserialize;

use crate::alerting::maintenance::Maintenance;
use crate::alerting::notify::{RetryPolicy, Webhook, WebhookFormat};
use crate::alerting::route::{Channel, Route};

pub(crate) mod channels;
use crate::alerting::rules::AlertPolicy;
use crate::alerting::thresholds::{self, RawRule, Rule};
use channels::{channels_and_routes, RawChannel, RawMaintenance, RawRoute};

/// The collector's port when a `listen` entry names none (`"tailscale"`).
pub const DEFAULT_PORT: u16 = 7080;

/// Why the collector cannot start with this configuration; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}; pass an existing file with --config")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("token file {path} (agent {agent:?} in {config}): {message}")]
    Token {
        path: PathBuf,
        agent: String,
        config: PathBuf,
        message: String,
    },
}

/// One agent to poll and subscribe to.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The host's name in the collector's API: 1–64 of `[A-Za-z0-9._-]`.
    pub name: String,
    /// The agent's base URL, without a trailing slash (`http://100.101.1.2:7070`).
    pub url: String,
    pub token: Token,
    /// Trust exactly the agent certificate of this SHA-256 (`tls_fingerprint`; `https://` only).
    pub tls_fingerprint: Option<Fingerprint>,
    /// Where the token was read from (relative paths resolved against collector.toml's
    /// directory).
    pub token_file: PathBuf,
    /// The `agents.d/` file the table is in; `None`: collector.toml itself.
    pub from: Option<PathBuf>,
}

/// How long each kind of data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub hour: Duration,
    /// Events, alerts, audit entries and closed status intervals.
    pub events: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            raw: Duration::from_secs(2 * DAY),
            minute: Duration::from_secs(30 * DAY),
            hour: Duration::from_secs(365 * DAY),
            events: Duration::from_secs(365 * DAY),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenSpec>,
    /// Serve HTTPS with these PEM files (`tls_cert`, `tls_key`) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// An SQLite file, or a PostgreSQL server (`database = "postgres://…"`).
    pub database: crate::store::Target,
    /// The config file's directory.
    pub config_dir: PathBuf,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
    /// At most this many agents are asked at once.
    pub poll_concurrency: usize,
    /// A host is down after this many missed polls in a row.
    pub down_after: u32,
    pub agents: Vec<AgentConfig>,
    pub webhooks: Vec<Webhook>,
    /// Named channels: `[[channels]]`, then each `[[webhooks]]` entry as `webhook-N`.
    pub channels: Vec<Channel>,
    /// `[[routes]]`, their channel names resolved.
    pub routes: Vec<Route>,
    /// `[[maintenance]]`: weekly windows that silence their hosts.
    pub maintenance: Vec<Maintenance>,
    pub alerts: AlertPolicy,
    pub retry: RetryPolicy,
    pub retention: Retention,
    /// Threshold rules in effect: the shipped ones (unless `[alerts] default_rules = false`),
    /// replaced or extended by `[[rules]]`.
    pub rules: Vec<Rule>,
    /// `[metrics]`: `GET /metrics` answers a scraper presenting this token; absent, it is off.
    pub metrics: Option<MetricsConfig>,
    /// `[cluster] lease`: on PostgreSQL, how long a leader cut off from the database keeps the
    /// lead (it stops after half, a standby takes over after all of it).
    pub lease: Duration,
}

/// `[cluster] lease`'s default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// `[metrics] token_file`: the bearer token a Prometheus server presents to `GET /metrics`
/// (its `authorization: credentials_file:`). API keys do not open it, nor it the API.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub token_file: PathBuf,
    pub token: Token,
}

impl MetricsConfig {
    fn read(raw: RawMetrics, dir: &Path) -> Result<Self, String> {
        let token_file = if raw.token_file.is_relative() {
            dir.join(&raw.token_file)
        } else {
            raw.token_file
        };
        let token = read_token(&token_file).map_err(|message| {
            format!("[metrics] token_file {}: {message}", token_file.display())
        })?;
        Ok(Self { token_file, token })
    }
}

impl Config {
    /// What the run lock (`<this>.lock`) is named after: the SQLite file, or for PostgreSQL a
    /// name beside the config (one collector per config on a machine).
    pub fn lock_base(&self) -> PathBuf {
        match &self.database {
            crate::store::Target::Sqlite(path) => path.clone(),
            crate::store::Target::Postgres(_) => self.config_dir.join("collector-postgres"),
        }
    }

    /// Where the collector keeps files of its own (agent tokens written by `agents add`): beside
    /// the SQLite file, or beside the config.
    pub fn state_dir(&self) -> PathBuf {
        match &self.database {
            crate::store::Target::Sqlite(path) => {
                path.parent().unwrap_or(Path::new(".")).to_owned()
            }
            crate::store::Target::Postgres(_) => self.config_dir.clone(),
        }
    }

    /// Loads and checks `path`, reading each agent's token from its file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut raw: RawConfig =
            toml::from_str(&text).map_err(|e| invalid(toml_error(&text, &e)))?;
        if !raw.webhooks.is_empty() || !raw.channels.is_empty() {
            refuse_if_others_can_read(path).map_err(invalid)?;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for channel in &mut raw.channels {
            channel.read_files(dir);
        }
        raw.agents
            .extend(read_agents_dir(&dir.join(AGENTS_DIR)).map_err(invalid)?);
        // Relative paths are relative to the config file, as an operator reading it expects.
        let resolve = |p: &Path| {
            if p.is_relative() {
                dir.join(p)
            } else {
                p.to_owned()
            }
        };
        let mut tokens = Vec::with_capacity(raw.agents.len());
        for agent in &raw.agents {
            let file = resolve(&agent.token_file);
            let token = read_token(&file).map_err(|message| ConfigError::Token {
                path: file.clone(),
                agent: agent.name.clone(),
                config: agent.from.clone().unwrap_or_else(|| path.to_owned()),
                // The collector presents the agent's own token: it is copied, never made here.
                message: if file.exists() {
                    message
                } else {
                    format!(
                        "does not exist; copy the token of agent {:?} into it (on that VM, the \
                         file its agent.toml names in token_file, e.g. /etc/fleetdeck/agent.token), \
                         then chmod 600 {}",
                        agent.name,
                        file.display()
                    )
                },
            })?;
            tokens.push(token);
        }
        raw.database_password_file = raw.database_password_file.as_deref().map(resolve);
        let metrics = raw.metrics.take();
        let mut config = raw.validate(tokens).map_err(invalid)?;
        config.metrics = metrics
            .map(|m| MetricsConfig::read(m, dir))
            .transpose()
            .map_err(invalid)?;
        config.config_dir = dir.to_owned();
        if let crate::store::Target::Sqlite(file) = &config.database {
            config.database = crate::store::Target::Sqlite(resolve(file));
        }
        for agent in &mut config.agents {
            agent.token_file = resolve(&agent.token_file);
        }
        config.tls = config.tls.map(|tls| tls.relative_to(dir));
        Ok(config)
    }

    /// Parses and validates TOML text whose agents' tokens are given (tests, the demo).
    pub fn parse(text: &str, tokens: Vec<Token>) -> Result<Self, String> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        for channel in &mut raw.channels {
            channel.read_files(Path::new("."));
        }
        let metrics = raw.metrics.take();
        let mut config = raw.validate(tokens)?;
        config.metrics = metrics
            .map(|m| MetricsConfig::read(m, Path::new(".")))
            .transpose()?;
        Ok(config)
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    database: Option<String>,
    /// PostgreSQL's password, in a file of mode 0600.
    database_password_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde::option")]
    poll_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    poll_timeout: Option<Duration>,
    poll_concurrency: Option<usize>,
    down_after: Option<u32>,
    #[serde(default)]
    agents: Vec<RawAgent>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
    #[serde(default)]
    channels: Vec<RawChannel>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    maintenance: Vec<RawMaintenance>,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    rules: Vec<RawRule>,
    metrics: Option<RawMetrics>,
    cluster: Option<RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default, with = "humantime_serde::option")]
    lease: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: String,
    url: String,
    token_file: PathBuf,
    tls_fingerprint: Option<String>,
    /// The `agents.d` file it came from (`None`: collector.toml itself).
    #[serde(skip)]
    from: Option<PathBuf>,
}

/// A file of `agents.d/`: `[[agents]]` tables and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentsFile {
    #[serde(default)]
    agents: Vec<RawAgent>,
}

/// The directory beside collector.toml whose `*.toml` files add `[[agents]]` tables (one file an
/// agent, as `fleetdeck-collector agents add` writes them).
pub const AGENTS_DIR: &str = "agents.d";

/// The agents of every `*.toml` in `dir` (in name order), each knowing its file; none if `dir`
/// does not exist.
fn read_agents_dir(dir: &Path) -> Result<Vec<RawAgent>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut agents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let raw: RawAgentsFile = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", file.display(), toml_error(&text, &e)))?;
        agents.extend(raw.agents.into_iter().map(|mut a| {
            a.from = Some(file.clone());
            a
        }));
    }
    Ok(agents)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    #[serde(default = "default_format")]
    format: WebhookFormat,
}

fn default_format() -> WebhookFormat {
    WebhookFormat::Json
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default, with = "humantime_serde::option")]
    grace: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    flap_window: Option<Duration>,
    flap_threshold: Option<u32>,
    retry_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde::option")]
    retry_first_delay: Option<Duration>,
    /// The shipped threshold rules (default true).
    default_rules: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default, with = "humantime_serde::option")]
    raw: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    minute: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    hour: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    events: Option<Duration>,
}

/// A config that holds webhook URLs holds secrets (a Slack or Discord webhook URL is its own
/// credential): like a token file, it must be readable by its owner only.
fn refuse_if_others_can_read(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read its permissions ({e})"))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "holds [[webhooks]] or [[channels]] URLs, which are secrets, and is readable by group or others \
             (mode {mode:04o}); run chmod 600 {}",
            path.display()
        ));
    }
    Ok(())
}

/// A TOML error as "line N: message", without quoting the line: it may hold a webhook URL, which
/// is a secret for Slack and Discord. The message is put on one line: toml's own can span two
/// (found by fuzzing).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// A host name for the API: safe in a URL path segment.
pub fn valid_name(s: &str) -> bool {
    s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl RawConfig {
    fn validate(self, tokens: Vec<Token>) -> Result<Config, String> {
        let listen_raw = self
            .listen
            .unwrap_or_else(|| vec![format!("127.0.0.1:{DEFAULT_PORT}")]);
        if listen_raw.is_empty() {
            return Err(format!(
                "`listen` is empty: give at least one address, e.g. listen = [\"127.0.0.1:{DEFAULT_PORT}\"]"
            ));
        }
        let listen = listen_raw
            .iter()
            .map(|s| ListenSpec::parse(s, DEFAULT_PORT).map_err(|e| format!("`listen`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = TlsFiles::from_config(self.tls_cert, self.tls_key)?;
        let database = self.database.ok_or(
            "`database` is missing: add database = \"/var/lib/fleetdeck/collector.db\" (an SQLite file the collector creates) or database = \"postgres://fleetdeck@HOST:5432/fleetdeck\"",
        )?;
        let database = if crate::store::db::is_postgres_url(&database) {
            crate::store::Target::Postgres(Box::new(crate::store::db::PgTarget::parse(
                &database,
                self.database_password_file.as_deref(),
            )?))
        } else if self.database_password_file.is_some() {
            return Err("`database_password_file` is for a PostgreSQL `database` (postgres://…); an SQLite file needs none".into());
        } else {
            crate::store::Target::Sqlite(PathBuf::from(database))
        };
        let lease = match (&self.cluster, &database) {
            (Some(_), crate::store::Target::Sqlite(_)) => {
                return Err("[cluster] is for collectors sharing a PostgreSQL `database` (a leader and its standbys); an SQLite collector runs alone: remove [cluster]".into())
            }
            (cluster, _) => cluster.as_ref().and_then(|c| c.lease).unwrap_or(DEFAULT_LEASE),
        };
        if lease < Duration::from_secs(1) || lease > Duration::from_secs(300) {
            return Err(format!(
                "[cluster] lease = {lease:?} is out of range: use \"1s\" to \"5m\" (default \"10s\")"
            ));
        }
        let database = match database {
            crate::store::Target::Postgres(pg) => {
                crate::store::Target::Postgres(Box::new(pg.for_cluster(lease)))
            }
            sqlite => sqlite,
        };
        let poll_interval = self.poll_interval.unwrap_or(Duration::from_secs(30));
        if poll_interval < Duration::from_secs(1) {
            return Err(format!(
                "`poll_interval` = {poll_interval:?} is too short: use at least \"1s\" (default \"30s\")"
            ));
        }
        let poll_timeout = self
            .poll_timeout
            .unwrap_or_else(|| (poll_interval / 2).min(Duration::from_secs(10)));
        if poll_timeout.is_zero() || poll_timeout > poll_interval {
            return Err(format!(
                "`poll_timeout` = {poll_timeout:?} must be above zero and at most poll_interval ({poll_interval:?})"
            ));
        }
        let poll_concurrency = self.poll_concurrency.unwrap_or(256);
        if poll_concurrency == 0 {
            return Err("`poll_concurrency` must be at least 1 (default 256)".into());
        }
        let down_after = self.down_after.unwrap_or(2);
        if down_after == 0 {
            return Err(
                "`down_after` (missed polls before a host is down) must be at least 1 (default 2)"
                    .into(),
            );
        }
        if tokens.len() != self.agents.len() {
            return Err("internal: one token per agent is needed".into());
        }
        let mut agents: Vec<AgentConfig> = Vec::with_capacity(self.agents.len());
        for (i, (agent, token)) in self.agents.into_iter().zip(tokens).enumerate() {
            let at = match &agent.from {
                Some(file) => format!("{}: [[agents]] (name = {:?})", file.display(), agent.name),
                None => format!("[[agents]] #{} (name = {:?})", i + 1, agent.name),
            };
            if !valid_name(&agent.name) {
                return Err(format!(
                    "{at}: invalid name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                ));
            }
            if agents.iter().any(|a| a.name == agent.name) {
                return Err(format!(
                    "{at}: duplicate agent name: each agent needs its own name"
                ));
            }
            let url = reqwest::Url::parse(&agent.url).map_err(|e| {
                format!(
                    "{at}: url = {:?} is not a URL ({e}); use e.g. \"http://100.101.1.2:7070\"",
                    agent.url
                )
            })?;
            if !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(format!(
                    "{at}: url must be only scheme, host, port and path (no user, password, query or fragment), e.g. \"http://100.101.1.2:7070\""
                ));
            }
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "{at}: url = {:?} must be http:// or https:// with a host, e.g. \"http://100.101.1.2:7070\"",
                    agent.url
                ));
            }
            let tls_fingerprint = match agent.tls_fingerprint.as_deref() {
                None => None,
                Some(_) if url.scheme() != "https" => {
                    return Err(format!(
                        "{at}: tls_fingerprint pins a certificate, which needs an https:// url; \
                         serve the agent with tls_cert and tls_key and use https://, or remove tls_fingerprint"
                    ))
                }
                Some(text) => Some(
                    Fingerprint::parse(text).map_err(|e| format!("{at}: tls_fingerprint: {e}"))?,
                ),
            };
            agents.push(AgentConfig {
                name: agent.name,
                url: agent.url.trim_end_matches('/').to_owned(),
                token,
                tls_fingerprint,
                token_file: agent.token_file,
                from: agent.from,
            });
        }
        let mut webhooks = Vec::with_capacity(self.webhooks.len());
        for (i, hook) in self.webhooks.into_iter().enumerate() {
            let url = reqwest::Url::parse(&hook.url).map_err(|e| {
                format!(
                    "[[webhooks]] #{}: url is not a URL ({e}); use the full https://... address",
                    i + 1
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "[[webhooks]] #{}: url must be http:// or https://",
                    i + 1
                ));
            }
            webhooks.push(Webhook {
                url: hook.url,
                format: hook.format,
            });
        }
        let (channels, routes) = channels_and_routes(self.channels, &webhooks, self.routes)?;
        let mut maintenance = Vec::with_capacity(self.maintenance.len());
        for (i, m) in self.maintenance.into_iter().enumerate() {
            let m = m.check(i)?;
            if maintenance.iter().any(|o: &Maintenance| o.name == m.name) {
                return Err(format!(
                    "[[maintenance]] #{}: the name {:?} is used twice",
                    i + 1,
                    m.name
                ));
            }
            maintenance.push(m);
        }
        let default_policy = AlertPolicy::default();
        let alerts = AlertPolicy {
            grace: self.alerts.grace.unwrap_or(default_policy.grace),
            flap_window: self
                .alerts
                .flap_window
                .unwrap_or(default_policy.flap_window),
            flap_threshold: self
                .alerts
                .flap_threshold
                .unwrap_or(default_policy.flap_threshold),
        };
        if alerts.flap_threshold < 2 {
            return Err("[alerts] flap_threshold must be at least 2 (default 3)".into());
        }
        let default_retry = RetryPolicy::default();
        let retry = RetryPolicy {
            attempts: self
                .alerts
                .retry_attempts
                .unwrap_or(default_retry.attempts)
                .max(1),
            first_delay: self
                .alerts
                .retry_first_delay
                .unwrap_or(default_retry.first_delay),
            ..default_retry
        };
        let d = Retention::default();
        let retention = Retention {
            raw: self.retention.raw.unwrap_or(d.raw),
            minute: self.retention.minute.unwrap_or(d.minute),
            hour: self.retention.hour.unwrap_or(d.hour),
            events: self.retention.events.unwrap_or(d.events),
        };
        if retention.raw < Duration::from_secs(3600) {
            return Err("[retention] raw must be at least \"1h\" (default \"48h\")".into());
        }
        if retention.events < Duration::from_secs(31 * 24 * 3600) {
            return Err("[retention] events must be at least \"31d\": 30-day uptime is computed from the status history it also keeps (default \"365d\")".into());
        }
        let rules = thresholds::build_rules(self.alerts.default_rules.unwrap_or(true), self.rules)?;
        Ok(Config {
            listen,
            tls,
            database,
            config_dir: PathBuf::from("."),
            poll_interval,
            poll_timeout,
            poll_concurrency,
            down_after,
            agents,
            webhooks,
            channels,
            routes,
            maintenance,
            alerts,
            retry,
            retention,
            rules,
            metrics: None,
            lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, agents: usize) -> Result<Config, String> {
        Config::parse(text, vec![Token::new("t".repeat(20)); agents])
    }

    const BASE: &str = "database = \"c.db\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(BASE, 0).expect("valid");
        assert_eq!(c.poll_interval, Duration::from_secs(30));
        assert_eq!(c.poll_timeout, Duration::from_secs(10));
        assert_eq!(c.down_after, 2);
        assert_eq!(c.retention, Retention::default());
        assert_eq!(
            c.listen,
            vec![ListenSpec::parse("127.0.0.1:7080", DEFAULT_PORT).expect("valid")]
        );
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        for (text, agents, want) in [
            ("", 0, "`database` is missing"),
            ("database = \"x\"\nbogus = 1\n", 0, "line 2: unknown field `bogus`"),
            ("database = \"x\"\n[retention]\nevents = \"1d\"\n", 0, "at least \"31d\""),
            ("database = \"x\"\npoll_interval = \"10ms\"\n", 0, "at least \"1s\""),
            ("database = \"x\"\ndown_after = 0\n", 0, "`down_after`"),
            ("database = \"x\"\nlisten = [\"localhost\"]\n", 0, "IP:PORT"),
            (
                "database = \"x\"\n[[agents]]\nname = \"a b\"\nurl = \"http://x:1\"\ntoken_file = \"t\"\n",
                1,
                "invalid name",
            ),
            (
                "database = \"x\"\n[[agents]]\nname = \"a\"\nurl = \"ftp://x\"\ntoken_file = \"t\"\n",
                1,
                "must be http://",
            ),
            (
                "database = \"x\"\n[[agents]]\nname = \"a\"\nurl = \"http://x:1\"\ntoken_file = \"t\"\n[[agents]]\nname = \"a\"\nurl = \"http://y:1\"\ntoken_file = \"t\"\n",
                2,
                "duplicate agent name",
            ),
            (
                "database = \"x\"\n[[webhooks]]\nurl = \"https://h\"\nformat = \"teams\"\n",
                0,
                "unknown variant `teams`",
            ),
            (
                "database = \"x\"\n[[agents]]\nname = \"a\"\nurl = \"http://u:p@x:1\"\ntoken_file = \"t\"\n",
                1,
                "no user, password",
            ),
        ] {
            let err = parse(text, agents).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
        // A parse error names the line but never quotes it (a webhook URL is a secret).
        let err = parse(
            "database = \"x\"\n[[webhooks]]\nurl = \"https://hooks.slack.com/services/SECRET\"\nformt = \"slack\"\n",
            0,
        )
        .expect_err("typo");
        assert!(!err.contains("SECRET"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        // Found by fuzzing (fuzz/, config): toml's message for some syntax errors spans two lines.
        let err =
            parse("database = \"x\"\nlisten = [\"127.0.0.1:1\"\n", 0).expect_err("open array");
        assert!(err.ends_with("invalid array; expected `]`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn tls_settings() {
        let pin = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let agent = |url: &str, fp: &str| {
            format!(
                "{BASE}tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[[agents]]\nname = \"a\"\nurl = \"{url}\"\ntoken_file = \"t\"\ntls_fingerprint = \"{fp}\"\n"
            )
        };
        let c = parse(&agent("https://10.0.0.2:7070", pin), 1).expect("valid");
        assert_eq!(
            c.agents[0]
                .tls_fingerprint
                .map(|f| f.to_string())
                .as_deref(),
            Some(pin)
        );
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        let e = parse(&agent("http://10.0.0.2:7070", pin), 1).expect_err("http");
        assert!(e.contains("needs an https:// url"), "{e}");
        let e = parse(&agent("https://10.0.0.2:7070", "sha256:abc"), 1).expect_err("short");
        assert!(
            e.contains("tls_fingerprint") && e.contains("64 hex digits"),
            "{e}"
        );
        let e = parse(&format!("{BASE}tls_key = \"k.pem\"\n"), 0).expect_err("key alone");
        assert!(e.contains("`tls_cert` is not"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let c = parse(include_str!("../dist/collector.toml.example"), 1).expect("valid example");
        assert_eq!(c.agents[0].name, "vm-1");
        assert_eq!(c.webhooks[0].format, WebhookFormat::Slack);
    }

    #[test]
    fn full_config() {
        let text = r#"
listen = ["127.0.0.1:7080", "tailscale"]
database = "/var/lib/fleetdeck/collector.db"
poll_interval = "5s"
[[agents]]
name = "vm-1"
url = "http://100.101.1.2:7070/"
token_file = "/etc/fleetdeck/agents/vm-1.token"
[[webhooks]]
url = "https://hooks.example/x"
format = "slack"
[alerts]
grace = "0s"
[retention]
raw = "2h"
"#;
        let c = parse(text, 1).expect("valid");
        assert_eq!(c.agents[0].url, "http://100.101.1.2:7070");
        assert_eq!(c.poll_timeout, Duration::from_millis(2500));
        assert_eq!(c.webhooks[0].format, WebhookFormat::Slack);
        assert_eq!(c.alerts.grace, Duration::ZERO);
        assert_eq!(c.retention.raw, Duration::from_secs(7200));
        assert_eq!(c.listen[1], ListenSpec::Tailscale { port: DEFAULT_PORT });
        assert_eq!(c.rules, thresholds::default_rules());
    }

    #[test]
    fn threshold_rules() {
        let c = parse(
            &format!("{BASE}[alerts]\ndefault_rules = false\n[[rules]]\nname = \"disk-full\"\nmetric = \"disk.used_percent\"\nabove = 80\nfor = \"1m\"\n"),
            0,
        )
        .expect("valid");
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].threshold, 80.0);
        let e = parse(
            &format!("{BASE}[[rules]]\nname = \"cpu\"\nmetric = \"cpu.percent\"\nabove = 90\nfor = \"soon\"\n"),
            0,
        )
        .expect_err("bad for");
        assert!(e.starts_with("[[rules]] \"cpu\": for = \"soon\""), "{e}");
    }
}

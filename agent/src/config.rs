//! The agent's one typed configuration: defaults, then `agent.toml`, then `DOCKER_HOST` for the
//! Docker socket when the file names none. Loaded once at start and passed down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::listen::ListenSpec;
use fleetdeck_daemon::secret::read_token;
pub use fleetdeck_daemon::secret::Token;
use fleetdeck_daemon::transport::server::TlsFiles;

/// The agent's port when a `listen` entry names none (`"tailscale"`).
pub const DEFAULT_PORT: u16 = 7070;

const DEFAULT_DOCKER_SOCKET: &str = "unix:///var/run/docker.sock";

/// Why the agent cannot start with this configuration; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}; pass an existing file with --config")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("token file {path} (token_file in {config}): {message}")]
    Token {
        path: PathBuf,
        config: PathBuf,
        message: String,
    },
}

/// Which systemd manager (and so which D-Bus bus and journal) the agent reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SystemdScope {
    #[default]
    System,
    User,
}

/// An app's name: 1–64 of `[A-Za-z0-9._-]`, starting with a letter or digit, so it is safe in a
/// URL path segment and can never name a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(String);

impl AppName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if s.len() <= 64 && ok_first && ok_rest {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid app name {s:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What runs an app: a systemd unit or a Docker container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    SystemdUnit(String),
    DockerContainer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub name: AppName,
    pub source: AppSource,
    pub env_file: Option<PathBuf>,
    /// Which symlinks `env_file` may be reached through (`env_follow_symlink_within`).
    pub env_links: crate::env_file::Links,
    pub allow_actions: bool,
    /// `[[apps.checks]]`: endpoint checks, in config order.
    pub checks: Vec<crate::checks::config::CheckConfig>,
    /// `expect`: whether a stop nobody asked for through Fleetdeck is a problem.
    pub expect: fleetdeck_proto::Expect,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenSpec>,
    /// Serve HTTPS with these PEM files (`tls_cert`, `tls_key`) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    pub token: Token,
    pub token_file: PathBuf,
    /// A second token accepted beside `token`, while the collector moves to it (a rotation).
    pub next_token: Option<Token>,
    pub next_token_file: Option<PathBuf>,
    pub systemd: SystemdScope,
    pub docker_socket: String,
    pub sample_interval: Duration,
    /// How much history the sample ring keeps (capacity = retention / interval).
    pub sample_retention: Duration,
    pub apps: Vec<AppConfig>,
    /// `[discover]`: apps watched because they match, not because they are listed.
    pub discover: crate::discover::Discover,
}

impl Config {
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name.as_str() == name)
    }

    /// Loads and checks `path`, reading the token from the file it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config = Self::read(path)?;
        let read = |file: &Path| {
            read_token(file).map_err(|message| ConfigError::Token {
                path: file.to_owned(),
                config: path.to_owned(),
                message,
            })
        };
        config.token = read(&config.token_file)?;
        if let Some(next) = &config.next_token_file {
            config.next_token = Some(read(next)?);
        }
        Ok(config)
    }

    /// Loads and checks `path` without reading any token (for `suggest`, which may run before
    /// the agent is installed); relative paths in it are taken from the file's directory.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let docker_host = std::env::var("DOCKER_HOST").ok().filter(|v| !v.is_empty());
        let mut config = Self::parse(&text, docker_host.as_deref()).map_err(|e| e.at(path))?;
        // A relative token_file is relative to the config file, as an operator reading it expects.
        let dir = path.parent().unwrap_or(Path::new("."));
        if config.token_file.is_relative() {
            config.token_file = dir.join(&config.token_file);
        }
        if let Some(next) = &mut config.next_token_file {
            if next.is_relative() {
                *next = dir.join(&*next);
            }
        }
        config.tls = config.tls.map(|tls| tls.relative_to(dir));
        Ok(config)
    }

    /// Parses and validates the TOML text; the token is left empty (see [`Config::load`]).
    pub fn parse(text: &str, docker_host_env: Option<&str>) -> Result<Self, ParseError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ParseError::Toml(toml_error(text, &e)))?;
        raw.validate(docker_host_env).map_err(ParseError::Invalid)
    }
}

/// A TOML error as "line N: message" (with the key of that line when it has one), on one line
/// and without the excerpt of the file that toml's `Display` adds (found by fuzzing: every syntax
/// error quoted the offending line), as the collector reports its own.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let before = &text.as_bytes()[..start];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    // Only a bare key ahead of the error is named, never any value.
    let key = text[line_start..]
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| line_start + k.len() < start)
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    match key {
        Some(key) => format!("line {line}, `{key}`: {message}"),
        None => format!("line {line}: {message}"),
    }
}

/// A config text that did not parse or validate; [`ParseError::at`] names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Toml(String),
    Invalid(String),
}

impl ParseError {
    fn at(self, path: &Path) -> ConfigError {
        match self {
            Self::Toml(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            Self::Invalid(message) => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Toml(m) | Self::Invalid(m) => m,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    token_file: Option<PathBuf>,
    next_token_file: Option<PathBuf>,
    #[serde(default)]
    systemd: SystemdScope,
    docker_socket: Option<String>,
    #[serde(default, with = "humantime_serde::option")]
    sample_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    sample_retention: Option<Duration>,
    #[serde(default)]
    apps: Vec<RawApp>,
    #[serde(default)]
    discover: crate::discover::RawDiscover,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    systemd_unit: Option<String>,
    docker_container: Option<String>,
    env_file: Option<PathBuf>,
    env_follow_symlink_within: Option<PathBuf>,
    #[serde(default)]
    allow_actions: bool,
    #[serde(default)]
    checks: Vec<crate::checks::config::RawCheck>,
    expect: Option<String>,
}

const UNIT_SUFFIXES: &[&str] = &[
    ".service", ".socket", ".timer", ".target", ".mount", ".path", ".scope", ".slice",
];

impl RawConfig {
    fn validate(self, docker_host_env: Option<&str>) -> Result<Config, String> {
        let listen_raw = self
            .listen
            .unwrap_or_else(|| vec!["127.0.0.1:7070".to_owned()]);
        if listen_raw.is_empty() {
            return Err(
                "`listen` is empty: give at least one address, e.g. listen = [\"127.0.0.1:7070\"]"
                    .into(),
            );
        }
        let listen = listen_raw
            .iter()
            .map(|s| ListenSpec::parse(s, DEFAULT_PORT).map_err(|e| format!("`listen`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = TlsFiles::from_config(self.tls_cert, self.tls_key)?;
        let token_file = self.token_file.ok_or(
            "`token_file` is missing: add token_file = \"/etc/fleetdeck/agent.token\" (a file of mode 0600 holding the token)",
        )?;
        let sample_interval = self.sample_interval.unwrap_or(Duration::from_secs(10));
        if sample_interval < Duration::from_secs(1) {
            return Err(format!(
                "`sample_interval` = {:?} is too short: use at least \"1s\"",
                sample_interval
            ));
        }
        let sample_retention = self
            .sample_retention
            .unwrap_or(Duration::from_secs(24 * 3600));
        if sample_retention < sample_interval
            || sample_retention > Duration::from_secs(31 * 24 * 3600)
        {
            return Err(format!(
                "`sample_retention` = {sample_retention:?} must be between sample_interval and 31 days (default \"24h\")"
            ));
        }
        let docker_socket = self
            .docker_socket
            .unwrap_or_else(|| default_docker_socket(docker_host_env));
        if !(docker_socket.starts_with("unix://")
            || docker_socket.starts_with("tcp://")
            || docker_socket.starts_with("http://"))
        {
            return Err(format!(
                "`docker_socket` = {docker_socket:?}: use unix:///path/to/docker.sock, tcp://host:port or http://host:port"
            ));
        }

        let mut apps: Vec<AppConfig> = Vec::with_capacity(self.apps.len());
        for (i, app) in self.apps.into_iter().enumerate() {
            let at = format!("[[apps]] #{} (name = {:?})", i + 1, app.name);
            let name = AppName::parse(&app.name).map_err(|e| format!("{at}: {e}"))?;
            if apps.iter().any(|a| a.name == name) {
                return Err(format!(
                    "{at}: duplicate app name {:?}: each app needs its own name",
                    app.name
                ));
            }
            let source = match (app.systemd_unit, app.docker_container) {
                (Some(unit), None) => {
                    if !UNIT_SUFFIXES.iter().any(|s| unit.ends_with(s)) || unit.contains('/') {
                        return Err(format!(
                            "{at}: systemd_unit = {unit:?} is not a unit name: use the full name, e.g. \"{unit}.service\""
                        ));
                    }
                    AppSource::SystemdUnit(unit)
                }
                (None, Some(container)) => {
                    let valid = !container.is_empty()
                        && container.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                    if !valid {
                        return Err(format!(
                            "{at}: docker_container = {container:?} is not a container name or id (letters, digits, '.', '_', '-')"
                        ));
                    }
                    AppSource::DockerContainer(container)
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{at}: has both systemd_unit and docker_container: keep the one that runs this app"
                    ))
                }
                (None, None) => {
                    return Err(format!(
                        "{at}: needs systemd_unit = \"NAME.service\" or docker_container = \"NAME\""
                    ))
                }
            };
            if let Some(env) = &app.env_file {
                if !is_plain_absolute(env) {
                    return Err(format!(
                        "{at}: env_file = {env:?} must be an absolute path without '.' or '..'"
                    ));
                }
            }
            let env_links = match (&app.env_file, app.env_follow_symlink_within) {
                (_, None) => crate::env_file::Links::Refused,
                (None, Some(_)) => {
                    return Err(format!(
                        "{at}: env_follow_symlink_within is set but env_file is not: add env_file, or remove env_follow_symlink_within"
                    ))
                }
                (Some(_), Some(dir)) => {
                    if !is_plain_absolute(&dir) || dir == Path::new("/") {
                        return Err(format!(
                            "{at}: env_follow_symlink_within = {dir:?} must be an absolute directory other than / and without '.' or '..'"
                        ));
                    }
                    crate::env_file::Links::Within(dir)
                }
            };
            let checks = crate::checks::config::validate(&at, app.checks)?;
            let expect = match app.expect.as_deref() {
                None | Some("running") => fleetdeck_proto::Expect::Running,
                Some("any") => fleetdeck_proto::Expect::Any,
                Some(other) => {
                    return Err(format!(
                        "{at}: expect = {other:?} is not an expectation: use \"running\" (the default: a stop nobody asked for is a problem) or \"any\" (a batch job)"
                    ))
                }
            };
            apps.push(AppConfig {
                name,
                source,
                env_file: app.env_file,
                env_links,
                allow_actions: app.allow_actions,
                checks,
                expect,
            });
        }

        if self.next_token_file.as_ref() == Some(&token_file) {
            return Err("`next_token_file` is the same file as `token_file`: a rotation needs the new token in a file of its own".into());
        }
        let discover = self.discover.validate()?;
        Ok(Config {
            listen,
            tls,
            token: Token::new(String::new()),
            token_file,
            next_token: None,
            next_token_file: self.next_token_file,
            discover,
            systemd: self.systemd,
            docker_socket,
            sample_interval,
            sample_retention,
            apps,
        })
    }
}

/// The Docker socket when agent.toml names none: `$DOCKER_HOST`, else Docker's own.
pub fn default_docker_socket(docker_host_env: Option<&str>) -> String {
    docker_host_env.map_or_else(|| DEFAULT_DOCKER_SOCKET.to_owned(), str::to_owned)
}

/// An absolute path whose every component is a name: no `..`, which the agent's component by
/// component walk of an env file's path does not take (a `.` is dropped by `components`).
fn is_plain_absolute(path: &Path) -> bool {
    use std::path::Component;
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, None).map_err(|e| e.message().to_owned())
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("config should be refused")
    }

    const BASE: &str = "token_file = \"/tmp/t\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(BASE).expect("valid");
        assert_eq!(
            c.listen,
            vec![ListenSpec::parse("127.0.0.1:7070", DEFAULT_PORT).expect("valid")]
        );
        assert_eq!(c.systemd, SystemdScope::System);
        assert_eq!(c.docker_socket, DEFAULT_DOCKER_SOCKET);
        assert_eq!(c.sample_interval, Duration::from_secs(10));
        assert!(c.apps.is_empty());
        assert_eq!(c.tls, None);
    }

    #[test]
    fn tls_needs_both_files() {
        let c = parse(&format!(
            "{BASE}tls_cert = \"/etc/t.crt\"\ntls_key = \"/etc/t.key\"\n"
        ))
        .expect("valid");
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/etc/t.crt".into(),
                key: "/etc/t.key".into()
            })
        );
        let e = err(&format!("{BASE}tls_cert = \"/etc/t.crt\"\n"));
        assert!(
            e.contains("`tls_key` is not") && e.contains("add tls_key"),
            "{e}"
        );
        let e = err(&format!("{BASE}tls_key = \"/etc/t.key\"\n"));
        assert!(e.contains("`tls_cert` is not"), "{e}");
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"
listen = ["127.0.0.1:7070", "tailscale"]
token_file = "/etc/fleetdeck/agent.token"
systemd = "user"
docker_socket = "unix:///run/podman.sock"
sample_interval = "5s"
[[apps]]
name = "myspendo"
systemd_unit = "myspendo.service"
env_file = "/srv/myspendo/.env"
env_follow_symlink_within = "/srv/myspendo/shared"
allow_actions = true
[[apps]]
name = "weather"
docker_container = "weather"
expect = "any"
"#,
        )
        .expect("valid");
        assert_eq!(c.apps[0].expect, fleetdeck_proto::Expect::Running);
        assert_eq!(c.apps[1].expect, fleetdeck_proto::Expect::Any);
        assert_eq!(c.systemd, SystemdScope::User);
        assert_eq!(c.sample_interval, Duration::from_secs(5));
        assert_eq!(c.apps.len(), 2);
        assert_eq!(
            c.apps[0].source,
            AppSource::SystemdUnit("myspendo.service".into())
        );
        assert!(c.apps[0].allow_actions);
        assert_eq!(
            c.apps[0].env_links,
            crate::env_file::Links::Within("/srv/myspendo/shared".into())
        );
        assert_eq!(
            c.apps[1].source,
            AppSource::DockerContainer("weather".into())
        );
        assert!(!c.apps[1].allow_actions);
    }

    #[test]
    fn docker_host_env_is_the_default_socket() {
        let c = Config::parse(BASE, Some("unix:///tmp/p.sock")).expect("valid");
        assert_eq!(c.docker_socket, "unix:///tmp/p.sock");
        let c = Config::parse(
            &format!("{BASE}docker_socket = \"unix:///x\""),
            Some("unix:///tmp/p.sock"),
        )
        .expect("valid");
        assert_eq!(c.docker_socket, "unix:///x");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let cases: &[(&str, &[&str])] = &[
            ("token_file = \"/t\"\nlisten_on = []", &["unknown field `listen_on`", "line 2"]),
            ("", &["`token_file` is missing"]),
            ("token_file = \"/t\"\nsystemd = \"session\"", &["unknown variant `session`"]),
            ("token_file = \"/t\"\nsample_interval = \"soon\"", &["sample_interval"]),
            ("token_file = \"/t\"\nsample_interval = \"10ms\"", &["too short"]),
            ("token_file = \"/t\"\nsample_retention = \"5s\"", &["`sample_retention`", "between"]),
            ("token_file = \"/t\"\nlisten = []", &["`listen` is empty"]),
            ("token_file = \"/t\"\nlisten = [\"nowhere\"]", &["`listen`", "nowhere"]),
            ("token_file = \"/t\"\ndocker_socket = \"/var/run/docker.sock\"", &["unix:///"]),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\ncolour = \"red\"",
                &["unknown field `colour`", "line 5"],
            ),
            ("token_file = \"/t\"\n[[apps]]\nname = \"a\"", &["#1", "needs systemd_unit"]),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\ndocker_container = \"a\"",
                &["both systemd_unit and docker_container"],
            ),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\n[[apps]]\nname = \"a\"\ndocker_container = \"b\"",
                &["#2", "duplicate app name \"a\""],
            ),
            ("token_file = \"/t\"\n[[apps]]\nname = \"../etc\"\nsystemd_unit = \"a.service\"", &["invalid app name \"../etc\""]),
            ("token_file = \"/t\"\n[[apps]]\nname = \"\"\nsystemd_unit = \"a.service\"", &["invalid app name \"\""]),
            ("token_file = \"/t\"\n[[apps]]\nname = \"a b\"\nsystemd_unit = \"a.service\"", &["invalid app name"]),
            ("token_file = \"/t\"\n[[apps]]\nname = \"job\"\nsystemd_unit = \"a.service\"\nexpect = \"sometimes\"", &["(name = \"job\")", "expect = \"sometimes\"", "\"any\""]),
            ("token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"myspendo\"", &["\"myspendo.service\""]),
            ("token_file = \"/t\"\n[[apps]]\nname = \"a\"\ndocker_container = \"a/b\"", &["not a container name"]),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\nenv_file = \"rel/.env\"",
                &["must be an absolute path"],
            ),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\nenv_file = \"/srv/a/../b/.env\"",
                &["without '.' or '..'"],
            ),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\nenv_follow_symlink_within = \"/srv/a\"",
                &["env_follow_symlink_within is set but env_file is not"],
            ),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\nenv_file = \"/srv/a/.env\"\nenv_follow_symlink_within = \"shared\"",
                &["env_follow_symlink_within = \"shared\" must be an absolute directory"],
            ),
            (
                "token_file = \"/t\"\n[[apps]]\nname = \"a\"\nsystemd_unit = \"a.service\"\nenv_file = \"/srv/a/.env\"\nenv_follow_symlink_within = \"/\"",
                &["other than /"],
            ),
        ];
        for (text, wants) in cases {
            let e = err(text);
            for want in *wants {
                assert!(
                    e.contains(want),
                    "config {text:?}\n  error {e:?}\n  lacks {want:?}"
                );
            }
        }
    }

    // Found by fuzzing (fuzz/, config): toml's error display quoted the offending line.
    #[test]
    fn errors_are_one_line_without_the_file() {
        assert_eq!(
            err("token_file = \"/t\"\nsample_interval = \"soon\""),
            "line 2, `sample_interval`: invalid value: string \"soon\", expected a duration"
        );
        for text in [
            "token_file = \"/t\"\n100.101.1.2\n",
            "token_file = \"/t\"\nlisten = [\"127.0.0.1:1\"\nsecret_looking = 1",
            "token_file = \"/t\"\nsample_interval = 5\n",
            "token_file = \"/t\"\n\u{e9}t\u{e9} = \"x\"",
        ] {
            let e = err(text);
            assert!(e.starts_with("line "), "{e}");
            assert!(!e.contains('\n'), "{e}");
            assert!(
                !e.contains("100.101.1.2") && !e.contains("secret_looking"),
                "{e}"
            );
        }
    }

    #[test]
    fn app_names() {
        for ok in ["a", "my-app", "web_1", "api.v2", "A9"] {
            assert!(AppName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(AppName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_debug_hides_the_secret() {
        let t = Token::new("s3cret-value-123456");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}

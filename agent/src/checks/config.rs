//! `[[apps.checks]]` in agent.toml: what each endpoint check reaches and what it expects,
//! validated at start so a bad check fails the agent with one line naming app, check and field.

use std::path::PathBuf;
use std::time::Duration;

use fleetdeck_proto::CheckKind;
use serde::Deserialize;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Where a check connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An `http://` or `https://` URL (kept whole; never logged, it may hold secrets).
    Http {
        url: String,
        tls: bool,
        host: String,
        port: u16,
        /// The path and query sent in the request line.
        path: String,
    },
    /// `host:port`.
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub name: String,
    pub target: Target,
    /// `None`: any 2xx or 3xx passes.
    pub expect_status: Option<u16>,
    pub expect_body: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust instead of the built-in roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl CheckConfig {
    pub fn kind(&self) -> CheckKind {
        match &self.target {
            Target::Http { tls: true, .. } => CheckKind::Https,
            Target::Http { .. } => CheckKind::Http,
            Target::Tcp { .. } => CheckKind::Tcp,
        }
    }

    /// What the snapshot shows as the check's target: the URL without userinfo or query, or
    /// `host:port`.
    pub fn target_shown(&self) -> String {
        match &self.target {
            Target::Http { url, .. } => {
                let url = url.split(['?', '#']).next().unwrap_or(url);
                match url.split_once("://") {
                    Some((scheme, rest)) => {
                        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                        format!("{scheme}://{host}{path}")
                    }
                    None => url.to_owned(),
                }
            }
            Target::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    name: String,
    http: Option<String>,
    tcp: Option<String>,
    expect_status: Option<u16>,
    expect_body: Option<String>,
    #[serde(default, with = "humantime_serde::option")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    timeout: Option<Duration>,
    ca_file: Option<PathBuf>,
}

/// Validates an app's checks; `app_at` names the app in errors (`[[apps]] #1 (name = "web")`).
pub fn validate(app_at: &str, raw: Vec<RawCheck>) -> Result<Vec<CheckConfig>, String> {
    let mut checks: Vec<CheckConfig> = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("{app_at}, [[apps.checks]] #{} (name = {:?})", i + 1, c.name);
        let name_ok = !c.name.is_empty()
            && c.name.len() <= 64
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        if !name_ok {
            return Err(format!(
                "{at}: name: use 1-64 letters, digits, '.', '_' or '-'"
            ));
        }
        if checks.iter().any(|k| k.name == c.name) {
            return Err(format!(
                "{at}: name: duplicate check name in this app: give each check its own name"
            ));
        }
        let target = match (c.http, c.tcp) {
            (Some(url), None) => parse_url(&url).map_err(|e| format!("{at}: http: {e}"))?,
            (None, Some(addr)) => {
                let (host, port) = split_host_port(&addr).map_err(|e| format!("{at}: tcp: {e}"))?;
                Target::Tcp { host, port }
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{at}: has both http and tcp: keep one (one check reaches one endpoint)"
                ))
            }
            (None, None) => {
                return Err(format!(
                "{at}: needs http = \"http://HOST:PORT/PATH\" (or https://) or tcp = \"HOST:PORT\""
            ))
            }
        };
        let is_tcp = matches!(target, Target::Tcp { .. });
        if is_tcp && (c.expect_status.is_some() || c.expect_body.is_some()) {
            return Err(format!(
                "{at}: expect_status and expect_body apply to http checks only: remove them from this tcp check"
            ));
        }
        if is_tcp && c.ca_file.is_some() {
            return Err(format!(
                "{at}: ca_file applies to https checks only: remove it"
            ));
        }
        if let Some(status) = c.expect_status {
            if !(100..=599).contains(&status) {
                return Err(format!(
                    "{at}: expect_status = {status} is not an HTTP status: use 100-599"
                ));
            }
        }
        if c.expect_body.as_deref() == Some("") {
            return Err(format!(
                "{at}: expect_body is empty: give the text the body must contain, or remove it"
            ));
        }
        if let (Some(ca), Target::Http { tls: false, .. }) = (&c.ca_file, &target) {
            return Err(format!(
                "{at}: ca_file = {ca:?} is set but the check is plain http: use an https:// URL or remove ca_file"
            ));
        }
        let interval = c.interval.unwrap_or(DEFAULT_INTERVAL);
        if interval < MIN_INTERVAL {
            return Err(format!(
                "{at}: interval = {}: the shortest is 1s",
                humantime::format_duration(interval)
            ));
        }
        let timeout = c.timeout.unwrap_or(DEFAULT_TIMEOUT.min(interval));
        if timeout.is_zero() || (timeout >= interval && c.timeout.is_some()) {
            return Err(format!(
                "{at}: timeout = {}: it must be above 0 and shorter than interval ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ));
        }
        // A default timeout never reaches the interval: cut it a little below.
        let timeout = if timeout >= interval {
            interval.mul_f64(0.8)
        } else {
            timeout
        };
        checks.push(CheckConfig {
            name: c.name,
            target,
            expect_status: c.expect_status,
            expect_body: c.expect_body,
            interval,
            timeout,
            ca_file: c.ca_file,
        });
    }
    Ok(checks)
}

/// Splits an `http://` or `https://` URL into what a request needs; the URL itself never appears
/// in an error (it may hold a password or a token).
fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err("must start with http:// or https://".into());
    };
    let rest = rest.split('#').next().unwrap_or(rest);
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        // Never sent: a check against a protected endpoint would fail with a 401 nobody
        // explains. Say so at start instead.
        return Err(
            "holds a user or password (USER:PASS@HOST), which checks do not send: \
             check an endpoint that needs no credentials (e.g. a /healthz path)"
                .into(),
        );
    }
    if authority.is_empty() {
        return Err("has no host: write http://HOST[:PORT]/PATH".into());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if authority.ends_with(']') || !authority.contains(':') {
        (authority.to_owned(), default_port)
    } else {
        split_host_port(authority)?
    };
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the path holds spaces or control characters: percent-encode them".into());
    }
    Ok(Target::Http {
        url: url.to_owned(),
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        path,
    })
}

fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} has no port: write HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{addr:?} has no host: write HOST:PORT"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{addr:?}: the port must be a number 1-65535"))?;
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(checks: &str) -> Result<Vec<CheckConfig>, String> {
        let text = format!(
            "token_file = \"/t\"\n[[apps]]\nname = \"web\"\nsystemd_unit = \"web.service\"\n{checks}"
        );
        Config::parse(&text, None)
            .map(|c| c.apps[0].checks.clone())
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn defaults_and_targets() {
        let c = parse(
            "[[apps.checks]]\nname = \"health\"\nhttp = \"https://example.com/healthz?token=x\"\n\
             [[apps.checks]]\nname = \"db\"\ntcp = \"127.0.0.1:5432\"\ninterval = \"2s\"\n",
        )
        .expect("valid");
        assert_eq!(c[0].interval, Duration::from_secs(30));
        assert_eq!(c[0].timeout, Duration::from_secs(5));
        assert_eq!(c[0].expect_status, None);
        assert_eq!(c[0].kind(), CheckKind::Https);
        assert_eq!(
            c[0].target_shown(),
            "https://example.com/healthz",
            "no secrets shown"
        );
        let Target::Http {
            host, port, path, ..
        } = &c[0].target
        else {
            panic!("http target");
        };
        assert_eq!(
            (host.as_str(), *port, path.as_str()),
            ("example.com", 443, "/healthz?token=x")
        );
        assert_eq!(
            c[1].target,
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 5432
            }
        );
        // A default timeout stays below a short interval.
        assert!(c[1].timeout < c[1].interval);
    }

    #[test]
    fn refusals_name_app_check_and_field() {
        let check = |body: &str| format!("[[apps.checks]]\nname = \"h\"\n{body}");
        let cases: Vec<(String, &[&str])> = vec![
            (check(""), &["needs http", "tcp"]),
            (
                check("http = \"http://a/\"\ntcp = \"a:1\""),
                &["both http and tcp"],
            ),
            (
                check("http = \"ftp://a/\""),
                &["http: must start with http://"],
            ),
            (check("http = \"http:///x\""), &["http: has no host"]),
            (check("http = \"http://a:99999/\""), &["http:", "port"]),
            (check("tcp = \"localhost\""), &["tcp:", "has no port"]),
            (check("tcp = \"a:0\""), &["tcp:", "1-65535"]),
            (
                check("tcp = \"a:1\"\nexpect_status = 200"),
                &["http checks only"],
            ),
            (
                check("http = \"http://a/\"\nexpect_status = 999"),
                &["expect_status = 999"],
            ),
            (
                check("http = \"http://a/\"\nexpect_body = \"\""),
                &["expect_body is empty"],
            ),
            (
                check("http = \"http://a/\"\nca_file = \"/ca.pem\""),
                &["ca_file", "plain http"],
            ),
            (
                check("http = \"http://a/\"\ninterval = \"500ms\""),
                &["interval = 500ms", "shortest is 1s"],
            ),
            (
                check("http = \"http://a/\"\ninterval = \"5s\"\ntimeout = \"5s\""),
                &["timeout = 5s", "shorter than interval"],
            ),
            (
                check("http = \"http://a/\"\ntimeout = \"0s\""),
                &["timeout = 0s"],
            ),
            (
                check("http = \"http://a/\"\ncolour = 1"),
                &["unknown field `colour`"],
            ),
            (
                "[[apps.checks]]\nname = \"bad name\"\ntcp = \"a:1\"".into(),
                &["name: use 1-64"],
            ),
            (
                format!("{}\ntcp = \"a:1\"\n{}\ntcp = \"a:2\"", check(""), check("")),
                &["#2", "duplicate check name"],
            ),
        ];
        for (text, needles) in cases {
            let e = parse(&text).expect_err(&text);
            assert!(!e.contains('\n'), "one line: {e}");
            for needle in needles {
                assert!(e.contains(needle), "{text:?}: {e:?} lacks {needle:?}");
            }
            if !e.contains("unknown field") {
                assert!(
                    e.contains("name = \"web\"") && e.contains("[[apps.checks]]"),
                    "{e}"
                );
            }
        }
        // The URL, which may hold a password, never appears in an error.
        let e = parse(&check("http = \"http://u:secret@a:0x/\"")).expect_err("bad port");
        assert!(!e.contains("secret"), "{e}");
        // Credentials in the URL would never be sent: refused, saying why.
        let e = parse(&check("http = \"https://u:secret@a/healthz\"")).expect_err("userinfo");
        assert!(e.contains("USER:PASS@HOST") && !e.contains("secret"), "{e}");
    }
}

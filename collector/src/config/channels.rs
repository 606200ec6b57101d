//! `collector.toml`'s alerting parts: `[[channels]]` (webhooks and SMTP, their password and CA
//! files read relative to the config), `[[routes]]` resolved over the channels, and
//! `[[maintenance]]` windows; each checked with an error that names the entry and the fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{default_format, valid_name};
use crate::alerting::maintenance::Maintenance;
use crate::alerting::notify::{Target, Webhook, WebhookFormat};
use crate::alerting::route::{Channel, Route};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    name: String,
    /// `webhook` (the default) or `smtp`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    /// webhook
    url: Option<String>,
    #[serde(default = "default_format")]
    format: WebhookFormat,
    /// smtp
    host: Option<String>,
    port: Option<u16>,
    /// `starttls` (default) or `tls`.
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    ca_file: Option<PathBuf>,
    /// Read from `password_file` and `ca_file` (relative to the config file) before checking.
    #[serde(skip)]
    password: Option<Result<String, String>>,
    #[serde(skip)]
    ca_pem: Option<Result<Vec<u8>, String>>,
}

impl RawChannel {
    /// Reads the files it names, relative to `dir`; what goes wrong is reported when checked.
    pub(super) fn read_files(&mut self, dir: &Path) {
        let resolve = |p: &Path| {
            if p.is_relative() {
                dir.join(p)
            } else {
                p.to_owned()
            }
        };
        if let Some(file) = &self.password_file {
            self.password = Some(read_password(&resolve(file)));
        }
        if let Some(file) = &self.ca_file {
            let path = resolve(file);
            self.ca_pem = Some(
                std::fs::read(&path)
                    .map_err(|e| format!("ca_file {} cannot be read ({e})", path.display())),
            );
        }
    }

    fn smtp(self, at: &str) -> Result<crate::alerting::notify::email::Smtp, String> {
        use crate::alerting::notify::email::{Smtp, SmtpTls};
        let host = self
            .host
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{at}: an smtp channel needs host = \"smtp.example.com\""))?;
        let tls = match self.tls.as_deref() {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some(other) => {
                return Err(format!(
                    "{at}: tls = {other:?}; use \"starttls\" (port 587) or \"tls\" (port 465): mail is never sent in the clear"
                ))
            }
        };
        let port = self.port.unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        });
        let mailbox = |field: &str, text: &str| {
            text.parse::<lettre::message::Mailbox>().map_err(|e| {
                format!("{at}: {field} {text:?} is not an address ({e}); write e.g. \"Fleetdeck <alerts@example.com>\"")
            })
        };
        let from = mailbox(
            "from",
            self.from.as_deref().ok_or_else(|| {
                format!("{at}: an smtp channel needs from = \"alerts@example.com\"")
            })?,
        )?;
        if self.to.is_empty() {
            return Err(format!(
                "{at}: an smtp channel needs to = [\"ops@example.com\"]"
            ));
        }
        let to = self
            .to
            .iter()
            .map(|t| mailbox("to", t))
            .collect::<Result<Vec<_>, _>>()?;
        let password = match (self.password, &self.username) {
            (Some(Ok(p)), Some(_)) => Some(p),
            (Some(Err(e)), _) => return Err(format!("{at}: password_file {e}")),
            (None, Some(_)) => {
                return Err(format!(
                    "{at}: username needs password_file = \"smtp.password\" (a file of mode 0600 holding the password)"
                ))
            }
            (Some(Ok(_)), None) => {
                return Err(format!("{at}: password_file needs username"))
            }
            (None, None) => None,
        };
        let ca_pem = self.ca_pem.transpose().map_err(|e| format!("{at}: {e}"))?;
        if self.url.is_some() {
            return Err(format!(
                "{at}: url is for webhook channels; an smtp channel has host and port"
            ));
        }
        Ok(Smtp {
            host,
            port,
            tls,
            username: self.username,
            password,
            from,
            to,
            ca_pem,
        })
    }
}

/// A password file: readable by its owner only, its text trimmed, not empty.
pub(crate) fn read_password(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by group or others (mode {mode:04o}); run chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(format!(
            "{} is empty: write the password into it",
            path.display()
        ));
    }
    Ok(password.to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    name: String,
    hosts: Option<String>,
    apps: Option<String>,
    #[serde(default)]
    days: Vec<String>,
    start: String,
    #[serde(with = "humantime_serde")]
    duration: Duration,
    timezone: Option<String>,
    reason: Option<String>,
}

impl RawMaintenance {
    pub(super) fn check(self, i: usize) -> Result<Maintenance, String> {
        use crate::alerting::maintenance::{clock, weekday};
        let at = format!("[[maintenance]] #{} ({})", i + 1, self.name);
        if !valid_name(&self.name) {
            return Err(format!(
                "{at}: name must be 1-64 letters, digits, '.', '_' or '-'"
            ));
        }
        let hosts = self.hosts.unwrap_or_else(|| "*".to_owned());
        let apps = self.apps;
        let reason = self
            .reason
            .unwrap_or_else(|| "scheduled maintenance".to_owned());
        // The same rules as a silence made through the API.
        crate::alerting::silence::check(
            &fleetdeck_proto::NewSilence {
                hosts: Some(hosts.clone()),
                apps: apps.clone(),
                kind: None,
                duration: Some("1h".to_owned()),
                until_unix_ms: None,
                reason: reason.clone(),
            },
            0,
        )
        .map_err(|e| format!("{at}: {e}"))?;
        let days = self
            .days
            .iter()
            .map(|d| {
                weekday(d).ok_or_else(|| {
                    format!("{at}: days holds {d:?}; use mon, tue, wed, thu, fri, sat, sun")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let start = clock(&self.start).ok_or_else(|| {
            format!(
                "{at}: start = {:?}; write the local time as \"HH:MM\" (24-hour)",
                self.start
            )
        })?;
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return Err(format!(
                "{at}: duration must be more than 0 and at most \"24h\""
            ));
        }
        let zone = self.timezone.unwrap_or_else(|| "UTC".to_owned());
        let timezone = jiff::tz::TimeZone::get(&zone).map_err(|e| {
            format!("{at}: timezone {zone:?} is not one this host knows ({e}); use an IANA name such as \"Europe/Berlin\"")
        })?;
        Ok(Maintenance {
            name: self.name,
            hosts,
            apps,
            days,
            start,
            duration: self.duration,
            timezone,
            reason,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    severity: Option<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(rename = "continue", default)]
    continue_: bool,
    #[serde(default, with = "humantime_serde::option")]
    repeat_every: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    escalate_after: Option<Duration>,
    #[serde(default)]
    escalate_to: Vec<String>,
}

/// Names `[[channels]]` and `[[webhooks]]` (as `webhook-N`) and resolves `[[routes]]` over them.
pub(super) fn channels_and_routes(
    channels: Vec<RawChannel>,
    webhooks: &[Webhook],
    routes: Vec<RawRoute>,
) -> Result<(Vec<Channel>, Vec<Route>), String> {
    let mut out: Vec<Channel> = Vec::new();
    for (i, c) in channels.into_iter().enumerate() {
        let at = format!("[[channels]] #{}", i + 1);
        if !valid_name(&c.name) {
            return Err(format!(
                "{at}: name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            ));
        }
        if out.iter().any(|o| o.name == c.name) {
            return Err(format!(
                "{at}: a channel named {:?} is defined twice",
                c.name
            ));
        }
        let name = c.name.clone();
        let at = format!("{at} ({name})");
        let target = match c.kind.as_deref() {
            None | Some("webhook") => {
                let url = c.url.ok_or_else(|| {
                    format!("{at}: a webhook channel needs url = \"https://...\"")
                })?;
                Target::Webhook(Webhook::new(url, c.format).map_err(|e| format!("{at}: {e}"))?)
            }
            Some("smtp") => Target::Smtp(c.smtp(&at)?),
            Some(other) => {
                return Err(format!(
                "{at}: type {other:?} is not one Fleetdeck sends to; use \"webhook\" or \"smtp\""
            ))
            }
        };
        out.push(Channel { name, target });
    }
    for (i, hook) in webhooks.iter().enumerate() {
        let name = format!("webhook-{}", i + 1);
        if out.iter().any(|o| o.name == name) {
            return Err(format!(
                "[[channels]]: the name {name:?} is taken by [[webhooks]] #{}; rename the channel",
                i + 1
            ));
        }
        out.push(Channel {
            name,
            target: Target::Webhook(hook.clone()),
        });
    }
    let names: Vec<String> = out.iter().map(|c| c.name.clone()).collect();
    let index = |at: &str, field: &str, wanted: &[String]| -> Result<Vec<usize>, String> {
        wanted
            .iter()
            .map(|n| {
                names.iter().position(|c| c == n).ok_or_else(|| {
                    format!(
                        "{at}: {field} names {n:?}, which is no channel; the channels are: {}",
                        if names.is_empty() {
                            "(none)".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )
                })
            })
            .collect()
    };
    let mut resolved = Vec::new();
    for (i, r) in routes.into_iter().enumerate() {
        let at = format!("[[routes]] #{}", i + 1);
        let severity = match r.severity.as_deref() {
            None => None,
            Some("warning") => Some(fleetdeck_proto::Severity::Warning),
            Some("critical") => Some(fleetdeck_proto::Severity::Critical),
            Some(other) => {
                return Err(format!(
                    "{at}: severity {other:?} must be \"warning\" or \"critical\""
                ))
            }
        };
        if let Some(k) = r
            .kinds
            .iter()
            .find(|k| !crate::alerting::silence::KINDS.contains(&k.as_str()))
        {
            return Err(format!(
                "{at}: kinds holds {k:?}; use {}",
                crate::alerting::silence::KINDS.join(", ")
            ));
        }
        if r.channels.is_empty() {
            return Err(format!(
                "{at}: channels is empty; name the channels it sends to"
            ));
        }
        let channels = index(&at, "channels", &r.channels)?;
        let escalate_to = index(&at, "escalate_to", &r.escalate_to)?;
        if r.escalate_after.is_some() == escalate_to.is_empty() {
            return Err(format!(
                "{at}: escalate_after and escalate_to go together (e.g. escalate_after = \"30m\", escalate_to = [\"oncall\"])"
            ));
        }
        for d in [r.repeat_every, r.escalate_after].into_iter().flatten() {
            if d < Duration::from_secs(1) {
                return Err(format!(
                    "{at}: repeat_every and escalate_after are at least \"1s\""
                ));
            }
        }
        resolved.push(Route {
            severity,
            kinds: r.kinds,
            hosts: r.hosts,
            apps: r.apps,
            channels,
            continue_: r.continue_,
            repeat_every: r.repeat_every,
            escalate_after: r.escalate_after,
            escalate_to,
        });
    }
    Ok((out, resolved))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::Target;
    use fleetdeck_daemon::secret::Token;
    use std::time::Duration;

    fn parse(text: &str, agents: usize) -> Result<Config, String> {
        Config::parse(text, vec![Token::new("t".repeat(20)); agents])
    }

    const BASE: &str = "database = \"c.db\"\n";

    #[test]
    fn channels_and_routes_keep_old_webhooks_and_name_what_is_wrong() {
        let c = parse(
            &format!(
                "{BASE}[[webhooks]]\nurl = \"https://old.example/hook\"\n\
                 [[channels]]\nname = \"pager\"\nurl = \"https://pager.example/x\"\nformat = \"ntfy\"\n\
                 [[routes]]\nseverity = \"critical\"\nhosts = [\"db-*\"]\nchannels = [\"pager\", \"webhook-1\"]\n\
                 repeat_every = \"4h\"\nescalate_after = \"30m\"\nescalate_to = [\"webhook-1\"]\ncontinue = true\n"
            ),
            0,
        )
        .expect("valid");
        let names: Vec<&str> = c.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pager", "webhook-1"]);
        assert_eq!(c.routes.len(), 1);
        let r = &c.routes[0];
        assert_eq!(
            (r.channels.clone(), r.escalate_to.clone(), r.continue_),
            (vec![0, 1], vec![1], true)
        );
        assert_eq!(r.repeat_every, Some(Duration::from_secs(4 * 3600)));
        let channel = |extra: &str| {
            format!("{BASE}[[channels]]\nname = \"a\"\nurl = \"https://a.example/x\"\n{extra}")
        };
        for (text, want) in [
            (
                channel("[[channels]]\nname = \"a\"\nurl = \"https://b.example\"\n"),
                "defined twice",
            ),
            (
                channel("[[routes]]\nchannels = [\"b\"]\n"),
                "names \"b\", which is no channel",
            ),
            (channel("[[routes]]\nchannels = []\n"), "channels is empty"),
            (
                channel("[[routes]]\nchannels = [\"a\"]\nseverity = \"info\"\n"),
                "severity",
            ),
            (
                channel("[[routes]]\nchannels = [\"a\"]\nkinds = [\"crash\"]\n"),
                "kinds holds",
            ),
            (
                channel("[[routes]]\nchannels = [\"a\"]\nescalate_after = \"1h\"\n"),
                "go together",
            ),
            (
                format!(
                    "{BASE}[[channels]]\nname = \"a\"\ntype = \"pigeon\"\nurl = \"https://a\"\n"
                ),
                "\"pigeon\"",
            ),
            (
                format!("{BASE}[[channels]]\nname = \"a b\"\nurl = \"https://a\"\n"),
                "name must be",
            ),
        ] {
            let err = parse(&text, 0).expect_err(&text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn smtp_channels_need_their_parts_and_a_private_password_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("smtp.password");
        std::fs::write(&password, "s3cret\n").expect("write");
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let smtp = |extra: &str| {
            format!(
                "{BASE}[[channels]]\nname = \"mail\"\ntype = \"smtp\"\nhost = \"smtp.example.com\"\n\
                 from = \"Fleetdeck <a@example.com>\"\nto = [\"ops@example.com\"]\n{extra}"
            )
        };
        let with_login = format!(
            "username = \"a\"\npassword_file = \"{}\"\n",
            password.display()
        );
        let c = parse(&smtp(&with_login), 0).expect("valid");
        match &c.channels[0].target {
            Target::Smtp(m) => {
                assert_eq!((m.port, m.password.as_deref()), (587, Some("s3cret")));
                assert!(!format!("{m:?}").contains("s3cret"));
            }
            other => panic!("{other:?}"),
        }
        let tls = parse(&smtp("tls = \"tls\"\n"), 0).expect("valid");
        assert_eq!(
            tls.channels[0].info().target,
            "smtp://smtp.example.com:465 (tls)"
        );
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        for (extra, want) in [
            (with_login.clone(), "chmod 600"),
            ("tls = \"none\"\n".to_owned(), "never sent in the clear"),
            (
                "username = \"a\"\n".to_owned(),
                "username needs password_file",
            ),
            (
                "url = \"https://x\"\n".to_owned(),
                "url is for webhook channels",
            ),
        ] {
            let err = parse(&smtp(&extra), 0).expect_err(&extra);
            assert!(err.contains(want), "{extra:?}: {err}");
        }
        let no_to = format!(
            "{BASE}[[channels]]\nname = \"mail\"\ntype = \"smtp\"\nhost = \"h\"\nfrom = \"a@example.com\"\n"
        );
        assert!(parse(&no_to, 0).expect_err("no to").contains("needs to ="));
        let bad_from = smtp("").replace("Fleetdeck <a@example.com>", "not an address");
        assert!(parse(&bad_from, 0)
            .expect_err("from")
            .contains("is not an address"));
    }

    #[test]
    fn maintenance_windows_are_checked() {
        let m = |extra: &str| {
            format!("{BASE}[[maintenance]]\nname = \"w\"\nstart = \"02:00\"\nduration = \"2h\"\n{extra}")
        };
        let c = parse(
            &m("days = [\"sat\", \"sun\"]\ntimezone = \"Europe/Berlin\"\n"),
            0,
        )
        .expect("valid");
        assert_eq!(c.maintenance[0].days.len(), 2);
        assert_eq!(c.maintenance[0].hosts, "*");
        for (extra, want) in [
            ("days = [\"someday\"]\n", "days holds"),
            ("timezone = \"Mars/Olympus\"\n", "timezone"),
            ("hosts = \"db/1\"\n", "hosts must be a glob"),
        ] {
            let err = parse(&m(extra), 0).expect_err(extra);
            assert!(err.contains(want), "{extra:?}: {err}");
        }
        let long =
            format!("{BASE}[[maintenance]]\nname = \"w\"\nstart = \"02:00\"\nduration = \"25h\"\n");
        assert!(parse(&long, 0).expect_err("long").contains("at most"));
        let bad_start =
            format!("{BASE}[[maintenance]]\nname = \"w\"\nstart = \"2am\"\nduration = \"1h\"\n");
        assert!(parse(&bad_start, 0).expect_err("start").contains("HH:MM"));
    }
}

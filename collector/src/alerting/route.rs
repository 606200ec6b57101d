//! Routing: which channels an alert goes to, and whether it is repeated or escalated while
//! nobody acknowledges it. Pure: the table from collector.toml and an alert in, a decision out.
//!
//! `[[routes]]` are tried in order; the first that matches decides, unless it says
//! `continue = true`, in which case its channels are taken and the next routes are tried too.
//! An alert no route matches goes to every channel (the default route), as does every alert when
//! there are no routes. Repeat and escalation come from the first matching route that sets them.

use std::time::Duration;

use fleetdeck_proto::Severity;

use super::notify::Target;
use super::rules::Alert;
use super::silence::aspect_kind;
use super::thresholds::glob_match;

/// Somewhere alerts go, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub target: Target,
}

impl Channel {
    pub fn info(&self) -> fleetdeck_proto::ChannelInfo {
        let (kind, format) = match &self.target {
            Target::Webhook(hook) => (
                "webhook",
                serde_json::to_value(hook.format)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
            Target::Smtp(_) => ("smtp", "email".to_owned()),
        };
        fleetdeck_proto::ChannelInfo {
            name: self.name.clone(),
            kind: kind.to_owned(),
            format,
            target: self.target.redacted(),
        }
    }

    /// Sends a clearly marked test alert, once (no retries: the answer is the channel's), and
    /// says how it went.
    pub async fn test(&self, client: &reqwest::Client) -> fleetdeck_proto::ChannelTest {
        let retry = super::RetryPolicy {
            attempts: 1,
            ..super::RetryPolicy::default()
        };
        let started = std::time::Instant::now();
        let delivery =
            super::notify::deliver_to(client, &self.target, &test_alert(&self.name), &retry).await;
        fleetdeck_proto::ChannelTest {
            channel: self.name.clone(),
            ok: delivery.result.is_ok(),
            status: delivery.last_status,
            error: delivery.result.err(),
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The alert a channel test sends: it says it is a test, in its subject and its text.
pub fn test_alert(channel: &str) -> Alert {
    Alert {
        kind: super::AlertKind::Problem,
        host: "fleetdeck-collector".to_owned(),
        app: None,
        state: "test".to_owned(),
        exit: None,
        message: format!(
            "TEST ALERT to channel {channel}: sent on request to check that this channel works. \
             Nothing is wrong; no action is needed."
        ),
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        aspect: super::rules::Aspect::State,
        severity: Severity::Warning,
        detail: super::rules::Detail {
            reason: Some("a channel test".to_owned()),
            ..super::rules::Detail::default()
        },
        healthy: false,
    }
}

/// One `[[routes]]` entry, its channel names resolved to indices into the channel list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    /// Only alerts of this severity.
    pub severity: Option<Severity>,
    /// Only these aspects (`state`, `check`, ...); empty: all.
    pub kinds: Vec<String>,
    /// Host and app globs; empty: all. An app glob never matches a host's own alert.
    pub hosts: Vec<String>,
    pub apps: Vec<String>,
    pub channels: Vec<usize>,
    /// Go on to the next routes after this one matched.
    pub continue_: bool,
    /// Send an open, unacknowledged alert again this often.
    pub repeat_every: Option<Duration>,
    /// Send an unacknowledged alert to `escalate_to` once this long has passed.
    pub escalate_after: Option<Duration>,
    pub escalate_to: Vec<usize>,
}

/// Where an alert goes and what follows if nobody acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routed {
    pub channels: Vec<usize>,
    pub repeat_every: Option<Duration>,
    pub escalate: Option<(Duration, Vec<usize>)>,
}

impl Route {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.severity.is_none_or(|s| s == alert.severity)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == aspect_kind(&alert.aspect)))
            && (self.hosts.is_empty() || self.hosts.iter().any(|g| glob_match(g, &alert.host)))
            && (self.apps.is_empty()
                || alert
                    .app
                    .as_deref()
                    .is_some_and(|app| self.apps.iter().any(|g| glob_match(g, app))))
    }
}

/// Routes `alert` through `routes` over `channels` channels.
pub fn route(routes: &[Route], channels: usize, alert: &Alert) -> Routed {
    let mut routed = Routed::default();
    let mut matched = false;
    for r in routes.iter().filter(|r| r.matches(alert)) {
        matched = true;
        for &c in &r.channels {
            if !routed.channels.contains(&c) {
                routed.channels.push(c);
            }
        }
        if routed.repeat_every.is_none() {
            routed.repeat_every = r.repeat_every;
        }
        if routed.escalate.is_none() {
            if let Some(after) = r.escalate_after {
                routed.escalate = Some((after, r.escalate_to.clone()));
            }
        }
        if !r.continue_ {
            break;
        }
    }
    if !matched {
        routed.channels = (0..channels).collect();
    }
    routed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::rules::{AlertKind, Aspect, Detail};

    fn alert(host: &str, app: Option<&str>, severity: Severity, aspect: Aspect) -> Alert {
        Alert {
            kind: AlertKind::Problem,
            host: host.into(),
            app: app.map(Into::into),
            state: "failed".into(),
            exit: None,
            message: String::new(),
            at_ms: 0,
            aspect,
            severity,
            detail: Detail::default(),
            healthy: false,
        }
    }

    #[test]
    fn the_first_matching_route_decides_unless_it_continues() {
        let hour = Duration::from_secs(3600);
        let routes = vec![
            // Databases to the DB team (0), and on.
            Route {
                hosts: vec!["db-*".into()],
                channels: vec![0],
                continue_: true,
                ..Route::default()
            },
            // Everything critical to the pager (1), repeated every 4 h, escalated to 2.
            Route {
                severity: Some(Severity::Critical),
                channels: vec![1],
                repeat_every: Some(4 * hour),
                escalate_after: Some(hour / 2),
                escalate_to: vec![2],
                ..Route::default()
            },
            // Warnings of checks to chat (3).
            Route {
                severity: Some(Severity::Warning),
                kinds: vec!["check".into()],
                channels: vec![3],
                ..Route::default()
            },
            // A route for one app only.
            Route {
                apps: vec!["cron*".into()],
                channels: vec![3],
                ..Route::default()
            },
        ];
        let r = |a: &Alert| route(&routes, 4, a);
        let crit = r(&alert(
            "web-1",
            Some("api"),
            Severity::Critical,
            Aspect::State,
        ));
        assert_eq!(crit.channels, vec![1]);
        assert_eq!(crit.repeat_every, Some(4 * hour));
        assert_eq!(crit.escalate, Some((hour / 2, vec![2])));
        let db_crit = r(&alert("db-1", None, Severity::Critical, Aspect::State));
        assert_eq!(db_crit.channels, vec![0, 1]);
        let db_warn = r(&alert("db-1", None, Severity::Warning, Aspect::Clock));
        assert_eq!(db_warn.channels, vec![0]);
        let check = r(&alert(
            "web-1",
            Some("api"),
            Severity::Warning,
            Aspect::Check("h".into()),
        ));
        assert_eq!((check.channels, check.repeat_every), (vec![3], None));
        // An app route never matches the host's own alert; nothing matched: every channel.
        let host_warn = r(&alert(
            "web-1",
            None,
            Severity::Warning,
            Aspect::Source("docker".into()),
        ));
        assert_eq!(host_warn.channels, vec![0, 1, 2, 3]);
        let cron = r(&alert(
            "web-1",
            Some("cron-daily"),
            Severity::Warning,
            Aspect::State,
        ));
        assert_eq!(cron.channels, vec![3]);
        // No routes: every channel, no repeat.
        let all = route(&[], 2, &alert("x", None, Severity::Critical, Aspect::State));
        assert_eq!(
            all,
            Routed {
                channels: vec![0, 1],
                ..Routed::default()
            }
        );
    }
}

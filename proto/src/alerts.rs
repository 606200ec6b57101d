//! The collector's alert history, acknowledgements and silences (`/v1/alerts`, `/v1/silences`).

use serde::{Deserialize, Serialize};

use crate::{CheckResult, CrashContext, Severity, ThresholdHit};

/// Where an alert stands: `open` until someone acknowledges it or its subject recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "acknowledged" => Some(Self::Acknowledged),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

/// One problem of one subject (a host, an app, or one aspect of it: a check, a certificate, a
/// source, the clock, a threshold rule), from when it was raised until its subject recovered. A
/// crash the restart policy healed is an alert resolved when raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRecord {
    pub id: i64,
    /// `problem` or `flapping`.
    pub kind: String,
    pub state: AlertState,
    pub severity: Severity,
    pub host: String,
    pub app: Option<String>,
    /// Which side of the subject: `state`, `check`, `source`, `clock`, `cert-expiring`,
    /// `cert-critical` or `threshold`.
    pub aspect: String,
    /// The check, source or threshold rule the aspect names.
    pub aspect_name: Option<String>,
    /// One line a person reads: what, and why.
    pub message: String,
    /// A crash's context (exit, OOM kill, memory, last log lines), when the agent captured one.
    pub context: Option<CrashContext>,
    /// A check's last result, for `check`.
    pub check: Option<CheckResult>,
    /// What a threshold rule saw, for `threshold`.
    pub threshold: Option<ThresholdHit>,
    /// One line more: a source's error, the clock's skew, "stopped without a request".
    pub reason: Option<String>,
    pub started_unix_ms: u64,
    pub acknowledged_unix_ms: Option<u64>,
    /// The name of the key that acknowledged it.
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
    pub resolved_unix_ms: Option<u64>,
    /// From its start to its resolution, or to now while it is not resolved.
    pub duration_ms: u64,
    /// The silence that kept it from the channels (it is still in this history).
    pub silenced_by: Option<i64>,
    /// Its deliveries, and those of its recovery, to each channel.
    pub deliveries: Vec<AlertDelivery>,
}

/// How one alert (or its recovery) reached one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertDelivery {
    /// The channel as logged: a webhook's scheme and host, never its secret path.
    pub channel: String,
    /// `problem` (the alert itself), `recovery`, `flap-ended` or `repeat`.
    pub of: String,
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub at_unix_ms: u64,
}

/// A page of alerts: open ones first (newest first), then acknowledged, then resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// More alerts match: ask again with `cursor` = this (and the same filters).
    pub next_cursor: Option<String>,
}

/// `POST /v1/alerts/{id}/ack`: "I'm on it".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertAck {
    /// At most 512 bytes.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /v1/silences`: keep matching alerts from the channels and the desktop's notifications
/// until it ends. Give `duration` (`"2h"`, `"1d"`) or `until_unix_ms`, at most 90 days ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// A glob over host names (`*` any run of characters, `?` one); default `*`.
    #[serde(default)]
    pub hosts: Option<String>,
    /// A glob over app names; without it the silence covers the hosts and all their apps.
    #[serde(default)]
    pub apps: Option<String>,
    /// Only this aspect of alert (`state`, `check`, `source`, `clock`, `cert-expiring`,
    /// `cert-critical`, `threshold`); default every one.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub until_unix_ms: Option<u64>,
    /// Why, for whoever reads the list (required, at most 512 bytes).
    pub reason: String,
}

/// A silence: from its start to its end (or to when it was removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Silence {
    pub id: i64,
    pub hosts: String,
    pub apps: Option<String>,
    pub kind: Option<String>,
    pub reason: String,
    /// The key's name (or `command line`, or `maintenance NAME` for a configured window).
    pub created_by: String,
    pub starts_unix_ms: u64,
    pub ends_unix_ms: u64,
    /// When it was removed before its end, and by whom.
    pub removed_unix_ms: Option<u64>,
    pub removed_by: Option<String>,
}

/// A channel alerts go to, as listed: never its secret (a webhook's path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelInfo {
    pub name: String,
    /// `webhook` or `smtp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `json`, `slack`, `discord`, `ntfy`, or `email`.
    pub format: String,
    /// Where it sends: a webhook's scheme and host only, or `smtp://host:port (tls)`.
    pub target: String,
}

/// How a test alert to a channel went (`POST /v1/channels/{name}/test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelTest {
    pub channel: String,
    /// The receiver accepted it (a 2xx answer).
    pub ok: bool,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    pub took_ms: u64,
}

/// Whether `glob` (`*` any run of characters, `?` one) matches all of `name`.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

impl Silence {
    /// Whether it is in force at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.removed_unix_ms.is_none()
            && self.starts_unix_ms <= now_ms
            && now_ms < self.ends_unix_ms
    }

    /// Whether, in force at `now_ms`, it covers an alert of aspect `kind` about `host` and `app`
    /// (`None`: the host itself): its host matches `hosts`; an app matches `apps` (without
    /// `apps`, every app of the hosts and the hosts themselves); the kind is `kind` if given.
    /// The collector and the desktop decide by this one rule.
    pub fn covers(&self, host: &str, app: Option<&str>, kind: &str, now_ms: u64) -> bool {
        self.active(now_ms)
            && glob_match(&self.hosts, host)
            && match (&self.apps, app) {
                (None, _) => true,
                (Some(glob), Some(app)) => glob_match(glob, app),
                (Some(_), None) => false,
            }
            && self.kind.as_deref().is_none_or(|k| k == kind)
    }
}

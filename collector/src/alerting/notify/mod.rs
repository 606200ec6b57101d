//! Alert delivery: rendering an alert in a webhook's format and posting it, with retries.
//!
//! Knows nothing of when to alert (that is [`super::rules`]); one file per format:
//! [`json`] (generic), [`slack`], [`discord`], [`ntfy`].
//!
//! Webhook URLs of Slack and Discord carry their secret in the path, so a [`Webhook`] never
//! shows more than `scheme://host/…` in `Debug`, logs, errors or the delivery history.

mod discord;
pub mod email;
mod json;
mod ntfy;
mod slack;
#[cfg(test)]
mod tests_support;
pub(crate) mod text;

use std::time::Duration;

use rand::Rng;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::rules::Alert;

/// How long one request may take, from connecting to the end of the answer: a hung receiver
/// costs one attempt, not the delivery.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The body a receiver expects; `format = "json" | "slack" | "discord" | "ntfy"` in the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Every field of the alert as a JSON object, for receivers that parse it.
    #[default]
    Json,
    Slack,
    Discord,
    Ntfy,
}

/// Where alerts go and in which format.
///
/// `Debug` and [`Webhook::redacted`] show only `scheme://host/…`: Slack and Discord put the secret
/// in the URL's path. Deserializing validates the URL (see [`Webhook::new`]), so a typo fails at
/// startup instead of at the first alert. Not `Serialize`, so it cannot be echoed back whole.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WebhookConfig")]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
}

/// A webhook as written in the config file, before its URL is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
    #[serde(default)]
    format: WebhookFormat,
}

impl TryFrom<WebhookConfig> for Webhook {
    type Error = WebhookError;

    fn try_from(config: WebhookConfig) -> Result<Self, Self::Error> {
        Webhook::new(config.url, config.format)
    }
}

/// Why a webhook URL was refused. The messages never contain the URL's path or query.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("webhook URL is not a valid absolute URL ({0}); write it in full, e.g. https://ntfy.sh/my-topic")]
    InvalidUrl(String),
    #[error("webhook URL {0} is not http or https; only those schemes can be posted to")]
    UnsupportedScheme(String),
}

impl Webhook {
    /// A webhook whose URL is an absolute http or https URL with a host.
    pub fn new(url: impl Into<String>, format: WebhookFormat) -> Result<Self, WebhookError> {
        let url = url.into();
        let parsed = Url::parse(&url).map_err(|e| WebhookError::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookError::UnsupportedScheme(redact(&parsed)));
        }
        if parsed.host_str().is_none() {
            return Err(WebhookError::InvalidUrl("it has no host".into()));
        }
        Ok(Self { url, format })
    }

    /// `https://hooks.slack.com/…`: enough to tell webhooks apart in logs and the delivery
    /// history, without the secret in the path, the query or user info.
    pub fn redacted(&self) -> String {
        match Url::parse(&self.url) {
            Ok(url) => redact(&url),
            Err(_) => "<invalid URL>".to_owned(),
        }
    }
}

fn redact(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.redacted())
            .field("format", &self.format)
            .finish()
    }
}

/// How hard to try when a webhook fails: a receiver that is restarting or rate-limiting should
/// still get the alert, but a dead one must not be retried forever.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub attempts: u32,
    /// The wait before the first retry; each further retry waits twice as long...
    #[serde(with = "humantime_serde")]
    pub first_delay: Duration,
    /// ...up to this.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, waiting about 1, 2, 4, 8 and 16 s in between: about half a minute in all.
    fn default() -> Self {
        Self {
            attempts: 6,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 is the first retry): `first_delay` doubled per
    /// retry, capped at `max_delay`, then a random point between half of that and all of it, so
    /// that collectors or alerts failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2_u32.saturating_pow(retry.saturating_sub(1));
        let base = self.first_delay.saturating_mul(factor).min(self.max_delay);
        let half = base / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(rand::rng().random_range(0..=spread))
    }
}

/// An alert ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static str,
    /// Headers besides `Content-Type` (ntfy's `Title`, `Priority`, `Tags`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Rendered {
    fn json(value: &serde_json::Value) -> Self {
        Self {
            content_type: "application/json",
            headers: Vec::new(),
            // `Value`'s Display cannot fail: its keys are strings and it holds no foreign types.
            body: value.to_string().into_bytes(),
        }
    }
}

/// The alert in the format's body and headers.
pub fn render(format: WebhookFormat, alert: &Alert) -> Rendered {
    match format {
        WebhookFormat::Json => json::render(alert),
        WebhookFormat::Slack => slack::render(alert),
        WebhookFormat::Discord => discord::render(alert),
        WebhookFormat::Ntfy => ntfy::render(alert),
    }
}

/// How one alert's delivery to one webhook ended; stored in the alert history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Requests made, the successful one included.
    pub attempts: u32,
    /// The last HTTP status any answer had, even a failing one (the history's `status` column).
    pub last_status: Option<u16>,
    /// The 2xx status that accepted the alert, or why the last attempt failed.
    pub result: Result<u16, String>,
}

/// Posts the alert to the webhook, retrying any transport error or non-2xx answer with backoff
/// until `retry.attempts` are spent. Never fails: the outcome is in the returned [`Delivery`].
/// Where a channel sends: a webhook, or email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook(Webhook),
    Smtp(email::Smtp),
}

impl Target {
    /// Where it sends, never a secret: `scheme://host/…` or `smtp://host:port (tls)`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Webhook(hook) => hook.redacted(),
            Self::Smtp(smtp) => smtp.target(),
        }
    }
}

/// Delivers `alert` to `target` with retries (see [`deliver`] and [`email::send`]).
pub async fn deliver_to(
    client: &reqwest::Client,
    target: &Target,
    alert: &Alert,
    retry: &RetryPolicy,
) -> Delivery {
    match target {
        Target::Webhook(hook) => deliver(client, hook, alert, retry).await,
        Target::Smtp(smtp) => email::send(smtp, alert, retry).await,
    }
}

pub async fn deliver(
    client: &reqwest::Client,
    hook: &Webhook,
    alert: &Alert,
    retry: &RetryPolicy,
) -> Delivery {
    let rendered = render(hook.format, alert);
    let attempts = retry.attempts.max(1);
    let mut last_status = None;
    let mut last_error = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(retry.backoff(attempt - 1)).await;
        }
        match post(client, hook, &rendered).await {
            Ok(status) => {
                return Delivery {
                    attempts: attempt,
                    last_status: Some(status),
                    result: Ok(status),
                };
            }
            Err(failure) => {
                tracing::debug!(
                    webhook = %hook.redacted(),
                    attempt,
                    error = %failure.message,
                    "webhook attempt failed"
                );
                last_status = failure.status.or(last_status);
                last_error = failure.message;
            }
        }
    }
    Delivery {
        attempts,
        last_status,
        result: Err(last_error),
    }
}

/// One failed attempt.
struct Failure {
    status: Option<u16>,
    message: String,
}

/// How much of a refusing receiver's answer goes into the error: enough for Slack's
/// `invalid_payload` or ntfy's JSON error, not a whole HTML page.
const ERROR_BODY_CHARS: usize = 200;

async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    rendered: &Rendered,
) -> Result<u16, Failure> {
    let mut request = client
        .post(&hook.url)
        .timeout(REQUEST_TIMEOUT)
        .header(CONTENT_TYPE, rendered.content_type)
        .body(rendered.body.clone());
    for (name, value) in &rendered.headers {
        request = request.header(*name, value.as_str());
    }
    let response = request.send().await.map_err(|e| Failure {
        status: None,
        message: transport_error(e),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    // The receiver's own words help most ("invalid_token", "channel_not_found"); a body that
    // cannot be read (or is over 64 KiB: a receiver is not trusted either) is no reason to hide
    // the status. A redirect is a failure: it is never followed.
    let text = crate::bounded::read_body(response, crate::bounded::MAX_ERROR_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let excerpt: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(ERROR_BODY_CHARS)
        .collect();
    let message = if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    };
    Err(Failure {
        status: Some(status.as_u16()),
        message,
    })
}

/// The error and its causes, without the URL reqwest would print (it holds the secret).
fn transport_error(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {}s", REQUEST_TIMEOUT.as_secs());
    }
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::rules::{AlertKind, Aspect, Detail};
    use fleetdeck_proto::Exit;
    use fleetdeck_proto::Severity as AlertSeverity;

    fn alert(kind: AlertKind) -> Alert {
        Alert {
            kind,
            host: "vm-1".into(),
            app: Some("web".into()),
            state: "failed".into(),
            exit: Some(Exit::Code(3)),
            message: "web on vm-1 failed (exit code 3)".into(),
            at_ms: 1_714_564_800_000,
            aspect: Aspect::State,
            severity: AlertSeverity::Critical,
            detail: Detail::default(),
            healthy: kind == AlertKind::Recovery,
        }
    }

    fn body_json(rendered: &Rendered) -> serde_json::Value {
        serde_json::from_slice(&rendered.body).expect("JSON body")
    }

    #[test]
    fn generic_json_has_every_field() {
        let rendered = render(WebhookFormat::Json, &alert(AlertKind::Problem));
        assert_eq!(rendered.content_type, "application/json");
        assert_eq!(
            body_json(&rendered),
            serde_json::json!({
                "kind": "problem",
                "host": "vm-1",
                "app": "web",
                "state": "failed",
                "exit": {"code": 3},
                "message": "web on vm-1 failed (exit code 3)",
                "severity": "critical",
                "aspect": {"aspect": "state"},
                "detail": {"context": null, "check": null, "threshold": null, "reason": null},
                "at": "2024-05-01T12:00:00.000Z",
                "at_unix_ms": 1_714_564_800_000_u64,
            })
        );
        let flap_ended = render(WebhookFormat::Json, &alert(AlertKind::FlapEnded));
        assert_eq!(body_json(&flap_ended)["kind"], "flap-ended");
    }

    #[test]
    fn chat_formats_prefix_the_kind() {
        for (kind, slack, discord) in [
            (AlertKind::Problem, ":red_circle: ", "\u{1f534} "),
            (AlertKind::Recovery, ":large_green_circle: ", "\u{1f7e2} "),
            (AlertKind::Flapping, ":warning: ", "\u{26a0}\u{fe0f} "),
        ] {
            let a = alert(kind);
            let s = body_json(&render(WebhookFormat::Slack, &a));
            assert_eq!(
                s,
                serde_json::json!({"text": format!("{slack}{}", a.message)})
            );
            let d = body_json(&render(WebhookFormat::Discord, &a));
            assert_eq!(d["content"], format!("{discord}{}", a.message));
            assert_eq!(d["username"], "Fleetdeck");
        }
    }

    #[test]
    fn ntfy_headers_by_kind() {
        for (kind, title, priority, tags) in [
            (
                AlertKind::Problem,
                "web on vm-1 failed",
                "5",
                "rotating_light",
            ),
            (
                AlertKind::Recovery,
                "web on vm-1 recovered",
                "3",
                "white_check_mark",
            ),
            (
                AlertKind::Flapping,
                "web on vm-1 is flapping",
                "4",
                "warning",
            ),
            (
                AlertKind::FlapEnded,
                "web on vm-1 stopped flapping",
                "3",
                "information_source",
            ),
        ] {
            let rendered = render(WebhookFormat::Ntfy, &alert(kind));
            assert_eq!(rendered.content_type, "text/plain; charset=utf-8");
            assert_eq!(rendered.body, b"web on vm-1 failed (exit code 3)");
            assert_eq!(
                rendered.headers,
                vec![
                    ("Title", title.to_owned()),
                    ("Priority", priority.to_owned()),
                    ("Tags", tags.to_owned()),
                ]
            );
        }
        let mut host_down = alert(AlertKind::Problem);
        host_down.app = None;
        host_down.state = "down: 2 polls missed".into();
        let rendered = render(WebhookFormat::Ntfy, &host_down);
        assert_eq!(rendered.headers[0], ("Title", "vm-1 is down".to_owned()));
    }

    #[test]
    fn urls_are_redacted_everywhere() {
        let secret = "T000/B000/XXXXSECRETXXXX";
        let hook = Webhook::new(
            format!("https://hooks.slack.com/services/{secret}?token=abc"),
            WebhookFormat::Slack,
        )
        .expect("valid URL");
        assert_eq!(hook.redacted(), "https://hooks.slack.com/…");
        let debug = format!("{hook:?}");
        assert!(
            !debug.contains("SECRET") && !debug.contains("abc"),
            "{debug}"
        );
        let with_port = Webhook::new("http://user:pw@10.0.0.5:8080/topic", WebhookFormat::Ntfy)
            .expect("valid URL");
        assert_eq!(with_port.redacted(), "http://10.0.0.5:8080/…");

        let refused = Webhook::new(format!("ftp://example.com/{secret}"), WebhookFormat::Json)
            .expect_err("ftp");
        assert_eq!(
            refused,
            WebhookError::UnsupportedScheme("ftp://example.com/…".into())
        );
        assert!(!refused.to_string().contains("SECRET"));
        assert!(matches!(
            Webhook::new("hooks.slack.com/x", WebhookFormat::Slack),
            Err(WebhookError::InvalidUrl(_))
        ));
    }

    #[test]
    fn webhooks_deserialize_with_validation() {
        let hook: Webhook =
            serde_json::from_str(r#"{"url": "https://ntfy.sh/alerts", "format": "ntfy"}"#)
                .expect("webhook");
        assert_eq!(hook.format, WebhookFormat::Ntfy);
        let json: Webhook =
            serde_json::from_str(r#"{"url": "https://example.com/hook"}"#).expect("webhook");
        assert_eq!(json.format, WebhookFormat::Json);
        assert!(serde_json::from_str::<Webhook>(r#"{"url": "nope"}"#).is_err());
        assert!(serde_json::from_str::<Webhook>(
            r#"{"url": "https://example.com", "format": "teams"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Webhook>(
            r#"{"url": "https://example.com", "fromat": "json"}"#
        )
        .is_err());
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let retry = RetryPolicy {
            attempts: 10,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for (n, base_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let wait = retry.backoff(n);
                let base = Duration::from_millis(base_ms);
                assert!(wait >= base / 2 && wait <= base, "retry {n}: {wait:?}");
            }
        }
        let default = RetryPolicy::default();
        assert_eq!(default.attempts, 6);
        assert_eq!(default.first_delay, Duration::from_secs(1));
        assert_eq!(default.max_delay, Duration::from_secs(60));
    }
}

//! The collector's HTTP client for one agent (wire contract v1): typed calls for polling, and raw
//! requests for what the API proxies (logs, `.env`, actions). Every body is read with a byte cap
//! ([`crate::bounded`]) and redirects are never followed ([`crate::run::http_client`]).

use std::time::Duration;

use fleetdeck_daemon::secret::Token;
use fleetdeck_proto::{ErrorBody, SamplesPage, Snapshot};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::bounded::{read_body, BodyError, MAX_ERROR_BODY, MAX_POLL_BODY};

/// Samples asked for per page when backfilling (the agent's maximum).
pub const SAMPLES_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    #[error("agent answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("agent sent something unexpected: {0}")]
    Decode(String),
    #[error("agent answered with a redirect to {0:?}, which the collector never follows")]
    Redirect(String),
}

impl From<BodyError> for AgentError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(_) => Self::Decode(e.to_string()),
            BodyError::Transport(t) => Self::Unreachable(t),
        }
    }
}

/// One agent: its base URL and token.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    token: Token,
    timeout: Duration,
}

impl AgentClient {
    pub fn new(http: reqwest::Client, base: &str, token: Token, timeout: Duration) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            timeout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with the token, without a timeout (streams set none).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.token.expose())
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, AgentError> {
        let resp = self
            .request(Method::GET, path)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| AgentError::Unreachable(describe(&e)))?;
        let resp = check(resp).await?;
        let body = read_body(resp, MAX_POLL_BODY).await?;
        serde_json::from_slice(&body).map_err(|e| AgentError::Decode(e.to_string()))
    }

    pub async fn info(&self) -> Result<fleetdeck_proto::Info, AgentError> {
        self.get_json("/v1/info").await
    }

    pub async fn snapshot(&self) -> Result<Snapshot, AgentError> {
        self.get_json("/v1/snapshot").await
    }

    pub async fn samples(&self, after: u64) -> Result<SamplesPage, AgentError> {
        self.get_json(&format!("/v1/samples?after={after}&limit={SAMPLES_PAGE}"))
            .await
    }

    /// Opens `/v1/events` (SSE), resuming after `last_event_id`.
    pub async fn events(&self, last_event_id: Option<&str>) -> Result<Response, AgentError> {
        let mut req = self
            .request(Method::GET, "/v1/events")
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| AgentError::Unreachable("timed out connecting".into()))?
            .map_err(|e| AgentError::Unreachable(describe(&e)))?;
        check(resp).await
    }
}

/// A non-2xx answer becomes an error carrying the agent's message (read up to
/// [`MAX_ERROR_BODY`]); a redirect is an error too, its target named but never requested.
async fn check(resp: Response) -> Result<Response, AgentError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.is_redirection() {
        return Err(AgentError::Redirect(location(&resp)));
    }
    let message = match read_body(resp, MAX_ERROR_BODY).await {
        Ok(body) => match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(body) => body.error.message,
            Err(_) => status.canonical_reason().unwrap_or("error").to_owned(),
        },
        Err(e) => e.to_string(),
    };
    Err(AgentError::Status {
        status: status.as_u16(),
        message,
    })
}

/// Where a redirect pointed, cut to a readable length (it is the agent's text).
pub fn location(resp: &Response) -> String {
    let target = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    target.chars().take(200).collect()
}

/// reqwest's error with its causes (connection refused, timed out...), which its Display omits.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if !last.is_empty() && !text.contains(&last) {
        text.push_str(": ");
        text.push_str(&last);
    }
    text
}

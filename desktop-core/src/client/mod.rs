//! One collector's HTTP API, as the desktop uses it: typed calls, the two SSE streams (an app's
//! logs, the fleet's events), and every failure turned into a [`CommandError`] that says what was
//! wrong and what to do. The API key only ever goes into the `Authorization` header.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use fleetdeck_proto::desktop::{CommandError, EventFilter, LogQuery, MetricsRange};
use fleetdeck_proto::{
    ActionOutcome, AppAction, AppMetrics, EnvBackups, EnvFile, EnvUpdate, EnvWritten, EventsPage,
    Fleet, FleetEvent, HostView, LogEntry, LogPage, Metrics, Uptime,
};
use fleetdeck_transport::pin::pinned_client_config;
pub use fleetdeck_transport::pin::Fingerprint;
use futures_util::stream::{self, Stream, StreamExt};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, IF_MATCH, LOCATION};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

mod address;
mod admin;
mod alerts;
mod errors;
mod failover;
mod search;

use address::{display_url, segment};
pub use address::{parse_collector_url, parse_fingerprint, plain_http_warning};
pub use errors::error_from_response;
use errors::{describe, protocol, unreachable, BodyError};

/// How long connecting to the collector may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a plain request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// An action waits for the host's systemd job, which the agent allows up to 90 s (the collector
/// allows 100 s): a shorter limit would report a restart that is still running as failed.
const ACTION_TIMEOUT: Duration = Duration::from_secs(110);
/// How long a stream may take to answer with its headers (then it runs as long as it lives).
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// The collector (and the agent, for logs) sends an SSE keep-alive every 15 s: a stream silent
/// for three of them is dead, e.g. a network that drops packets without a reset.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// A collector's API key (`fdk_...`). Its `Debug` hides it, and no message or log carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key itself, for the `Authorization` header and the keyring only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

/// A client for one collector. Cloning it is cheap (the connection pool and key are shared).
#[derive(Clone)]
pub struct CollectorClient {
    http: reqwest::Client,
    /// The collector's addresses (validated base URLs), and the one in use.
    addresses: Arc<failover::Addresses>,
    /// The certificate pin every address must show, if any.
    pinned: bool,
    key: Arc<ApiKey>,
    /// A stream silent this long is broken.
    silence_limit: Duration,
    /// Why this connection is not private, when it is plain HTTP outside loopback and the tailnet.
    transport_warning: Option<Arc<str>>,
}

impl std::fmt::Debug for CollectorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorClient")
            .field("url", &self.url())
            .field("key", &*self.key)
            .finish_non_exhaustive()
    }
}

impl CollectorClient {
    /// A client for the collector at `url` (checked with [`parse_collector_url`]) using `key`;
    /// HTTPS is verified against the system's web roots.
    pub fn new(url: &str, key: ApiKey) -> Result<Self, CommandError> {
        Self::build(url, key, None)
    }

    /// A client that trusts exactly the collector certificate `pin` names (an `https://` URL).
    pub fn new_pinned(url: &str, key: ApiKey, pin: Fingerprint) -> Result<Self, CommandError> {
        Self::build(url, key, Some(pin))
    }

    /// The client for a saved collector: pinned when it has a fingerprint.
    pub fn for_saved(
        url: &str,
        tls_fingerprint: Option<&str>,
        key: ApiKey,
    ) -> Result<Self, CommandError> {
        match tls_fingerprint {
            None => Self::new(url, key),
            Some(pin) => Self::new_pinned(url, key, parse_fingerprint(pin)?),
        }
    }

    fn build(url: &str, key: ApiKey, pin: Option<Fingerprint>) -> Result<Self, CommandError> {
        let base = parse_collector_url(url)?;
        if pin.is_some() && base.scheme() != "https" {
            return Err(CommandError::new(
                "invalid_input",
                format!(
                    "A TLS fingerprint pins the certificate of an https:// collector, but {} is \
                     plain HTTP. Use https:// (the collector needs tls_cert and tls_key), or \
                     leave the fingerprint empty.",
                    display_url(&base)
                ),
            ));
        }
        let transport_warning = plain_http_warning(&base);
        if let Some(warning) = &transport_warning {
            tracing::warn!(collector = %display_url(&base), "{warning}");
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // The collector is addressed directly (loopback, LAN or tailnet): an HTTP(S)_PROXY
            // meant for the web must not capture it.
            .no_proxy()
            .use_rustls_tls()
            // A redirect is reported, not followed: the operator should store the final URL, and
            // the key must not travel to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fleetdeck-desktop/", env!("CARGO_PKG_VERSION")));
        let builder = match pin {
            Some(pin) => builder.use_preconfigured_tls(pinned_client_config(pin)),
            None => builder,
        };
        let http = builder.build().map_err(|e| {
            CommandError::new(
                "server",
                format!("Cannot set up the HTTP client: {}", describe(e)),
            )
        })?;
        Ok(Self {
            http,
            addresses: Arc::new(failover::Addresses::new(vec![base])),
            pinned: pin.is_some(),
            key: Arc::new(key),
            silence_limit: SILENCE_LIMIT,
            transport_warning: transport_warning.map(Into::into),
        })
    }

    /// Why this connection is not private (plain HTTP outside loopback and the tailnet), if so.
    pub fn transport_warning(&self) -> Option<&str> {
        self.transport_warning.as_deref()
    }

    /// The same client with streams counted as broken after `limit` without a byte (instead of
    /// [`SILENCE_LIMIT`]); for tests, and for a collector behind a proxy with other keep-alives.
    pub fn with_silence_limit(mut self, limit: Duration) -> Self {
        self.silence_limit = limit;
        self
    }

    /// The same collector also reached at `urls` (its standbys on a shared database, checked
    /// as the first URL is): a request the address in use cannot take for want of a connection
    /// goes to the next.
    pub fn with_standby_urls(mut self, urls: &[String]) -> Result<Self, CommandError> {
        let mut bases: Vec<Url> = self.addresses.all().map(|a| a.base.clone()).collect();
        for url in urls {
            let base = parse_collector_url(url)?;
            if self.pinned && base.scheme() != "https" {
                return Err(CommandError::new(
                    "invalid_input",
                    format!(
                        "The collector's TLS fingerprint pins the certificate of https:// \
                         addresses, but its standby address {} is plain HTTP. Use https:// for \
                         every address of a pinned collector.",
                        display_url(&base)
                    ),
                ));
            }
            if let Some(warning) = plain_http_warning(&base) {
                tracing::warn!(collector = %display_url(&base), "{warning}");
            }
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
        self.addresses = Arc::new(failover::Addresses::new(bases));
        Ok(self)
    }

    /// The collector's URL in use, normalized (no trailing slash).
    pub fn url(&self) -> &str {
        &self.addresses.active().shown
    }

    /// Every address of the collector, the one in use or not.
    pub fn urls(&self) -> Vec<String> {
        self.addresses.all().map(|a| a.shown.to_string()).collect()
    }

    /// Sends `request` to the address in use; when it cannot be connected to, to the next
    /// addresses in turn, staying with the first that answers (see [`failover`]).
    async fn send(&self, request: RequestBuilder) -> Result<Response, CommandError> {
        let (_, built) = request.build_split();
        let mut request = built.map_err(|e| unreachable(self.url(), &describe(e)))?;
        let first = self.addresses.index();
        let mut at = first;
        loop {
            let again = request.try_clone();
            let error = match self.http.execute(request).await {
                Ok(resp) => {
                    if at != first {
                        self.addresses.set(at);
                    }
                    return Ok(resp);
                }
                Err(e) => e,
            };
            let next = (at + 1) % self.addresses.len();
            let moved = again
                .filter(|_| error.is_connect() && next != first)
                .and_then(|mut again| {
                    let url = failover::rebase(
                        again.url(),
                        &self.addresses.get(at).base,
                        &self.addresses.get(next).base,
                    )?;
                    *again.url_mut() = url;
                    Some(again)
                });
            match moved {
                Some(again) => {
                    tracing::info!(
                        from = %self.addresses.get(at).shown,
                        to = %self.addresses.get(next).shown,
                        "the collector cannot be reached there; trying its next address"
                    );
                    request = again;
                    at = next;
                }
                None => return Err(unreachable(&self.addresses.get(at).shown, &describe(error))),
            }
        }
    }

    /// The endpoint under the base URL made of `segments`, each percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.addresses.active().base.clone();
        url.path_segments_mut()
            // `parse_collector_url` only admits http(s) URLs with a host, which always have a path.
            .expect("an http(s) URL with a host has path segments")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(self.key.expose())
    }

    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, CommandError> {
        let resp = self
            .send(request.header(ACCEPT, "application/json"))
            .await?;
        let status = resp.status();
        let path = resp.url().path().to_owned();
        if status.is_redirection() {
            return Err(self.redirected(&resp));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(self.url(), &describe(e)))?;
        if !status.is_success() {
            let error = error_from_response(self.url(), status.as_u16(), &body);
            tracing::debug!(collector = %self.url(), %path, status = status.as_u16(), code = %error.code, "request refused");
            return Err(error);
        }
        serde_json::from_slice(&body).map_err(|e| {
            protocol(
                self.url(),
                &format!("the answer to {path} is not what a collector sends: {e}"),
            )
        })
    }

    fn redirected(&self, resp: &Response) -> CommandError {
        let to = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("somewhere else");
        protocol(
            self.url(),
            &format!(
                "it answered HTTP {} redirecting to {to}; if that is the collector, use its \
                 address in Settings",
                resp.status().as_u16()
            ),
        )
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CommandError> {
        let mut url = self.endpoint(segments);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        self.call(self.request(Method::GET, url).timeout(REQUEST_TIMEOUT))
            .await
    }

    /// Every host and its apps, with the summary counts (`GET /v1/fleet`).
    pub async fn fleet(&self) -> Result<Fleet, CommandError> {
        self.get(&["v1", "fleet"], &[]).await
    }

    /// One host, its apps and its latest metrics in full.
    pub async fn host(&self, host: &str) -> Result<HostView, CommandError> {
        self.get(&["v1", "hosts", segment("host", host)?], &[])
            .await
    }

    /// The host's metric history over `range`, up to now.
    pub async fn metrics(&self, host: &str, range: MetricsRange) -> Result<Metrics, CommandError> {
        let to = SystemTime::now();
        let from = to
            .checked_sub(Duration::from_millis(range.span_ms()))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let query = [
            ("from", humantime::format_rfc3339_seconds(from).to_string()),
            ("to", humantime::format_rfc3339_seconds(to).to_string()),
            ("step", range.step().to_owned()),
        ];
        self.get(&["v1", "hosts", segment("host", host)?, "metrics"], &query)
            .await
    }

    /// One app's metric history (CPU %, memory and its limit, network, check latency) between
    /// `from` and `to` (RFC 3339) at `step` (e.g. `15s`, `5m`, `1h`):
    /// `GET /v1/hosts/{host}/apps/{app}/metrics`.
    pub async fn app_metrics(
        &self,
        host: &str,
        app: &str,
        from: &str,
        to: &str,
        step: &str,
    ) -> Result<AppMetrics, CommandError> {
        let path = [
            "v1",
            "hosts",
            segment("host", host)?,
            "apps",
            segment("app", app)?,
            "metrics",
        ];
        let query = [
            ("from", from.to_owned()),
            ("to", to.to_owned()),
            ("step", step.to_owned()),
        ];
        self.get(&path, &query).await
    }

    /// The app's uptime over the last `days` days (today included).
    pub async fn uptime(&self, host: &str, app: &str, days: u32) -> Result<Uptime, CommandError> {
        let path = [
            "v1",
            "hosts",
            segment("host", host)?,
            "apps",
            segment("app", app)?,
            "uptime",
        ];
        self.get(&path, &[("days", days.to_string())]).await
    }

    /// A page of the event log, newest first.
    pub async fn events(&self, filter: &EventFilter) -> Result<EventsPage, CommandError> {
        let mut query = Vec::new();
        if let Some(host) = &filter.host {
            query.push(("host", host.clone()));
        }
        if let Some(app) = &filter.app {
            query.push(("app", app.clone()));
        }
        if let Some(severity) = filter.severity {
            query.push(("severity", severity.as_str().to_owned()));
        }
        if let Some(kind) = filter.kind {
            query.push(("kind", kind.as_str().to_owned()));
        }
        if let Some(before) = filter.before {
            query.push(("before", before.to_string()));
        }
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        self.get(&["v1", "events"], &query).await
    }

    fn app_path<'a>(
        host: &'a str,
        app: &'a str,
        rest: &[&'a str],
    ) -> Result<Vec<&'a str>, CommandError> {
        let mut path = vec![
            "v1",
            "hosts",
            segment("host", host)?,
            "apps",
            segment("app", app)?,
        ];
        path.extend_from_slice(rest);
        Ok(path)
    }

    /// A page of the app's log lines, newest first.
    pub async fn logs_page(
        &self,
        host: &str,
        app: &str,
        query: &LogQuery,
    ) -> Result<LogPage, CommandError> {
        let mut params = Vec::new();
        if let Some(before) = &query.before {
            params.push(("before", before.clone()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(grep) = query.grep.as_ref().filter(|g| !g.is_empty()) {
            params.push(("grep", grep.clone()));
        }
        if let Some(priority) = query.priority.as_ref().filter(|p| !p.is_empty()) {
            params.push(("priority", priority.clone()));
        }
        params.extend(query.since_ms.map(|ms| ("since", ms.to_string())));
        params.extend(query.until_ms.map(|ms| ("until", ms.to_string())));
        self.get(&Self::app_path(host, app, &["logs"])?, &params)
            .await
    }

    /// Follows the app's logs: every line written after the one whose cursor is `after` (after
    /// the newest line when `None`), in order. The stream ends after its first error.
    pub async fn logs_follow(
        &self,
        host: &str,
        app: &str,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<LogEntry, CommandError>> + Send + 'static, CommandError>
    {
        let url = self.endpoint(&Self::app_path(host, app, &["logs", "stream"])?);
        let resp = self.open_stream(url, after.as_deref()).await?;
        Ok(sse_items::<LogEntry>(
            self.addresses.active().shown.clone(),
            resp,
            "log",
            self.silence_limit,
        ))
    }

    /// Follows the collector's event log: every event after `last_id` (from now on when `None`),
    /// oldest first. The stream ends after its first error.
    pub async fn events_stream(
        &self,
        last_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<FleetEvent, CommandError>> + Send + 'static, CommandError>
    {
        let url = self.endpoint(&["v1", "events", "stream"]);
        let last = last_id.map(|id| id.to_string());
        let resp = self.open_stream(url, last.as_deref()).await?;
        Ok(sse_items::<FleetEvent>(
            self.addresses.active().shown.clone(),
            resp,
            "fleet",
            self.silence_limit,
        ))
    }

    /// Opens an SSE endpoint; the answer must be a 200 event stream.
    async fn open_stream(
        &self,
        url: Url,
        last_event_id: Option<&str>,
    ) -> Result<Response, CommandError> {
        self.open_streaming(url, last_event_id, "text/event-stream", "an event stream")
            .await
    }

    /// Opens an endpoint that streams its answer; the answer must be a 200 of `content_type`
    /// (`what`, in the error that says it was not).
    async fn open_streaming(
        &self,
        url: Url,
        last_event_id: Option<&str>,
        content_type: &str,
        what: &str,
    ) -> Result<Response, CommandError> {
        let mut request = self.request(Method::GET, url).header(ACCEPT, content_type);
        if let Some(id) = last_event_id {
            let value = HeaderValue::from_str(id).map_err(|_| {
                CommandError::new(
                    "invalid_input",
                    format!("\"{id}\" is not a position to resume a stream from."),
                )
            })?;
            request = request.header("last-event-id", value);
        }
        let resp = tokio::time::timeout(STREAM_OPEN_TIMEOUT, self.send(request))
            .await
            .map_err(|_| unreachable(self.url(), "timed out"))??;
        let status = resp.status();
        if status.is_redirection() {
            return Err(self.redirected(&resp));
        }
        if !status.is_success() {
            let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.bytes())
                .await
                .map_err(|_| unreachable(self.url(), "timed out"))?
                .map_err(|e| unreachable(self.url(), &describe(e)))?;
            return Err(error_from_response(self.url(), status.as_u16(), &body));
        }
        let answered = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !answered.starts_with(content_type) {
            return Err(protocol(
                self.url(),
                &format!(
                    "{} answered {answered:?} instead of {what}",
                    resp.url().path()
                ),
            ));
        }
        Ok(resp)
    }

    /// Reads the app's `.env` (operator or admin keys only).
    pub async fn env_get(&self, host: &str, app: &str) -> Result<EnvFile, CommandError> {
        self.get(&Self::app_path(host, app, &["env"])?, &[]).await
    }

    /// Edits the app's `.env` if it is still as read (`etag` from [`Self::env_get`]): a
    /// `conflict` error when it changed meanwhile, and then nothing is written.
    pub async fn env_put(
        &self,
        host: &str,
        app: &str,
        etag: &str,
        update: &EnvUpdate,
    ) -> Result<EnvWritten, CommandError> {
        self.env_write(host, app, etag, update, None).await
    }

    /// The backups the app's agent keeps of its `.env`, newest first (operator).
    pub async fn env_backups(&self, host: &str, app: &str) -> Result<EnvBackups, CommandError> {
        self.get(&Self::app_path(host, app, &["env", "backups"])?, &[])
            .await
    }

    /// Backup `n` (1 is the newest) of the app's `.env` (operator; audited as a read).
    pub async fn env_backup(&self, host: &str, app: &str, n: u32) -> Result<EnvFile, CommandError> {
        let n = n.to_string();
        self.get(&Self::app_path(host, app, &["env", "backups", &n])?, &[])
            .await
    }

    /// Puts backup `n` back: its whole text, written over the file if it is still at `etag`
    /// (the same If-Match write as an edit; the audit says which backup).
    pub async fn env_restore(
        &self,
        host: &str,
        app: &str,
        n: u32,
        etag: &str,
    ) -> Result<EnvWritten, CommandError> {
        let backup = self.env_backup(host, app, n).await?;
        let update = EnvUpdate {
            raw: Some(backup.raw),
            ..EnvUpdate::default()
        };
        self.env_write(host, app, etag, &update, Some(n)).await
    }

    async fn env_write(
        &self,
        host: &str,
        app: &str,
        etag: &str,
        update: &EnvUpdate,
        restoring: Option<u32>,
    ) -> Result<EnvWritten, CommandError> {
        // An entity tag is quoted in HTTP; the agent accepts it quoted or bare, and the collector
        // passes it through as it is.
        let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
        let if_match = HeaderValue::from_str(&format!("\"{bare}\""))
            .ok()
            .filter(|_| !bare.is_empty())
            .ok_or_else(|| {
                CommandError::new(
                    "invalid_input",
                    "The .env file's version (etag) is missing or malformed: reload the file, then make your change again.",
                )
            })?;
        let mut url = self.endpoint(&Self::app_path(host, app, &["env"])?);
        if let Some(n) = restoring {
            url.query_pairs_mut()
                .append_pair("restoring", &n.to_string());
        }
        let request = self
            .request(Method::PUT, url)
            .timeout(REQUEST_TIMEOUT)
            .header(IF_MATCH, if_match)
            .json(update);
        self.call(request).await
    }

    /// Starts, stops or restarts the app, waiting for the host's answer.
    pub async fn action(
        &self,
        host: &str,
        app: &str,
        action: AppAction,
    ) -> Result<ActionOutcome, CommandError> {
        let url = self.endpoint(&Self::app_path(host, app, &["actions", action.as_str()])?);
        self.call(self.request(Method::POST, url).timeout(ACTION_TIMEOUT))
            .await
    }
}

/// The response's body, ending with [`BodyError::Silent`] when nothing (not even a keep-alive)
/// arrives for `limit`.
fn watched_body(
    resp: Response,
    limit: Duration,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    let body = Box::pin(resp.bytes_stream());
    stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(limit, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(e))) => Some((Err(BodyError::Http(describe(e))), None)),
            Ok(None) => None,
            Err(_) => Some((Err(BodyError::Silent(limit)), None)),
        }
    })
}

/// The `data` of each SSE event named `name`, decoded; an event that does not decode is skipped
/// (with a warning), and the stream ends after its first error.
fn sse_items<T: DeserializeOwned + Send + 'static>(
    url: Arc<str>,
    resp: Response,
    name: &'static str,
    silence_limit: Duration,
) -> impl Stream<Item = Result<T, CommandError>> + Send + 'static {
    let events = Box::pin(watched_body(resp, silence_limit).eventsource());
    stream::unfold(Some(events), move |state| {
        let url = url.clone();
        async move {
            let mut events = state?;
            loop {
                match events.next().await {
                    Some(Ok(event)) if event.event == name => {
                        match serde_json::from_str::<T>(&event.data) {
                            Ok(item) => return Some((Ok(item), Some(events))),
                            Err(e) => tracing::warn!(
                                collector = %url, event = name, id = %event.id, error = %e,
                                "the collector sent an event this desktop cannot read; skipped"
                            ),
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let reason = match e {
                            EventStreamError::Transport(e) => e.to_string(),
                            other => format!("it sent a malformed event stream ({other})"),
                        };
                        let error = CommandError::new(
                            "unreachable",
                            format!(
                                "The stream from the collector at {url} broke: {reason}. \
                                 Check that the collector is running."
                            ),
                        );
                        return Some((Err(error), None));
                    }
                    None => return None,
                }
            }
        }
    })
}

#[cfg(test)]
mod tests;

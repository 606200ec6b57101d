//! One collector's HTTP API, as the desktop uses it: typed calls, the two SSE streams (an app's
//! logs, the fleet's events), and every failure turned into a [`CommandError`] that says what was
//! wrong and what to do. The API key only ever goes into the `Authorization` header.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use fleetdeck_proto::desktop::{CommandError, EventFilter, LogQuery, MetricsRange};
use fleetdeck_proto::{
    ActionOutcome, AppAction, AppMetrics, EnvFile, EnvUpdate, EnvWritten, EventsPage, Fleet,
    FleetEvent, HostView, LogEntry, LogPage, Metrics, Uptime,
};
use fleetdeck_transport::pin::pinned_client_config;
pub use fleetdeck_transport::pin::Fingerprint;
use futures_util::stream::{self, Stream, StreamExt};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, IF_MATCH, LOCATION};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

mod address;
mod alerts;
mod errors;

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
    /// The validated base URL, without a trailing slash.
    url: Arc<str>,
    base: Url,
    key: Arc<ApiKey>,
    /// A stream silent this long is broken.
    silence_limit: Duration,
    /// Why this connection is not private, when it is plain HTTP outside loopback and the tailnet.
    transport_warning: Option<Arc<str>>,
}

impl std::fmt::Debug for CollectorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorClient")
            .field("url", &self.url)
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
            url: display_url(&base).into(),
            base,
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

    /// The collector's URL, normalized (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint under the base URL made of `segments`, each percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
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
        let resp = request
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(&self.url, &describe(e)))?;
        let status = resp.status();
        let path = resp.url().path().to_owned();
        if status.is_redirection() {
            return Err(self.redirected(&resp));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(&self.url, &describe(e)))?;
        if !status.is_success() {
            let error = error_from_response(&self.url, status.as_u16(), &body);
            tracing::debug!(collector = %self.url, %path, status = status.as_u16(), code = %error.code, "request refused");
            return Err(error);
        }
        serde_json::from_slice(&body).map_err(|e| {
            protocol(
                &self.url,
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
            &self.url,
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
            self.url.clone(),
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
            self.url.clone(),
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
        let mut request = self
            .request(Method::GET, url)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            let value = HeaderValue::from_str(id).map_err(|_| {
                CommandError::new(
                    "invalid_input",
                    format!("\"{id}\" is not a position to resume a stream from."),
                )
            })?;
            request = request.header("last-event-id", value);
        }
        let resp = tokio::time::timeout(STREAM_OPEN_TIMEOUT, request.send())
            .await
            .map_err(|_| unreachable(&self.url, "timed out"))?
            .map_err(|e| unreachable(&self.url, &describe(e)))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(self.redirected(&resp));
        }
        if !status.is_success() {
            let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.bytes())
                .await
                .map_err(|_| unreachable(&self.url, "timed out"))?
                .map_err(|e| unreachable(&self.url, &describe(e)))?;
            return Err(error_from_response(&self.url, status.as_u16(), &body));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(protocol(
                &self.url,
                &format!(
                    "{} answered {content_type:?} instead of an event stream",
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
        let url = self.endpoint(&Self::app_path(host, app, &["env"])?);
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
mod tests {
    use super::*;
    use fleetdeck_proto::ErrorBody;

    #[test]
    fn urls_are_checked_and_normalized() {
        for (input, want) in [
            ("http://100.64.0.5:7080", "http://100.64.0.5:7080"),
            ("http://100.64.0.5:7080/", "http://100.64.0.5:7080"),
            (
                "  https://collector.tail1234.ts.net  ",
                "https://collector.tail1234.ts.net",
            ),
            ("http://[fd7a:115c::5]:7080/", "http://[fd7a:115c::5]:7080"),
            (
                "https://example.com/fleetdeck/",
                "https://example.com/fleetdeck",
            ),
            ("HTTP://Host:7080", "http://host:7080"),
        ] {
            let url = parse_collector_url(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(display_url(&url), want, "{input}");
        }
        for input in [
            "",
            "100.64.0.5:7080",
            "collector",
            "ftp://host",
            "file:///etc/passwd",
            "http://",
            "http://host:7080/?x=1",
            "http://host:7080/#top",
            "http://user:pass@host:7080",
            "http://host:99999",
            "ws://host:7080",
        ] {
            let e = parse_collector_url(input).expect_err(input);
            assert_eq!(e.code, "invalid_url", "{input}");
            assert!(
                e.message.contains("http://100.64.0.5:7080"),
                "{}",
                e.message
            );
            assert!(e.message.contains(input.trim()), "{}", e.message);
        }
        let e = parse_collector_url("100.64.0.5:7080").expect_err("no scheme");
        assert!(
            e.message.contains("did you mean http://100.64.0.5:7080"),
            "{}",
            e.message
        );
        let e = CollectorClient::new("nope", ApiKey::new("fdk_secret".into())).expect_err("bad");
        assert_eq!(e.code, "invalid_url");
    }

    #[test]
    fn endpoints_percent_encode_segments() {
        let client =
            CollectorClient::new("http://h:1/prefix/", ApiKey::new("k".into())).expect("client");
        assert_eq!(client.url(), "http://h:1/prefix");
        let path = CollectorClient::app_path("web 1", "a/b?c#d%", &["env"]).expect("path");
        assert_eq!(
            client.endpoint(&path).as_str(),
            "http://h:1/prefix/v1/hosts/web%201/apps/a%2Fb%3Fc%23d%25/env"
        );
        let root = CollectorClient::new("http://h:1", ApiKey::new("k".into())).expect("client");
        assert_eq!(
            root.endpoint(&["v1", "fleet"]).as_str(),
            "http://h:1/v1/fleet"
        );
        for bad in ["", ".", ".."] {
            let e = CollectorClient::app_path(bad, "api", &[]).expect_err(bad);
            assert_eq!(e.code, "invalid_input");
            let e = CollectorClient::app_path("web", bad, &[]).expect_err(bad);
            assert_eq!(e.code, "invalid_input");
        }
    }

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody::new(code, message)).expect("json")
    }

    #[test]
    fn errors_map_from_status_and_body() {
        let url = "http://100.64.0.5:7080";
        let cases: &[(u16, Vec<u8>, &str, &[&str])] = &[
            (
                401,
                body("unauthorized", "missing or invalid API key"),
                "unauthorized",
                &[url, "Check the key in Settings"],
            ),
            (401, b"".to_vec(), "unauthorized", &[url]),
            (
                403,
                body(
                    "forbidden",
                    "this needs the operator role; your key \"ro\" is viewer",
                ),
                "forbidden",
                &["operator role", "role"],
            ),
            (
                404,
                body("host_not_found", "no host named \"x\""),
                "not_found",
                &["no host named \"x\""],
            ),
            (
                412,
                body("stale_etag", "the file changed"),
                "conflict",
                &["changed on the host", "Reload"],
            ),
            (412, b"<html>".to_vec(), "conflict", &["Reload"]),
            (
                400,
                body("bad_request", "`kind` = \"x\": use one of"),
                "invalid_input",
                &["`kind`"],
            ),
            (
                422,
                body("unprocessable", "bad key name"),
                "invalid_input",
                &["bad key name"],
            ),
            (
                428,
                body("if_match_required", "If-Match is required"),
                "invalid_input",
                &["If-Match"],
            ),
            (
                409,
                body("conflict", "a key named a exists"),
                "conflict",
                &["a key named a exists"],
            ),
            (
                502,
                body(
                    "agent_unreachable",
                    "the agent of \"web-1\" did not answer: timed out",
                ),
                "agent_unreachable",
                &["web-1", "timed out"],
            ),
            (
                502,
                body(
                    "agent_auth_failed",
                    "the agent of \"web-1\" refused the collector's token",
                ),
                "agent_auth_failed",
                &["refused the collector's token"],
            ),
            (
                502,
                body("bad_gateway", "upstream"),
                "server",
                &["502", "upstream"],
            ),
            (
                500,
                body("database_failed", "database: disk full"),
                "server",
                &["500", "disk full", url],
            ),
            (
                404,
                b"<html><body>Not Found</body></html>".to_vec(),
                "protocol",
                &[
                    url,
                    "did not answer like a Fleetdeck collector",
                    "404",
                    "check the URL",
                ],
            ),
            (
                502,
                b"<html>Bad Gateway</html>".to_vec(),
                "protocol",
                &[url, "502", "collector is running"],
            ),
            (
                403,
                b"{\"detail\": \"nope\"}".to_vec(),
                "protocol",
                &[url, "403"],
            ),
        ];
        for (status, body, code, contains) in cases {
            let e = error_from_response(url, *status, body);
            assert_eq!(e.code, *code, "{status} {}", String::from_utf8_lossy(body));
            for part in *contains {
                assert!(
                    e.message.contains(part),
                    "{status}: {:?} lacks {part:?}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn the_key_is_never_shown() {
        let key = ApiKey::new("fdk_supersecret".into());
        assert_eq!(format!("{key:?}"), "ApiKey(****)");
        assert_eq!(format!("{:?}", Some(key.clone())), "Some(ApiKey(****))");
        let client = CollectorClient::new("http://h:7080", key).expect("client");
        let shown = format!("{client:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("http://h:7080"), "{shown}");
    }
}

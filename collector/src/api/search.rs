//! `GET /v1/logs/search`: one log search run on many apps' agents at once. The collector asks
//! each app's agent for a page of matching lines (journalctl `--grep`, Docker logs filtered in the
//! agent; `since`/`until` bound both) and streams each answer back as it comes, one JSON event per
//! line: the apps searched, each app's lines or error, then `done`. The client merges them. A
//! search with a pattern asks each agent for its page one line at a time as found
//! (`Accept: application/x-ndjson`) and sends what has come at once, then at most every
//! [`PARTIAL_EVERY`] (`partial`), so the first lines do not wait for every journal to be read.
//!
//! Bounds: at most [`MAX_TARGETS`] apps in one search, [`PARALLEL`] agent requests at once and
//! [`PER_HOST`] on one agent (an agent runs two searches at once and refuses a third), each
//! request cut at [`REQUEST_TIMEOUT`]; a client that leaves stops the search.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use fleetdeck_proto::{ErrorBody, LogEntry, LogPage, LogSearchEvent, LogTarget};
use futures_util::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::{mpsc, Semaphore};

use super::{ApiError, AppState};
use crate::agent_client::describe;
use crate::bounded::{read_body, BodyError, MAX_PROXIED_BODY};
use crate::poll::Agent;
use crate::store::{now_ms, query};

/// The most apps one search covers.
pub const MAX_TARGETS: usize = 2_000;
/// Agent requests in flight at once for one search.
pub const PARALLEL: usize = 16;
/// Requests in flight at once to one agent (the agent itself runs two searches at once).
pub const PER_HOST: usize = 2;
/// Lines per app by default, and at most.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 500;
/// While an app's matches stream in, the first are sent as they come, then what has come at most
/// this often; the rest with the app's last event.
pub const PARTIAL_EVERY: Duration = Duration::from_millis(500);
/// The longest line of an agent's streamed page (an entry's message is cut at 64 KiB; escaped
/// as JSON it may grow six times).
const MAX_ENTRY_LINE: usize = 512 * 1024;
/// How long one agent may take to answer (its own search deadline is 5 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often an agent that answers "busy" (429) is asked again, and how long to wait between.
const BUSY_RETRIES: u32 = 3;
const BUSY_WAIT: Duration = Duration::from_millis(500);
/// The longest pattern passed on (the agent's limit).
const MAX_GREP_BYTES: usize = 512;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Comma-separated host names (default: every host).
    hosts: Option<String>,
    /// Comma-separated app names (default: every app of those hosts).
    apps: Option<String>,
    /// A regular expression the line must match (as the agents' `grep`: case-insensitive unless
    /// it has capitals, at most 512 bytes).
    grep: Option<String>,
    /// Only lines at least this important: 0–7 or emerg, alert, crit, err, warning, notice, info, debug.
    priority: Option<String>,
    /// Only lines written at or after this time (Unix milliseconds).
    since: Option<u64>,
    /// Only lines written before this time (Unix milliseconds); page back with the oldest line's time.
    until: Option<u64>,
    /// Lines per app (default 100, at most 500).
    limit: Option<usize>,
}

/// The search as validated: which apps, and the query each agent gets (without its `limit`).
#[derive(Debug, Clone)]
struct Search {
    targets: Vec<LogTarget>,
    query: Vec<(&'static str, String)>,
    limit: usize,
    /// A search with a pattern: its agents stream their pages.
    streamed: bool,
}

fn names(list: Option<&str>, what: &str) -> Result<Option<BTreeSet<String>>, ApiError> {
    let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = BTreeSet::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !crate::config::valid_name(name) {
            return Err(ApiError::BadRequest(format!(
                "{name:?} in {what} is not a name: names are letters, digits, '.', '-' and '_'"
            )));
        }
        out.insert(name.to_owned());
    }
    Ok(Some(out))
}

impl Search {
    fn new(p: SearchParams, fleet: &fleetdeck_proto::Fleet) -> Result<Self, ApiError> {
        let hosts = names(p.hosts.as_deref(), "hosts")?;
        let apps = names(p.apps.as_deref(), "apps")?;
        if let Some(unknown) = hosts
            .iter()
            .flatten()
            .find(|h| !fleet.hosts.iter().any(|f| &&f.name == h))
        {
            return Err(ApiError::HostNotFound(unknown.clone()));
        }
        let targets: Vec<LogTarget> = fleet
            .hosts
            .iter()
            .filter(|h| hosts.as_ref().is_none_or(|s| s.contains(&h.name)))
            .flat_map(|h| {
                h.apps
                    .iter()
                    .filter(|a| apps.as_ref().is_none_or(|s| s.contains(&a.status.name)))
                    .map(|a| LogTarget {
                        host: h.name.clone(),
                        app: a.status.name.clone(),
                    })
            })
            .collect();
        if targets.len() > MAX_TARGETS {
            return Err(ApiError::BadRequest(format!(
                "the search covers {} apps; at most {MAX_TARGETS} at once: pick hosts or apps",
                targets.len()
            )));
        }
        let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit {limit}: from 1 to {MAX_LIMIT} lines per app"
            )));
        }
        let mut query = Vec::new();
        if let Some(grep) = p.grep.filter(|g| !g.is_empty()) {
            if grep.len() > MAX_GREP_BYTES {
                return Err(ApiError::BadRequest(format!(
                    "grep is {} bytes long; at most {MAX_GREP_BYTES}: search for a shorter pattern",
                    grep.len()
                )));
            }
            query.push(("grep", grep));
        }
        if let Some(priority) = p.priority.filter(|p| !p.is_empty()) {
            fleetdeck_proto::parse_log_priority(&priority).map_err(ApiError::BadRequest)?;
            query.push(("priority", priority));
        }
        fleetdeck_proto::check_log_range(p.since, p.until).map_err(ApiError::BadRequest)?;
        query.extend(p.since.map(|s| ("since", s.to_string())));
        query.extend(p.until.map(|u| ("until", u.to_string())));
        let streamed = query.iter().any(|(k, _)| *k == "grep");
        Ok(Self {
            targets,
            query,
            limit,
            streamed,
        })
    }
}

/// Searches the logs of many apps at once; answers newline-delimited JSON events
/// ([`LogSearchEvent`]) as the agents answer.
#[utoipa::path(
    get,
    path = "/v1/logs/search",
    params(SearchParams),
    responses(
        (status = 200, description = "newline-delimited JSON: `started`, then a `result` or `failed` per app as it comes, then `done`", content_type = "application/x-ndjson", body = LogSearchEvent),
        (status = 400, description = "a bad name, priority, range, limit or pattern; too many apps", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "a host that is not in the fleet", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let fleet = state
        .store
        .with_conn(|conn| query::fleet(conn, now_ms()))
        .await?;
    let search = Search::new(p, &fleet)?;
    let (tx, rx) = mpsc::channel::<LogSearchEvent>(PARALLEL);
    tokio::spawn(run(state, search, tx));
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
    });
    let mut response = Body::from_stream(lines).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Runs the search, sending each event as it is known; stops when the client is gone.
async fn run(state: AppState, search: Search, tx: mpsc::Sender<LogSearchEvent>) {
    let started = Instant::now();
    let targets = search.targets.clone();
    if tx
        .send(LogSearchEvent::Started {
            targets: targets.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let per_host: HashMap<String, Arc<Semaphore>> = targets
        .iter()
        .map(|t| (t.host.clone(), Arc::new(Semaphore::new(PER_HOST))))
        .collect();
    let search = Arc::new(search);
    let mut answers = futures_util::stream::iter(targets)
        .map(|target| {
            let (state, search, tx) = (state.clone(), Arc::clone(&search), tx.clone());
            let slot = Arc::clone(&per_host[&target.host]);
            async move {
                let _permit = slot.acquire_owned().await;
                one(&state, &search, target, &tx).await
            }
        })
        .buffer_unordered(PARALLEL);
    let (mut searched, mut failed) = (0, 0);
    loop {
        let event = tokio::select! {
            event = answers.next() => event,
            // A client that left while every agent is still quiet ends the requests in flight
            // now (and frees the agents' search slots), not at the request timeout.
            () = tx.closed() => return,
        };
        let Some(event) = event else { break };
        match event {
            LogSearchEvent::Failed { .. } => failed += 1,
            _ => searched += 1,
        }
        // While this waits, the other apps' answers are not read: a client that left, or stopped
        // reading for the request timeout, ends the search and the requests still in flight.
        if tx.send_timeout(event, REQUEST_TIMEOUT).await.is_err() {
            return;
        }
    }
    let _ = tx
        .send(LogSearchEvent::Done {
            searched,
            failed,
            took_ms: started.elapsed().as_millis() as u64,
        })
        .await;
}

/// One app's lines, as the event that ends its part of the search. A streamed page's lines go
/// out on `tx` as they come (`partial`): the first at once, then at most every [`PARTIAL_EVERY`].
async fn one(
    state: &AppState,
    search: &Search,
    target: LogTarget,
    tx: &mpsc::Sender<LogSearchEvent>,
) -> LogSearchEvent {
    let failed = |status: u16, message: String| LogSearchEvent::Failed {
        host: target.host.clone(),
        app: target.app.clone(),
        status,
        message,
    };
    let result = |entries: Vec<LogEntry>, more: bool, partial: bool| LogSearchEvent::Result {
        host: target.host.clone(),
        app: target.app.clone(),
        entries,
        more,
        partial,
    };
    let Some(agent) = state.agents.get(&target.host) else {
        return failed(404, format!("host {} is no longer configured", target.host));
    };
    let mut page = match AgentPage::open(&agent, &target.app, search).await {
        Ok(page) => page,
        Err((status, message)) => return failed(status, message),
    };
    if let Some(mut entries) = page.whole.take() {
        entries.truncate(search.limit);
        let more = entries.len() >= search.limit;
        return result(entries, more, false);
    }
    let (mut pending, mut total, mut last_sent) = (Vec::new(), 0, None::<Instant>);
    loop {
        // Lines held back (they came within PARTIAL_EVERY of the last sent) go out when it ends,
        // even if the agent sends nothing more for a while (reading a chunk is cancel-safe).
        let flush_at = last_sent
            .filter(|_| !pending.is_empty())
            .map(|t| tokio::time::Instant::from_std(t + PARTIAL_EVERY));
        let next = match flush_at {
            Some(at) => tokio::time::timeout_at(at, page.next_entries()).await.ok(),
            None => Some(page.next_entries().await),
        };
        let send_now = match next {
            None => true,
            Some(Ok(Some(entries))) => {
                let room = search.limit - total;
                total += entries.len().min(room);
                pending.extend(entries.into_iter().take(room));
                if total >= search.limit {
                    break; // an agent that sends more than asked is not read further
                }
                last_sent.is_none_or(|t| t.elapsed() >= PARTIAL_EVERY)
            }
            Some(Ok(None)) => break,
            Some(Err((status, message))) => {
                // What came is shown; the app's end is the error.
                if !pending.is_empty() {
                    let partial = result(std::mem::take(&mut pending), true, true);
                    let _ = tx.send_timeout(partial, REQUEST_TIMEOUT).await;
                }
                if total > 0 {
                    return failed(
                        status,
                        format!("its newest {total} lines came, then: {message}"),
                    );
                }
                return failed(status, message);
            }
        };
        if send_now && !pending.is_empty() {
            // A client that stops reading does not hold the agent's answer open: past the
            // request timeout the page is dropped (and its connection with it).
            let partial = result(std::mem::take(&mut pending), true, true);
            if tx.send_timeout(partial, REQUEST_TIMEOUT).await.is_err() {
                return failed(408, "the client stopped reading the search".into());
            }
            last_sent = Some(Instant::now());
        }
    }
    result(pending, total >= search.limit, false)
}

/// An agent's answer to one app's page: whole (JSON), or one entry a line as found (NDJSON).
struct AgentPage {
    /// A streamed page's answer, read as it comes.
    resp: Option<reqwest::Response>,
    /// A whole page.
    whole: Option<Vec<LogEntry>>,
    buffer: BytesMut,
    /// Bytes of `buffer` already searched for a line end (a line that comes a byte a chunk is
    /// not searched again from its start).
    scanned: usize,
    read: usize,
    /// An error line that came after entries in the same chunk: the entries go first.
    failed: Option<(u16, String)>,
}

impl AgentPage {
    /// Asks `agent` for `app`'s page of the search (streamed when the search has a pattern). The
    /// error is the status and message a `failed` event carries.
    async fn open(agent: &Agent, app: &str, search: &Search) -> Result<Self, (u16, String)> {
        let path = format!("/v1/apps/{app}/logs");
        let mut query = search.query.clone();
        query.push(("limit", search.limit.to_string()));
        let accept = if search.streamed {
            NDJSON
        } else {
            "application/json"
        };
        let mut tries = 0;
        let resp = loop {
            let sent = agent
                .client
                .request(Method::GET, &path)
                .query(&query)
                .header(header::ACCEPT, accept)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await;
            match sent {
                Ok(r)
                    if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
                        && tries < BUSY_RETRIES =>
                {
                    tries += 1;
                    tokio::time::sleep(BUSY_WAIT * tries).await;
                }
                Ok(r) => break r,
                Err(e) => return Err((502, format!("the agent is unreachable: {}", describe(&e)))),
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err((
                502,
                "the agent refused the collector's token: fix the token in the collector's configuration"
                    .into(),
            ));
        }
        if status.is_redirection() {
            return Err((
                502,
                "the agent answered with a redirect, which is never followed".into(),
            ));
        }
        let lines = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(NDJSON));
        if status.is_success() && lines {
            return Ok(Self {
                resp: Some(resp),
                whole: None,
                buffer: BytesMut::new(),
                scanned: 0,
                read: 0,
                failed: None,
            });
        }
        // A whole page (an agent that does not stream answers JSON) or an error.
        let body = match read_body(resp, MAX_PROXIED_BODY).await {
            Ok(b) => b,
            Err(BodyError::TooLarge(n)) => {
                return Err((502, format!("the agent's answer is over {n} bytes")))
            }
            Err(BodyError::Transport(t)) => {
                return Err((502, format!("the agent's answer broke off: {t}")))
            }
        };
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| format!("the agent answered HTTP {}", status.as_u16()));
            return Err((status.as_u16(), message));
        }
        let page = serde_json::from_slice::<LogPage>(&body)
            .map_err(|e| (502, format!("the agent's answer is not a log page: {e}")))?;
        Ok(Self {
            resp: None,
            whole: Some(page.entries),
            buffer: BytesMut::new(),
            scanned: 0,
            read: 0,
            failed: None,
        })
    }

    /// A streamed page's entries that have come since the last call (possibly none), or `None`
    /// at the end. An
    /// error line from the agent, a line that is not an entry, or an answer over its bounds ends
    /// the page with an error.
    async fn next_entries(&mut self) -> Result<Option<Vec<LogEntry>>, (u16, String)> {
        if let Some(failed) = self.failed.take() {
            self.resp = None;
            return Err(failed);
        }
        let Some(resp) = self.resp.as_mut() else {
            return Ok(None);
        };
        let chunk = resp.chunk().await.map_err(|e| {
            (
                502,
                format!("the agent's answer broke off: {}", describe(&e)),
            )
        })?;
        let Some(chunk) = chunk else {
            self.resp = None;
            return match self.buffer.iter().all(u8::is_ascii_whitespace) {
                true => Ok(None),
                false => Err((502, "the agent's answer ended inside a line".into())),
            };
        };
        self.read += chunk.len();
        if self.read > MAX_PROXIED_BODY {
            return Err((
                502,
                format!("the agent's answer is over {MAX_PROXIED_BODY} bytes"),
            ));
        }
        self.buffer.extend_from_slice(&chunk);
        let mut entries = Vec::new();
        while let Some(at) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + at;
            let line = self.buffer.split_to(end + 1);
            self.scanned = 0;
            let line = &line[..end];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<LogEntry>(line) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    let failed = match serde_json::from_slice::<ErrorBody>(line) {
                        Ok(body) => (agent_error_status(&body.error.code), body.error.message),
                        Err(_) => (
                            502,
                            format!("the agent sent a line that is not a log entry: {e}"),
                        ),
                    };
                    if entries.is_empty() {
                        self.resp = None;
                        return Err(failed);
                    }
                    self.failed = Some(failed);
                    return Ok(Some(entries));
                }
            }
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_ENTRY_LINE {
            return Err((
                502,
                format!("the agent sent a line over {MAX_ENTRY_LINE} bytes"),
            ));
        }
        Ok(Some(entries))
    }
}

/// The status a `failed` event carries for an error line an agent ended its stream with: what
/// the client asked for was refused (400), or the agent failed (502).
fn agent_error_status(code: &str) -> u16 {
    match code {
        "bad_request" | "grep_too_costly" | "search_too_costly" => 400,
        "client_too_slow" => 408,
        _ => 502,
    }
}

/// The media type of a page streamed one entry a line.
const NDJSON: &str = "application/x-ndjson";

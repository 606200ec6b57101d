//! A client that follows a Server-Sent Events stream the way the desktop does: it remembers the id
//! of the last event it got, and when the stream ends, errors or stays silent (not even a
//! keep-alive) for too long, it reopens it after a backoff with `Last-Event-ID` set to that id. It
//! records every event it got, in order, and every break, so a test can check that nothing was
//! lost or doubled across an outage.

#![allow(dead_code)] // each test binary uses its own subset

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;

/// How long opening a stream may take (the collector answers 502 after 10 s when the agent is
/// unreachable).
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// One event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
struct Shared {
    items: Vec<Item>,
    /// Streams opened (200 event streams); the first is not a reconnect.
    opens: usize,
    /// Opens that failed (status, timeout, connection error).
    failed_opens: usize,
    /// Why each open stream ended.
    breaks: Vec<String>,
}

/// A following client running in the background until dropped.
#[derive(Debug)]
pub struct Follower {
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

/// Why the body stopped: a transport error or silence.
#[derive(Debug)]
struct BodyError(String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Follower {
    /// Follows `url` with the bearer `key`, resuming after `after` if given. A stream that sends
    /// nothing for `silence` is treated as broken.
    pub fn start(url: String, key: String, after: Option<String>, silence: Duration) -> Self {
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client");
            let mut last = after;
            let mut backoff = FIRST_BACKOFF;
            loop {
                let mut req = http
                    .get(&url)
                    .bearer_auth(&key)
                    .header("accept", "text/event-stream");
                if let Some(id) = &last {
                    req = req.header("last-event-id", id.as_str());
                }
                match tokio::time::timeout(OPEN_TIMEOUT, req.send()).await {
                    Ok(Ok(resp)) if resp.status() == 200 => {
                        lock(&state).opens += 1;
                        backoff = FIRST_BACKOFF;
                        let why = read(resp, silence, &state, &mut last).await;
                        lock(&state).breaks.push(why);
                    }
                    // A refusal (502 while the agent is unreachable), a connection error or a
                    // timeout: try again.
                    Ok(_) | Err(_) => lock(&state).failed_opens += 1,
                }
                // Retry pacing, as the desktop does; not a wait for a condition.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        Self { shared, task }
    }

    /// Every event received so far, in order.
    pub fn items(&self) -> Vec<Item> {
        lock(&self.shared).items.clone()
    }

    /// How many times the stream was reopened after a break.
    pub fn reconnects(&self) -> usize {
        lock(&self.shared).opens.saturating_sub(1)
    }

    pub fn failed_opens(&self) -> usize {
        lock(&self.shared).failed_opens
    }

    /// Why each stream ended.
    pub fn breaks(&self) -> Vec<String> {
        lock(&self.shared).breaks.clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one open stream until it ends; returns why it ended.
async fn read(
    resp: reqwest::Response,
    silence: Duration,
    state: &Mutex<Shared>,
    last: &mut Option<String>,
) -> String {
    let body = Box::pin(resp.bytes_stream());
    let watched = futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(silence, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(e))) => Some((Err(BodyError(format!("broke: {e}"))), None)),
            Ok(None) => None,
            Err(_) => Some((Err(BodyError(format!("silent for {silence:?}"))), None)),
        }
    });
    let mut events = Box::pin(watched.eventsource());
    loop {
        match events.next().await {
            Some(Ok(event)) => {
                if !event.id.is_empty() {
                    *last = Some(event.id.clone());
                }
                lock(state).items.push(Item {
                    id: event.id,
                    event: event.event,
                    data: event.data,
                });
            }
            Some(Err(e)) => return e.to_string(),
            None => return "ended".into(),
        }
    }
}

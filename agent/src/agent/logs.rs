//! An app's logs, whatever their source: pages (whole, or streamed as a search finds them) and
//! follows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fleetdeck_proto::{LogEntry, LogPage};
use futures_util::stream::{self, StreamExt};

use super::{Agent, LogError, LogFollow};
use crate::config::AppSource;
use crate::docker::logs::parse_cursor as docker_cursor;
use crate::docker::DockerError;
use crate::journal::{valid_cursor, JournalError, LogQuery};
use crate::search::{SearchError, SEARCH_DEADLINE};

/// Entries a streamed search holds for its client before journalctl waits.
const STREAM_BUFFER: usize = 64;

/// A page's entries as they come; an error ends it.
pub type LogPageStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogEntry, LogError>> + Send>>;

/// What a journalctl failure means to the client: a refused query, a search past its deadline,
/// or a source that failed.
fn journal_error(e: JournalError, search: bool) -> LogError {
    match e {
        JournalError::Query(m) => LogError::BadQuery(m),
        JournalError::Timeout(_) if search => LogError::Search(SearchError::Deadline),
        e => LogError::Source(e.to_string()),
    }
}

impl Agent {
    /// A page of app `name`'s logs, newest first.
    pub async fn log_page(&self, name: &str, query: &LogQuery) -> Result<LogPage, LogError> {
        let app = self
            .app_config(name)
            .ok_or_else(|| LogError::NotFound(name.to_owned()))?;
        // Held until the page is done; a search past the deadline is stopped, not left running.
        let _slot = query
            .grep
            .is_some()
            .then(|| self.searches.begin())
            .transpose()?;
        let entries = match &app.source {
            AppSource::SystemdUnit(unit) => {
                if let Some(c) = query.before.as_deref().filter(|c| !valid_cursor(c)) {
                    return Err(LogError::BadCursor(c.to_owned()));
                }
                let search = query.grep.is_some();
                self.journal
                    .page(unit, query)
                    .await
                    .map_err(|e| journal_error(e, search))?
            }
            AppSource::DockerContainer(c) => {
                if let Some(b) = query
                    .before
                    .as_deref()
                    .filter(|b| docker_cursor(b).is_none())
                {
                    return Err(LogError::BadCursor(b.to_owned()));
                }
                self.docker.log_page(c, query).await.map_err(|e| match e {
                    DockerError::Search(e) => LogError::Search(e),
                    e => LogError::Source(e.to_string()),
                })?
            }
        };
        Ok(LogPage { entries })
    }

    /// App `name`'s page as a stream: a unit's search sends each match as journalctl finds it
    /// (see [`Journal::page_stream`]); any other page comes whole, as [`log_page`](Self::log_page)
    /// answers it. A search holds its slot until journalctl is done, the deadline passes or the
    /// stream is dropped. The stream is fused: it may be polled again after its end.
    pub async fn log_page_stream(
        &self,
        name: &str,
        query: LogQuery,
    ) -> Result<LogPageStream, LogError> {
        let app = self
            .app_config(name)
            .ok_or_else(|| LogError::NotFound(name.to_owned()))?;
        let unit = match &app.source {
            AppSource::SystemdUnit(unit) if query.grep.is_some() => unit,
            _ => {
                let page = self.log_page(name, &query).await?;
                return Ok(Box::pin(
                    stream::iter(page.entries.into_iter().map(Ok)).fuse(),
                ));
            }
        };
        let slot = self.searches.begin()?;
        if let Some(c) = query.before.as_deref().filter(|c| !valid_cursor(c)) {
            return Err(LogError::BadCursor(c.to_owned()));
        }
        let entries = self
            .journal
            .page_stream(unit, &query)
            .await
            .map_err(|e| journal_error(e, true))?;
        // journalctl is read by a task of its own that holds the search slot: the slot is freed
        // when journalctl is done, at the deadline whether or not the client reads (one that
        // stops reading would otherwise hold it for as long as its connection stays open), or as
        // soon as the client leaves, even while journalctl has found nothing yet.
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let cut = Arc::new(AtomicBool::new(false));
        let cut_by_task = Arc::clone(&cut);
        tokio::spawn(async move {
            let _slot = slot;
            let deadline = tokio::time::Instant::now() + SEARCH_DEADLINE;
            let mut entries = std::pin::pin!(entries);
            loop {
                let entry = tokio::select! {
                    entry = entries.next() => entry,
                    // Dropping the stream kills journalctl (kill_on_drop).
                    () = tx.closed() => return,
                };
                let Some(entry) = entry else { return };
                match tokio::time::timeout_at(deadline, tx.send(entry)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return, // the client left
                    Err(_) => return cut_by_task.store(true, Ordering::Relaxed),
                }
            }
        });
        let entries = stream::unfold((rx, cut, false), |(mut rx, cut, ended)| async move {
            if ended {
                return None;
            }
            match rx.recv().await {
                Some(entry) => Some((entry.map_err(|e| journal_error(e, true)), (rx, cut, false))),
                // The client read too slowly to be sent every line by the deadline.
                None if cut.load(Ordering::Relaxed) => Some((
                    Err(LogError::Search(SearchError::SlowReader)),
                    (rx, cut, true),
                )),
                None => None,
            }
        });
        Ok(Box::pin(entries.fuse()))
    }

    /// Follows app `name`'s logs after `after` (a cursor of one of its entries) or from now.
    pub async fn log_follow(
        &self,
        name: &str,
        after: Option<String>,
    ) -> Result<LogFollow, LogError> {
        let app = self
            .app_config(name)
            .ok_or_else(|| LogError::NotFound(name.to_owned()))?;
        match &app.source {
            AppSource::SystemdUnit(unit) => {
                if let Some(c) = after.as_deref().filter(|c| !valid_cursor(c)) {
                    return Err(LogError::BadCursor(c.to_owned()));
                }
                let s = self
                    .journal
                    .follow(unit, after)
                    .await
                    .map_err(|e| LogError::Source(e.to_string()))?;
                Ok(Box::pin(s))
            }
            AppSource::DockerContainer(c) => {
                let after = match after {
                    Some(a) => Some(docker_cursor(&a).ok_or(LogError::BadCursor(a))?),
                    None => None,
                };
                let s = self
                    .docker
                    .log_follow(c, after)
                    .await
                    .map_err(|e| LogError::Source(e.to_string()))?;
                Ok(Box::pin(s))
            }
        }
    }
}

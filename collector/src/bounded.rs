//! Reading what an agent sends with a byte cap: the collector does not trust agents. A body is
//! read up to a limit and refused past it (an answer that announces more is refused unread), and
//! an SSE stream ends when one event grows past its limit, so a huge, endless or malformed answer
//! costs a bounded amount of memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// The most a poll's answer may hold (a snapshot, a page of samples).
pub const MAX_POLL_BODY: usize = 16 * 1024 * 1024;
/// The most a proxied page (logs, `.env`, an action's outcome) may hold.
pub const MAX_PROXIED_BODY: usize = 16 * 1024 * 1024;
/// The most an agent's error answer may hold: its message is all the collector keeps.
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most one Server-Sent Event may hold, its lines together (a log entry's message is cut at
/// 64 KiB by the agent, so its JSON stays far below).
pub const MAX_SSE_EVENT: usize = 1024 * 1024;

/// Why a body was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {} (the collector's limit)", human(*.0))]
    TooLarge(usize),
    #[error("{0}")]
    Transport(String),
}

/// `16 MiB`, `64 KiB`, `100 bytes`.
pub fn human(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads `resp`'s body, at most `limit` bytes. A `Content-Length` over the limit is refused before
/// reading; a body that grows past it is dropped as soon as it does (the connection with it).
/// Deadlines are the request's (reqwest's timeout covers the body).
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let expected = resp.content_length().unwrap_or(0) as usize;
    let mut body = Vec::with_capacity(expected.min(limit));
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| BodyError::Transport(crate::agent_client::describe(&e)))?;
        let Some(chunk) = chunk else {
            return Ok(Bytes::from(body));
        };
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
}

/// Where a byte stream stands in the SSE grammar: how long the current event is so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventMeter {
    /// Bytes since the last blank line (the end of an event).
    event: usize,
    /// Whether the current line is empty so far.
    line_empty: bool,
    /// Whether the previous byte was a CR (a CRLF is one line end).
    after_cr: bool,
}

impl EventMeter {
    pub fn new() -> Self {
        Self {
            event: 0,
            line_empty: true,
            after_cr: false,
        }
    }

    /// Takes in `chunk`; false when an event grew past `limit` bytes.
    pub fn feed(&mut self, chunk: &[u8], limit: usize) -> bool {
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    if self.line_empty {
                        // A blank line: the event ends here.
                        self.event = 0;
                    } else {
                        self.event += 1;
                    }
                    self.line_empty = true;
                    self.after_cr = b == b'\r';
                }
                _ => {
                    self.event += 1;
                    self.line_empty = false;
                    self.after_cr = false;
                }
            }
            if self.event > limit {
                return false;
            }
        }
        true
    }
}

/// An SSE byte stream that fails (and so ends) when one event grows past `limit` bytes: nothing
/// downstream (an SSE parser, the desktop) ever holds more of one event than that.
pub struct BoundedEvents<S> {
    inner: S,
    meter: EventMeter,
    limit: usize,
    done: bool,
}

impl<S> BoundedEvents<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            meter: EventMeter::new(),
            limit,
            done: false,
        }
    }
}

impl<S> std::fmt::Debug for BoundedEvents<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedEvents")
            .field("meter", &self.meter)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// One event of the stream was over the limit.
#[derive(Debug, thiserror::Error)]
#[error("an event of the agent's stream is larger than {} (the collector's limit)", human(*.0))]
pub struct EventTooLarge(pub usize);

impl<S, E> Stream for BoundedEvents<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if this.meter.feed(&chunk, this.limit) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    this.done = true;
                    Poll::Ready(Some(Err(EventTooLarge(this.limit).to_string())))
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.to_string()))),
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (stream text fed in one go, limit, whether it stays within the limit)
    #[test]
    fn events_are_measured_between_blank_lines() {
        let cases: &[(&str, usize, bool)] = &[
            ("data: 12345\n\n", 12, true),
            ("data: 123456\n\n", 12, false),
            // Two events, each within the limit, however long the stream.
            ("data: 1234\n\ndata: 1234\n\n", 11, true),
            // One event of many lines counts its lines together.
            ("data: 1\ndata: 2\ndata: 3\n\n", 12, false),
            ("data: 1\ndata: 2\n\n", 16, true),
            // CRLF and CR line ends: a CRLF is not a blank line.
            ("data: 1\r\ndata: 2\r\ndata: 3\r\n\r\n", 12, false),
            ("data: 1234\r\n\r\ndata: 1234\r\n\r\n", 11, true),
            ("data: 1234\r\rdata: 1234\r\r", 11, true),
            // A line that never ends.
            (&"x".repeat(100), 99, false),
            // Keep-alive comments are events of their own.
            (":\n\n:\n\n:\n\n", 2, true),
        ];
        for (text, limit, within) in cases {
            let mut meter = EventMeter::new();
            assert_eq!(
                meter.feed(text.as_bytes(), *limit),
                *within,
                "{text:?} / {limit}"
            );
        }
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let text = "data: 1234\r\n\r\ndata: 1234\r\n\r\n";
        for split in 0..text.len() {
            let mut meter = EventMeter::new();
            let (a, b) = text.as_bytes().split_at(split);
            assert!(meter.feed(a, 11) && meter.feed(b, 11), "split at {split}");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(16 * 1024 * 1024), "16 MiB");
        assert_eq!(human(64 * 1024), "64 KiB");
        assert_eq!(human(100), "100 bytes");
    }
}

//! A log search over many apps at once (`GET /v1/logs/search`): the collector streams one JSON
//! event per line as its agents answer; this reads them as they come, each line bounded.

use super::errors::{protocol, unreachable};
use super::CollectorClient;
use bytes::{Buf, BytesMut};
use fleetdeck_proto::desktop::{CommandError, LogSearchQuery};
use fleetdeck_proto::LogSearchEvent;
use futures_util::stream::{self, Stream, StreamExt};

/// The longest event line read (an app's page: at most 500 lines of at most 64 KiB each, as JSON).
pub const MAX_EVENT_LINE: usize = 48 * 1024 * 1024;

impl CollectorClient {
    /// Starts a search; its events come as the agents answer, ending with `done`. The stream ends
    /// after its first error, or when the collector has been silent for the client's silence limit.
    pub async fn logs_search(
        &self,
        query: &LogSearchQuery,
    ) -> Result<
        impl Stream<Item = Result<LogSearchEvent, CommandError>> + Send + 'static,
        CommandError,
    > {
        let mut url = self.endpoint(&["v1", "logs", "search"]);
        {
            let mut pairs = url.query_pairs_mut();
            if !query.hosts.is_empty() {
                pairs.append_pair("hosts", &query.hosts.join(","));
            }
            if !query.apps.is_empty() {
                pairs.append_pair("apps", &query.apps.join(","));
            }
            if let Some(grep) = query.grep.as_deref().filter(|g| !g.is_empty()) {
                pairs.append_pair("grep", grep);
            }
            if let Some(p) = query.priority.as_deref().filter(|p| !p.is_empty()) {
                pairs.append_pair("priority", p);
            }
            if let Some(ms) = query.since_ms {
                pairs.append_pair("since", &ms.to_string());
            }
            if let Some(ms) = query.until_ms {
                pairs.append_pair("until", &ms.to_string());
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        let resp = self
            .open_streaming(url, None, "application/x-ndjson", "JSON lines")
            .await?;
        Ok(ndjson_events(
            self.url().to_owned(),
            resp.bytes_stream(),
            self.silence_limit,
        ))
    }
}

/// Splits a byte stream into JSON events, one per line. A line over [`MAX_EVENT_LINE`], a line
/// that is not an event, a broken connection or `silence` without a byte each end the stream with
/// one error.
pub fn ndjson_events<S, E>(
    url: String,
    bytes: S,
    silence: std::time::Duration,
) -> impl Stream<Item = Result<LogSearchEvent, CommandError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    struct Reader<S> {
        bytes: S,
        buffer: BytesMut,
        done: bool,
    }
    let reader = Reader {
        bytes,
        buffer: BytesMut::new(),
        done: false,
    };
    stream::unfold(reader, move |mut r| {
        let url = url.clone();
        async move {
            if r.done {
                return None;
            }
            loop {
                if let Some(end) = r.buffer.iter().position(|b| *b == b'\n') {
                    let line = r.buffer.split_to(end);
                    r.buffer.advance(1);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let event = serde_json::from_slice::<LogSearchEvent>(&line).map_err(|e| {
                        protocol(&url, &format!("a log search event is not valid: {e}"))
                    });
                    r.done = event.is_err();
                    return Some((event, r));
                }
                if r.buffer.len() > MAX_EVENT_LINE {
                    r.done = true;
                    let e = protocol(
                        &url,
                        &format!("a log search event is over {MAX_EVENT_LINE} bytes"),
                    );
                    return Some((Err(e), r));
                }
                match tokio::time::timeout(silence, r.bytes.next()).await {
                    Ok(Some(Ok(chunk))) => r.buffer.extend_from_slice(&chunk),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        r.done = true;
                        return Some((Err(unreachable(&url, &e.to_string())), r));
                    }
                    Err(_) => {
                        r.done = true;
                        let e = unreachable(
                            &url,
                            &format!("the log search sent nothing for {} s", silence.as_secs()),
                        );
                        return Some((Err(e), r));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<bytes::Bytes, String>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(bytes::Bytes::copy_from_slice(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn events_split_across_chunks_are_read_whole() {
        let done = br#"{"event":"done","searched":2,"failed":0,"took_ms":5}"#;
        let events: Vec<_> = ndjson_events(
            "http://c".into(),
            chunks(&[
                br#"{"event":"started","targets":[{"host":"a","app""#,
                b":\"x\"}]}\n\n",
                &done[..10],
                &done[10..],
                b"\n",
            ]),
            Duration::from_secs(5),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            matches!(events[0], Ok(LogSearchEvent::Started { ref targets }) if targets.len() == 1)
        );
        assert!(matches!(
            events[1],
            Ok(LogSearchEvent::Done { searched: 2, .. })
        ));
    }

    #[tokio::test]
    async fn a_bad_line_ends_the_stream_with_one_error_naming_it() {
        let events: Vec<_> = ndjson_events(
            "http://c".into(),
            chunks(&[b"{\"event\":\"nonsense\"}\n{\"event\":\"done\",\"searched\":0,\"failed\":0,\"took_ms\":0}\n"]),
            Duration::from_secs(5),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 1);
        let e = events[0].as_ref().expect_err("refused");
        assert!(e.message.contains("log search event"), "{}", e.message);
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_at_the_cap() {
        let big = vec![b'x'; 1024 * 1024];
        let parts: Vec<&[u8]> = std::iter::repeat_n(big.as_slice(), 50).collect();
        let events: Vec<_> =
            ndjson_events("http://c".into(), chunks(&parts), Duration::from_secs(5))
                .collect()
                .await;
        assert_eq!(events.len(), 1);
        assert!(events[0]
            .as_ref()
            .is_err_and(|e| e.message.contains("bytes")));
    }
}

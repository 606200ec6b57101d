//! How the event follower copes with streams that break, repeat themselves or fall silent. The
//! collector never misbehaves like this on purpose, so a small SSE server on a real socket plays
//! one that does (what a flaky network or proxy would show).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fleetdeck_desktop_core::follow::{follow_events, StreamUpdate};
use fleetdeck_proto::{FleetEvent, FleetEventKind, Severity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

fn event(id: i64) -> FleetEvent {
    FleetEvent {
        id,
        at_unix_ms: 1_700_000_000_000 + id as u64,
        severity: Severity::Critical,
        source: "agent-stream".into(),
        kind: FleetEventKind::Transition,
        host: "web-1".into(),
        app: Some("api".into()),
        from: Some("running".into()),
        to: Some("failed".into()),
        exit: None,
        message: format!("event {id}"),
        context: None,
        check: None,
        threshold: None,
    }
}

fn frame(id: i64) -> String {
    format!(
        "event: fleet\nid: {id}\ndata: {}\n\n",
        serde_json::to_string(&event(id)).expect("json")
    )
}

/// Reads a request head; its `Last-Event-ID`, if any.
async fn read_head(socket: &mut TcpStream) -> Option<Option<String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    Some(head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("last-event-id")
            .then(|| value.trim().to_owned())
    }))
}

const HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";

#[derive(Clone, Copy)]
enum Behaviour {
    /// Each connection: the event before the resume point again, two new ones, then close.
    RepeatThenClose,
    /// Each connection: headers, then nothing at all.
    Silent,
    /// Each connection: one event, then keep-alive comments every 100 ms, forever.
    KeepAlive,
}

/// Serves `behaviour` on a real socket; records each connection's `Last-Event-ID`.
async fn serve(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Some(last) = read_head(&mut socket).await else {
                    return;
                };
                record.lock().expect("lock").push(last.clone());
                let after: i64 = last.as_deref().and_then(|l| l.parse().ok()).unwrap_or(0);
                let _ = socket.write_all(HEAD.as_bytes()).await;
                match behaviour {
                    Behaviour::RepeatThenClose => {
                        let mut body = String::new();
                        if after > 0 {
                            body.push_str(&frame(after));
                        }
                        body.push_str(&frame(after + 1));
                        body.push_str(&frame(after + 2));
                        let _ = socket.write_all(body.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    Behaviour::Silent => {
                        // Hold the connection open without a byte until the client leaves.
                        let _ = socket.read(&mut [0u8; 1]).await;
                    }
                    Behaviour::KeepAlive => {
                        let _ = socket.write_all(frame(after + 1).as_bytes()).await;
                        loop {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if socket.write_all(b":\n\n").await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

fn client(url: &str) -> CollectorClient {
    CollectorClient::new(url, ApiKey::new("fdk_test".into()))
        .expect("client")
        .with_silence_limit(Duration::from_millis(600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_is_resumed_and_nothing_is_doubled() {
    let (url, seen) = serve(Behaviour::RepeatThenClose).await;
    let (tx, mut rx) = mpsc::channel(16);
    // (Some(0): with None the follower first reads /v1/events, which this server does not serve)
    let task = tokio::spawn(follow_events(client(&url), Some(0), tx));
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut ids, mut connects, mut breaks) = (Vec::new(), 0, 0);
    while ids.len() < 6 {
        match timeout_at(deadline, rx.recv())
            .await
            .expect("six events within 20 s")
            .expect("runs")
        {
            StreamUpdate::Connected => connects += 1,
            StreamUpdate::Event(e) => ids.push(e.id),
            StreamUpdate::Disconnected(e) => {
                assert_eq!(e.code, "unreachable", "{e:?}");
                assert!(e.message.contains(&url), "{}", e.message);
                breaks += 1;
            }
        }
    }
    // The server repeated the last event on every reconnect: none of them got through.
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    assert_eq!((connects, breaks), (3, 2));
    let resumed: Vec<Option<String>> = seen.lock().expect("lock").iter().take(3).cloned().collect();
    assert_eq!(
        resumed,
        [Some("0".into()), Some("2".into()), Some("4".into())]
    );
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the follower ends when its receiver is dropped")
        .expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_reopened() {
    let (url, seen) = serve(Behaviour::Silent).await;
    let (tx, mut rx) = mpsc::channel(16);
    let _task = tokio::spawn(follow_events(client(&url), Some(41), tx));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut updates = Vec::new();
    while updates.len() < 3 {
        updates.push(
            timeout_at(deadline, rx.recv())
                .await
                .expect("updates within 10 s")
                .expect("runs"),
        );
    }
    assert_eq!(updates[0], StreamUpdate::Connected);
    let StreamUpdate::Disconnected(e) = &updates[1] else {
        panic!("then {:?}", updates[1]);
    };
    assert!(e.message.contains("sent nothing"), "{}", e.message);
    assert_eq!(updates[2], StreamUpdate::Connected, "reopened");
    assert_eq!(
        seen.lock().expect("lock")[1],
        Some("41".into()),
        "resumed after 41"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_keep_a_quiet_stream_open() {
    let (url, _seen) = serve(Behaviour::KeepAlive).await;
    let (tx, mut rx) = mpsc::channel(16);
    let _task = tokio::spawn(follow_events(client(&url), Some(0), tx));
    let deadline = Instant::now() + Duration::from_secs(10);
    assert_eq!(
        timeout_at(deadline, rx.recv())
            .await
            .expect("connected")
            .expect("runs"),
        StreamUpdate::Connected
    );
    let first = timeout_at(deadline, rx.recv())
        .await
        .expect("an event")
        .expect("runs");
    assert!(
        matches!(first, StreamUpdate::Event(ref e) if e.id == 1),
        "{first:?}"
    );
    // Three silence limits pass with only keep-alives: the stream is not taken for dead.
    let quiet = Instant::now() + Duration::from_millis(1_800);
    if let Ok(update) = timeout_at(quiet, rx.recv()).await {
        panic!("the stream should stay open and quiet, got {update:?}");
    }
}

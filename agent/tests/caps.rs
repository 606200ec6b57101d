//! Resource caps of the real agent against greedy and slow clients: log follows and event
//! streams per client address and in all (429 / 503 with Retry-After, freed when a client
//! leaves), connections (one over the cap is answered 503 at once), and clients that send their
//! headers slowly or never (closed after the header timeout).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client whose connections come from `source` (a loopback address of its own).
fn client_from(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .build()
        .expect("client")
}

async fn open(client: &reqwest::Client, agent: &RunningAgent, path: &str) -> reqwest::Response {
    client
        .get(agent.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_and_event_streams_are_capped_per_client_and_in_all() {
    require_testbed();
    let unit = TransientUnit::start("caps", &[], "echo hello; sleep 100000");
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(&unit_app("web", &unit.name)));
    let follow = "/v1/apps/web/logs/stream";
    let (a, b, c) = (
        client_from(Ipv4Addr::new(127, 0, 0, 1)),
        client_from(Ipv4Addr::new(127, 0, 0, 2)),
        client_from(Ipv4Addr::new(127, 0, 0, 3)),
    );

    let mut held = Vec::new();
    for _ in 0..16 {
        let resp = open(&a, &agent, follow).await;
        assert_eq!(resp.status(), 200);
        held.push(resp);
    }
    let message =
        assert_refused(open(&a, &agent, follow).await, 429, "5", "too_many_streams").await;
    assert!(message.contains("16 log follows"), "{message}");
    for _ in 0..16 {
        let resp = open(&b, &agent, follow).await;
        assert_eq!(resp.status(), 200, "another client has its own share");
        held.push(resp);
    }
    let message =
        assert_refused(open(&c, &agent, follow).await, 503, "5", "too_many_streams").await;
    assert!(message.contains("32 log follows"), "{message}");
    assert_eq!(
        children_running(agent.pid(), "journalctl", None),
        32,
        "one journalctl per follow"
    );

    // A client that leaves frees its slot at once: anyone may take it.
    drop(held.pop());
    let again = wait_for("a freed slot", Duration::from_secs(5), || async {
        let resp = open(&c, &agent, follow).await;
        (resp.status() == 200).then_some(resp)
    })
    .await;
    held.push(again);
    assert!(children_running(agent.pid(), "journalctl", None) <= 32);

    // Event streams: 4 per client.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let resp = open(&a, &agent, "/v1/events").await;
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    let message = assert_refused(
        open(&a, &agent, "/v1/events").await,
        429,
        "5",
        "too_many_streams",
    )
    .await;
    assert!(message.contains("4 event streams"), "{message}");

    // Nothing else waits on the caps.
    assert_eq!(agent.get("/healthz").await.status(), 200);
    assert_eq!(agent.get("/v1/snapshot").await.status(), 200);
    drop(held);
    drop(streams);
    wait_for("every journalctl gone", Duration::from_secs(5), || async {
        (children_running(agent.pid(), "journalctl", None) == 0).then_some(())
    })
    .await;
}

/// Reads from `conn` until the peer closes it; what it sent.
async fn read_to_close(conn: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_connections_cannot_hold_the_agent() {
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(""));
    let addr: SocketAddr = agent.addr;

    // Headers sent slowly, or never, or a kept-alive connection left idle: closed after the
    // 10 s header timeout.
    let started = Instant::now();
    let mut partial = tokio::net::TcpStream::connect(addr).await.expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("send");
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("send");
    let mut answer = [0u8; 256];
    let n = idle.read(&mut answer).await.expect("an answer");
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    for (what, conn) in [
        ("partial headers", &mut partial),
        ("nothing sent", &mut silent),
        ("idle keep-alive", &mut idle),
    ] {
        read_to_close(conn, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{what}: still open after 20 s"));
    }
    let took = started.elapsed();
    println!("slow connections closed after {took:?}");
    assert!(
        took >= Duration::from_secs(9),
        "not before the timeout: {took:?}"
    );

    // 256 connections held open: the next is answered 503 at once, and served again once
    // they go.
    let mut held = Vec::new();
    for _ in 0..256 {
        held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let over = wait_for("the cap reached", Duration::from_secs(5), || async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .ok()?;
        let text = read_to_close(&mut conn, Duration::from_secs(5)).await?;
        text.starts_with("HTTP/1.1 503").then_some(text)
    })
    .await;
    assert!(over.contains("retry-after: 5"), "{over}");
    assert!(over.contains("too_many_connections"), "{over}");
    drop(held);
    wait_for("served again", Duration::from_secs(5), || async {
        let resp = reqwest::get(agent.url("/healthz")).await.ok()?;
        (resp.status() == 200).then_some(())
    })
    .await;
}

//! `CollectorClient::app_metrics` against a small HTTP server on a real socket that plays the
//! collector's `GET /v1/hosts/{host}/apps/{app}/metrics` (the collector's own route arrives with
//! issue 14's collector work; the wire shape is `fleetdeck_proto::AppMetrics`).

use std::sync::{Arc, Mutex};

use fleetdeck_desktop_core::{ApiKey, CollectorClient};
use fleetdeck_proto::{AppMetricPoint, AppMetrics, CheckPoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn metrics() -> AppMetrics {
    AppMetrics {
        host: "web-1".into(),
        app: "api server".into(),
        from: "2026-12-04T03:00:00Z".into(),
        to: "2026-12-04T04:00:00Z".into(),
        step_ms: 15_000,
        resolution: "raw".into(),
        points: vec![AppMetricPoint {
            ts: "2026-12-04T03:00:00Z".into(),
            ts_unix_ms: 1_796_353_200_000,
            samples: 1,
            cpu_percent: Some(12.5),
            cpu_percent_max: Some(30.0),
            memory_bytes: Some(100 << 20),
            memory_bytes_max: Some(120 << 20),
            memory_limit_bytes: Some(512 << 20),
            net_rx_bytes_per_sec: None,
            net_tx_bytes_per_sec: None,
            checks: vec![CheckPoint {
                name: "health".into(),
                latency_ms: Some(12.0),
                ok_ratio: 1.0,
            }],
        }],
    }
}

/// Answers every request with `status` and `body`; records each request's head.
async fn serve(status: &'static str, body: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let record = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (record, body) = (record.clone(), body.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                record
                    .lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn app_metrics_asks_the_app_route_and_reads_the_answer() {
    let (url, heads) = serve("200 OK", serde_json::to_string(&metrics()).expect("json")).await;
    let client = CollectorClient::new(&url, ApiKey::new("fdk_test".into())).expect("client");
    let got = client
        .app_metrics(
            "web-1",
            "api server",
            "2026-12-04T03:00:00Z",
            "2026-12-04T04:00:00Z",
            "15s",
        )
        .await
        .expect("app metrics");
    assert_eq!(got, metrics());
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let request_line = heads[0].lines().next().expect("a request line");
    assert_eq!(
        request_line,
        "GET /v1/hosts/web-1/apps/api%20server/metrics?from=2026-12-04T03%3A00%3A00Z&to=2026-12-04T04%3A00%3A00Z&step=15s HTTP/1.1"
    );
    assert!(
        heads[0]
            .lines()
            .any(|l| l.eq_ignore_ascii_case("authorization: Bearer fdk_test")),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn a_collector_without_the_route_says_not_found() {
    let (url, _) = serve(
        "404 Not Found",
        // What an older collector's fallback answers for a route it does not have.
        r#"{"error":{"code":"not_found","message":"no route for GET /v1/hosts/web-1/apps/api/metrics"}}"#
            .into(),
    )
    .await;
    let client = CollectorClient::new(&url, ApiKey::new("fdk_test".into())).expect("client");
    let err = client
        .app_metrics(
            "web-1",
            "api",
            "2026-12-04T03:00:00Z",
            "2026-12-04T04:00:00Z",
            "15s",
        )
        .await
        .expect_err("a 404");
    assert_eq!(err.code, "not_found", "{err:?}");
    assert_eq!(
        err.message,
        "Not found: no route for GET /v1/hosts/web-1/apps/api/metrics."
    );
}

//! `discover`'s probe against real HTTP servers on loopback: an axum app answering `/healthz` like
//! an agent, servers that answer something else or nothing, and a closed port. Each server's
//! listener is bound before the probe starts, so connections queue in its backlog and no test
//! waits for a server to come up.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use fleetdeck_collector::discover::{parse_status, probe, render, Found, Peer};

const STATUS: &str = include_str!("fixtures/tailscale-status.json");

/// Serves `router` on 127.0.0.1 and returns the port; the server lives as long as the runtime.
async fn serve(router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

fn agent() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// A port nothing listens on: bound, read, and released again.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn client() -> reqwest::Client {
    // A proxy from the environment must not carry loopback requests.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

fn peer(hostname: &str, ips: &[&str], online: bool) -> Peer {
    Peer {
        hostname: hostname.to_owned(),
        dns_name: format!("{hostname}.tail1a2b3c.ts.net"),
        ips: ips
            .iter()
            .map(|s| s.parse::<IpAddr>().expect("test address"))
            .collect(),
        online,
        os: "linux".to_owned(),
    }
}

fn outcome(found: &[Found]) -> Vec<(&str, &str, bool)> {
    found
        .iter()
        .map(|f| (f.peer.hostname.as_str(), f.url.as_str(), f.answered))
        .collect()
}

#[tokio::test]
async fn online_agents_answer_and_others_do_not() {
    let port = serve(agent()).await;
    let peers = [
        peer("agent", &["127.0.0.1"], true),
        // The IPv4 address is used even when Tailscale lists the IPv6 one first.
        peer("v6-first", &["fd7a:115c:a1e0::1", "127.0.0.1"], true),
        // Loopback is 127/8, but the server listens on 127.0.0.1 only: refused here.
        peer("no-agent", &["127.0.0.2"], true),
        peer("offline", &["127.0.0.1"], false),
        peer("no-address", &[], true),
    ];
    let found = probe(&client(), &peers, port, Duration::from_secs(5)).await;
    let url = format!("http://127.0.0.1:{port}");
    let other = format!("http://127.0.0.2:{port}");
    assert_eq!(
        outcome(&found),
        vec![
            ("agent", url.as_str(), true),
            ("v6-first", url.as_str(), true),
            ("no-agent", other.as_str(), false),
        ]
    );
    assert_eq!(found[0].problem, None);
    let problem = found[2].problem.as_deref().expect("a reason");
    assert!(problem.starts_with("cannot connect ("), "{problem}");
}

#[tokio::test]
async fn closed_port_does_not_answer() {
    let port = closed_port().await;
    let found = probe(
        &client(),
        &[peer("vm-1", &["127.0.0.1"], true)],
        port,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        outcome(&found),
        vec![("vm-1", format!("http://127.0.0.1:{port}").as_str(), false)]
    );
    let problem = found[0].problem.as_deref().expect("a reason");
    assert!(problem.contains("refused"), "{problem}");
}

#[tokio::test]
async fn only_200_ok_counts_as_an_agent() {
    let timeout = Duration::from_secs(5);
    let peers = [peer("x", &["127.0.0.1"], true)];
    for (router, want) in [
        (
            Router::new().route("/healthz", get(|| async { "hello" })),
            "answered 200 OK but not `ok`: not a Fleetdeck agent",
        ),
        (
            Router::new().route("/", get(|| async { "ok" })),
            "answered 404 Not Found",
        ),
        (
            Router::new().route(
                "/healthz",
                get(|| async { (axum::http::StatusCode::UNAUTHORIZED, "ok") }),
            ),
            "answered 401 Unauthorized",
        ),
    ] {
        let port = serve(router).await;
        let found = probe(&client(), &peers, port, timeout).await;
        assert!(!found[0].answered, "{want}");
        assert_eq!(found[0].problem.as_deref(), Some(want));
    }
    // Surrounding whitespace is tolerated, as from an agent behind a proxy adding a newline.
    let port = serve(Router::new().route("/healthz", get(|| async { "ok\n" }))).await;
    assert!(probe(&client(), &peers, port, timeout).await[0].answered);
}

#[tokio::test]
async fn silent_peers_time_out_concurrently() {
    // Accepts the request and never answers, like an agent behind a stuck proxy.
    let port =
        serve(Router::new().route("/healthz", get(std::future::pending::<&'static str>))).await;
    let peers: Vec<Peer> = (0..20)
        .map(|i| peer(&format!("stuck-{i:02}"), &["127.0.0.1"], true))
        .collect();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let found = probe(&client(), &peers, port, timeout).await;
    let took = started.elapsed();
    assert_eq!(found.len(), 20);
    for f in &found {
        assert!(!f.answered);
        assert_eq!(f.problem.as_deref(), Some("no answer within 300ms"));
    }
    // One after another would take 20 × 300 ms = 6 s; together it is about 300 ms.
    assert!(
        took < Duration::from_secs(3),
        "probes ran one by one: {took:?}"
    );
}

#[tokio::test]
async fn fixture_to_stanzas() {
    let port = serve(agent()).await;
    // The fixture's tailnet, with vm-1 and vm-2 moved onto the loopback agent and every other
    // online peer onto an address where nothing listens.
    let peers: Vec<Peer> = parse_status(STATUS)
        .expect("fixture parses")
        .into_iter()
        .map(|mut p| {
            let ip = if p.hostname.starts_with("vm-") {
                "127.0.0.1"
            } else {
                "127.0.0.2"
            };
            p.ips = vec![ip.parse().expect("test address")];
            p
        })
        .collect();
    let found = probe(&client(), &peers, port, Duration::from_secs(5)).await;
    let text = render(&found);

    let stanzas: String = text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(
        stanzas,
        format!(
            "\n[[agents]]\nname = \"vm-1\"\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = \"/etc/fleetdeck/agents/vm-1.token\"\n\
             \n[[agents]]\nname = \"vm-2\"\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = \"/etc/fleetdeck/agents/vm-2.token\"\n\n"
        )
    );
    assert!(
        text.starts_with("# 2 of 4 online peers run a Fleetdeck agent."),
        "{text}"
    );
    let silent: Vec<&str> = text.lines().filter(|l| l.starts_with("#   ")).collect();
    assert_eq!(silent.len(), 2, "{text}");
    assert!(silent[0].starts_with(&format!(
        "#   Alice's MacBook Pro (alices-macbook-pro.tail1a2b3c.ts.net, macOS) http://127.0.0.2:{port}: cannot connect"
    )), "{text}");
    assert!(
        silent[1].starts_with("#   Build-Runner (build-runner.tail1a2b3c.ts.net, linux)"),
        "{text}"
    );
    assert!(
        !text.contains("db-backup"),
        "offline peers are not listed: {text}"
    );
}

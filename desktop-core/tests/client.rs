//! The collector client against the real collector (`fleetdeck-collector --demo`): reads, errors a
//! person can act on, `.env` edits with their etag check, actions, and log pages and follows.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_proto::desktop::{EventFilter, LogQuery, MetricsRange};
use fleetdeck_proto::{AppAction, AppState, EnvUpdate, Fleet, HostStatus};
use futures_util::StreamExt;

/// A host and one of its apps that is running now (stopped apps write no logs).
fn running_app(fleet: &Fleet) -> (String, String) {
    fleet
        .hosts
        .iter()
        .filter(|h| h.status == HostStatus::Up)
        .flat_map(|h| h.apps.iter().map(move |a| (h, a)))
        .find(|(_, a)| a.status.state == AppState::Running)
        .map(|(h, a)| (h.name.clone(), a.status.name.clone()))
        .expect("a running app in the demo fleet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_fleet_and_its_history() {
    let demo = Demo::start(6);
    let client = demo.client();
    assert_eq!(client.url(), demo.url);
    let fleet = demo.wait_all_up(&client, 6).await;
    assert_eq!(fleet.hosts.len(), 6, "{fleet:?}");
    assert_eq!(fleet.summary.hosts, 6);
    assert!(fleet.summary.apps >= 24, "{:?}", fleet.summary);

    let (host, app) = running_app(&fleet);
    let view = client.host(&host).await.expect("host");
    assert_eq!(view.name, host);
    assert!(view.apps.iter().any(|a| a.status.name == app));

    for range in MetricsRange::ALL {
        let metrics = client.metrics(&host, range).await.expect("metrics");
        assert_eq!(metrics.host, host);
        assert!(metrics.step_ms > 0);
    }
    let uptime = client.uptime(&host, &app, 7).await.expect("uptime");
    assert!(uptime.from_ms < uptime.to_ms);
    assert!(!uptime.days.is_empty());

    let page = client
        .events(&EventFilter {
            host: Some(host.clone()),
            limit: Some(5),
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert!(page.events.len() <= 5);
    assert!(page.events.iter().all(|e| e.host == host), "{page:?}");

    // Names that need encoding reach the collector as one segment: a clean not_found.
    let e = client.host("no such/host").await.expect_err("unknown host");
    assert_eq!(e.code, "not_found", "{e:?}");
    assert!(e.message.contains("no such/host"), "{}", e.message);
    let e = client
        .uptime(&host, "nope", 7)
        .await
        .expect_err("unknown app");
    assert_eq!(e.code, "not_found", "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_to_do() {
    let demo = Demo::start(6);

    let wrong =
        CollectorClient::new(&demo.url, ApiKey::new("fdk_not_the_key".into())).expect("client");
    let e = wrong.fleet().await.expect_err("a wrong key");
    assert_eq!(e.code, "unauthorized", "{e:?}");
    assert!(
        e.message.contains(&demo.url) && e.message.contains("Settings"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("fdk_not_the_key"));
    let e = match wrong.events_stream(None).await {
        Ok(_) => panic!("a stream opened with a wrong key"),
        Err(e) => e,
    };
    assert_eq!(e.code, "unauthorized", "{e:?}");

    let closed = format!("http://127.0.0.1:{}", free_port());
    let nobody = CollectorClient::new(&closed, ApiKey::new(demo.key.clone())).expect("client");
    let e = nobody.fleet().await.expect_err("a closed port");
    assert_eq!(e.code, "unreachable", "{e:?}");
    assert!(e.message.contains(&closed), "{}", e.message);
    assert!(e.message.contains("collector is running"), "{}", e.message);
    assert!(!e.message.contains(&demo.key));

    // Some other web server: it answers, but not as a collector does.
    for status in ["200 OK", "404 Not Found"] {
        let other = not_a_collector(status).await;
        let client = CollectorClient::new(&other, ApiKey::new(demo.key.clone())).expect("client");
        let e = client.fleet().await.expect_err("not a collector");
        assert_eq!(e.code, "protocol", "{status}: {e:?}");
        assert!(
            e.message.contains(&other)
                && e.message
                    .contains("did not answer like a Fleetdeck collector"),
            "{}",
            e.message
        );
        assert!(!e.message.contains(&demo.key));
        let e = match client.events_stream(None).await {
            Ok(_) => panic!("an HTML page taken for an event stream"),
            Err(e) => e,
        };
        assert_eq!(e.code, "protocol", "{status}: {e:?}");
    }

    // A URL with a wrong path in front of the API reaches the collector, which knows no such route.
    let prefixed = CollectorClient::new(
        &format!("{}/fleetdeck", demo.url),
        ApiKey::new(demo.key.clone()),
    )
    .expect("client");
    let e = prefixed.fleet().await.expect_err("wrong prefix");
    assert!(matches!(e.code.as_str(), "not_found" | "protocol"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_writes_check_the_etag() {
    let demo = Demo::start(6);
    let client = demo.client();
    let fleet = demo.wait_all_up(&client, 6).await;
    let (host, app) = running_app(&fleet);

    let before = client.env_get(&host, &app).await.expect("env");
    assert!(!before.etag.is_empty());

    // Someone else's version of the file: refused, and the file is left as it was.
    let stale = "0".repeat(64);
    let mut update = EnvUpdate::default();
    update
        .set
        .insert("FLEETDECK_TEST".into(), "from the desktop".into());
    let e = client
        .env_put(&host, &app, &stale, &update)
        .await
        .expect_err("a stale etag");
    assert_eq!(e.code, "conflict", "{e:?}");
    assert!(e.message.contains("Reload"), "{}", e.message);
    let unchanged = client.env_get(&host, &app).await.expect("env");
    assert_eq!(unchanged, before);

    // With the etag as read, the write goes through, and the file has a new etag.
    let written = client
        .env_put(&host, &app, &before.etag, &update)
        .await
        .expect("write");
    assert_ne!(written.etag, before.etag);
    let after = client.env_get(&host, &app).await.expect("env");
    assert_eq!(after.etag, written.etag);
    assert!(
        after
            .entries
            .iter()
            .any(|e| e.key == "FLEETDECK_TEST" && e.value == "from the desktop"),
        "{after:?}"
    );
    // The etag read first is stale now.
    let e = client
        .env_put(&host, &app, &before.etag, &update)
        .await
        .expect_err("the old etag again");
    assert_eq!(e.code, "conflict", "{e:?}");
    // A quoted etag (as HTTP writes them) works as well.
    update.set.insert("FLEETDECK_TEST".into(), "again".into());
    client
        .env_put(&host, &app, &format!("\"{}\"", after.etag), &update)
        .await
        .expect("write with a quoted etag");

    // An action goes through the collector to the (simulated) host and answers with the outcome.
    let outcome = client
        .action(&host, &app, AppAction::Restart)
        .await
        .expect("restart");
    assert_eq!(outcome.app, app);
    assert_eq!(outcome.action, AppAction::Restart);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_page_back_and_follow() {
    let demo = Demo::start(6);
    let client = demo.client();
    let fleet = demo.wait_all_up(&client, 6).await;
    let (host, app) = running_app(&fleet);

    let page = wait_for("log lines", Duration::from_secs(20), || async {
        let page = client
            .logs_page(
                &host,
                &app,
                &LogQuery {
                    limit: Some(20),
                    ..LogQuery::default()
                },
            )
            .await
            .expect("logs page");
        (!page.entries.is_empty()).then_some(page)
    })
    .await;
    assert!(page.entries.len() <= 20);
    assert!(
        page.entries
            .windows(2)
            .all(|w| w[0].unix_us >= w[1].unix_us),
        "newest first"
    );
    let newest = page.entries[0].clone();

    // The next page goes back from the oldest line of this one.
    let older = client
        .logs_page(
            &host,
            &app,
            &LogQuery {
                before: Some(page.entries[page.entries.len() - 1].cursor.clone()),
                limit: Some(5),
                ..LogQuery::default()
            },
        )
        .await
        .expect("older page");
    assert!(older
        .entries
        .iter()
        .all(|e| e.unix_us <= page.entries[page.entries.len() - 1].unix_us));

    // Following after the newest line brings lines written since, in order, none already seen.
    let stream = client
        .logs_follow(&host, &app, Some(newest.cursor.clone()))
        .await
        .expect("follow");
    let mut stream = std::pin::pin!(stream);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 2 {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} new log lines within 30 s", got.len()))
            .expect("the stream stays open")
            .expect("a log line");
        got.push(next);
    }
    assert!(
        got.iter()
            .all(|e| e.cursor != newest.cursor && e.unix_us >= newest.unix_us),
        "{got:?}"
    );
    assert!(got[0].unix_us <= got[1].unix_us, "{got:?}");

    // The grep filter reaches the agent.
    let grep = client
        .logs_page(
            &host,
            &app,
            &LogQuery {
                grep: Some("zzz-no-line-says-this".into()),
                limit: Some(5),
                ..LogQuery::default()
            },
        )
        .await
        .expect("grep page");
    assert!(grep.entries.is_empty(), "{grep:?}");
}

/// A collector with standbys is reached at several addresses: a request the first cannot take
/// for want of a connection goes to the next that answers, and stays there; an answer that is an
/// error (a wrong key) is the collector's word, never a reason to move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_cannot_be_reached_fails_over_to_its_next_address() {
    let demo = Demo::start(2);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let client = CollectorClient::new(&dead, ApiKey::new(demo.key.clone()))
        .expect("client")
        .with_standby_urls(std::slice::from_ref(&demo.url))
        .expect("standby URL");
    assert_eq!(client.urls(), vec![dead.clone(), demo.url.clone()]);
    assert_eq!(client.url(), dead, "the first address is tried first");
    let fleet = demo.wait_all_up(&client, 2).await;
    assert_eq!(client.url(), demo.url, "moved to the address that answered");
    // The event stream and an action go there too.
    let stream = client.events_stream(None).await.expect("the event stream");
    drop(stream);
    let (host, app) = running_app(&fleet);
    let outcome = client
        .action(&host, &app, AppAction::Restart)
        .await
        .expect("a restart through the address that answers");
    assert_eq!(outcome.result, "done", "{outcome:?}");

    // Every address down: the error names the last one tried, and nothing else is said.
    let other_dead = format!("http://127.0.0.1:{}", free_port());
    let nobody = CollectorClient::new(&dead, ApiKey::new(demo.key.clone()))
        .expect("client")
        .with_standby_urls(std::slice::from_ref(&other_dead))
        .expect("standby URL");
    let e = nobody.fleet().await.expect_err("no address answers");
    assert_eq!(e.code, "unreachable", "{e:?}");
    assert!(e.message.contains(&other_dead), "{}", e.message);
    assert_eq!(
        nobody.url(),
        dead,
        "no address answered: the first stays in use"
    );

    // A refusal is an answer: the client does not move on to try the key elsewhere.
    let refused = CollectorClient::new(&demo.url, ApiKey::new("fdk_not_the_key".into()))
        .expect("client")
        .with_standby_urls(std::slice::from_ref(&dead))
        .expect("standby URL");
    let e = refused.fleet().await.expect_err("a wrong key");
    assert_eq!(e.code, "unauthorized", "{e:?}");
    assert_eq!(refused.url(), demo.url);
}

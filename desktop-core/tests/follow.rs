//! Following a collector's events and watching its fleet, against the real collector in demo
//! mode (its chaos crashes and recovers apps every few seconds).

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_desktop_core::follow::{follow_events, StreamUpdate};
use fleetdeck_desktop_core::watch::{WatchKind, WatchUpdate, Watcher};
use fleetdeck_proto::desktop::{ConnState, EventFilter};
use fleetdeck_proto::FleetEvent;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

/// Reads updates until `n` events came, failing after `limit`; returns them.
async fn events(
    rx: &mut mpsc::Receiver<StreamUpdate>,
    n: usize,
    limit: Duration,
) -> Vec<FleetEvent> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(StreamUpdate::Event(e))) => got.push(*e),
            Ok(Some(StreamUpdate::Connected)) => {}
            Ok(Some(StreamUpdate::Disconnected(e))) => panic!("the stream broke: {e:?}"),
            Ok(None) => panic!("the follower ended"),
            Err(_) => panic!("only {} of {n} events within {limit:?}: {got:?}", got.len()),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_followed_and_resumed_without_doubles() {
    let demo = Demo::start(6);
    let client = demo.client();
    demo.wait_all_up(&client, 6).await;

    // First follower: live from now.
    let (tx, mut rx) = mpsc::channel(64);
    let first = tokio::spawn(follow_events(client.clone(), None, tx));
    let deadline = Instant::now() + Duration::from_secs(20);
    assert_eq!(
        timeout_at(deadline, rx.recv())
            .await
            .expect("connected within 20 s"),
        Some(StreamUpdate::Connected)
    );
    let mut seen = events(&mut rx, 3, Duration::from_secs(60)).await;

    // Stop it: closing the receiver ends the task.
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the follower ends once its receiver is gone")
        .expect("the follower did not panic");
    let last = seen.last().expect("events").id;

    // Let the fleet move on, so the resumed stream has something to replay.
    wait_for("events after the stop", Duration::from_secs(60), || async {
        let page = client
            .events(&EventFilter {
                limit: Some(1),
                ..EventFilter::default()
            })
            .await
            .ok()?;
        (page.events.first()?.id > last).then_some(())
    })
    .await;

    // Second follower: resumes after the last event delivered.
    let (tx, mut rx) = mpsc::channel(64);
    let second = tokio::spawn(follow_events(client.clone(), Some(last), tx));
    let resumed = events(&mut rx, 3, Duration::from_secs(60)).await;
    assert!(resumed[0].id > last, "{last} then {resumed:?}");
    seen.extend(resumed);
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the second follower ends")
        .expect("no panic");

    // Nothing twice, nothing skipped: exactly the collector's log over that range, in order.
    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: {ids:?}"
    );
    let (lo, hi) = (ids[0], ids[ids.len() - 1]);
    let page = client
        .events(&EventFilter {
            limit: Some(1000),
            ..EventFilter::default()
        })
        .await
        .expect("events page");
    let mut logged: Vec<FleetEvent> = page
        .events
        .into_iter()
        .filter(|e| (lo..=hi).contains(&e.id))
        .collect();
    logged.reverse();
    assert_eq!(
        seen, logged,
        "the streams delivered exactly the logged events"
    );
}

/// The next update's kind, failing after `deadline`.
async fn next(rx: &mut mpsc::UnboundedReceiver<WatchUpdate>, deadline: Instant) -> WatchKind {
    let update = timeout_at(deadline, rx.recv())
        .await
        .expect("an update in time")
        .expect("the watcher runs");
    assert_eq!(update.collector, "demo");
    update.kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_reports_status_fleet_and_events() {
    let demo = Demo::start(6);
    let client = demo.client();
    let (tx, mut rx) = mpsc::unbounded_channel::<WatchUpdate>();
    // A long poll interval: fleet reads after the first one come from events.
    let watcher = Watcher::spawn("demo".into(), client, None, Duration::from_secs(600), tx);

    let deadline = Instant::now() + Duration::from_secs(30);
    match next(&mut rx, deadline).await {
        WatchKind::Status(s) => assert_eq!(s.state, ConnState::Connecting),
        other => panic!("first came {other:?}"),
    }
    let mut connected = false;
    let mut fleet = None;
    while !(connected && fleet.is_some()) {
        match next(&mut rx, deadline).await {
            WatchKind::Status(s) => {
                assert_eq!(s.state, ConnState::Connected, "{s:?}");
                assert!(!connected, "Connected reported twice");
                connected = true;
            }
            WatchKind::Fleet(f) => fleet = Some(f),
            WatchKind::Event(_) | WatchKind::Silences(_) | WatchKind::Alerts(_) => {}
        }
    }
    assert_eq!(fleet.expect("fleet").hosts.len(), 6);

    // An event, then soon a fresh fleet (well before the 10-minute poll).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let update = timeout_at(deadline, rx.recv())
            .await
            .expect("an event within 60 s")
            .expect("runs");
        if let WatchKind::Event(e) = update.kind {
            assert!(e.id > 0);
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let update = timeout_at(deadline, rx.recv())
            .await
            .expect("a fleet read soon after the event")
            .expect("runs");
        match update.kind {
            WatchKind::Fleet(_) => break,
            WatchKind::Status(s) => panic!("status changed: {s:?}"),
            WatchKind::Event(_) | WatchKind::Silences(_) | WatchKind::Alerts(_) => {}
        }
    }

    // Dropping the watcher stops its tasks: the channel closes.
    drop(watcher);
    let deadline = Instant::now() + Duration::from_secs(5);
    while timeout_at(deadline, rx.recv())
        .await
        .expect("the channel closes once the watcher is dropped")
        .is_some()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_with_a_refused_key_is_failing() {
    let demo = Demo::start(6);
    let client = CollectorClient::new(&demo.url, ApiKey::new("fdk_wrong".into())).expect("client");
    let (tx, mut rx) = mpsc::unbounded_channel::<WatchUpdate>();
    let _watcher = Watcher::spawn("demo".into(), client, None, Duration::from_millis(200), tx);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut states = Vec::new();
    while states.len() < 2 {
        let update = timeout_at(deadline, rx.recv())
            .await
            .expect("updates in time")
            .expect("runs");
        if let WatchKind::Status(s) = update.kind {
            states.push(s);
        }
    }
    assert_eq!(states[0].state, ConnState::Connecting);
    assert_eq!(states[1].state, ConnState::Failing);
    let message = states[1].message.clone().expect("why it fails");
    assert!(message.contains("refused the API key"), "{message}");
    // Later reads fail the same way: no repeated status (several polls happen in this second).
    let quiet = Instant::now() + Duration::from_secs(1);
    while let Ok(update) = timeout_at(quiet, rx.recv()).await {
        let update = update.expect("runs");
        assert!(!matches!(update.kind, WatchKind::Status(_)), "{update:?}");
    }
}

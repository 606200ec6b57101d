//! The write paths against a real SQLite store: one transition per change, whoever saw it first.

use fleetdeck_proto::{
    AppKind, Cpu, EventSource, HostMetrics, Load, Memory, SourceHealth, Sources, Swap,
};

use fleetdeck_proto::{AppEvent, AppState, AppStatus, Exit, Snapshot};

use super::*;
use crate::alerting::rules::Health;
use crate::store::Store;
use fleetdeck_proto::Severity as AlertSeverity;

/// Test times are in seconds (the dedupe of replayed events allows 2 s of clock difference).
const S: u64 = 1000;

fn status(state: AppState, since: u64) -> AppStatus {
    AppStatus {
        name: "web".into(),
        kind: AppKind::Systemd,
        target: "web.service".into(),
        state,
        since_unix_ms: Some(since * S),
        last_exit: (state == AppState::Failed).then_some(Exit::Signal(9)),
        restarts: Some(0),
        memory_bytes: None,
        error: None,
        systemd: None,
        docker: None,
        expect: Default::default(),
        stopped_by_request: false,
        checks: Vec::new(),
        degraded: false,
    }
}

fn polled(taken: u64, app: AppStatus) -> Polled {
    Polled {
        snapshot: Snapshot {
            seq: 0,
            instance_id: "i1".into(),
            taken_unix_ms: taken * S,
            host: HostMetrics {
                hostname: "vm".into(),
                boot_id: "b".into(),
                uptime_secs: 1.0,
                window_secs: None,
                cpu: Cpu::default(),
                memory: Memory::default(),
                swap: Swap::default(),
                load: Load::default(),
                filesystems: Vec::new(),
                network: Vec::new(),
                disks: Vec::new(),
            },
            apps: vec![app],
            sources: Sources {
                systemd: SourceHealth::Up,
                docker: SourceHealth::Unused,
            },
        },
        samples_instance: "i1".into(),
        samples: Vec::new(),
        info: None,
    }
}

fn event(id: u64, from: AppState, to: AppState, at: u64) -> AppEvent {
    AppEvent {
        id,
        instance_id: "i1".into(),
        app: "web".into(),
        kind: AppKind::Systemd,
        from,
        to,
        restarted: false,
        at_unix_ms: at * S,
        exit: (to == AppState::Failed).then_some(Exit::Signal(9)),
        restarts: None,
        source: EventSource::Systemd,
        requested: false,
        crash: None,
    }
}

struct Bed {
    _db: crate::store::db::testing::StoreDb,
    store: Store,
    host: i64,
}

async fn bed() -> Bed {
    let db = crate::store::db::testing::store_db();
    let store = Store::open(&db.target).expect("store");
    let hosts = store
        .write(|ctx| register_agents(ctx, &[("vm".into(), "http://vm:7070".into())]))
        .await
        .expect("register");
    Bed {
        _db: db,
        store,
        host: hosts[0].id,
    }
}

impl Bed {
    async fn poll(&self, taken: u64, app: AppStatus) {
        let (id, p) = (self.host, polled(taken, app));
        self.store
            .write(move |ctx| apply_poll(ctx, id, "vm", p, taken * S))
            .await
            .expect("poll");
    }

    async fn fail(&self, now: u64) {
        let id = self.host;
        self.store
            .write(move |ctx| apply_poll_failure(ctx, id, "vm", "timed out", 2, now * S))
            .await
            .expect("failure");
    }

    async fn event(&self, e: AppEvent) {
        let id = self.host;
        self.store
            .write(move |ctx| apply_agent_event(ctx, id, "vm", &e))
            .await
            .expect("event");
    }

    async fn state(&self) -> String {
        self.store
            .with_conn(|c| c.query_row("SELECT state FROM apps", params![], |r| r.get(0)))
            .await
            .expect("state")
    }

    /// (kind, from, to) of every event, oldest first.
    async fn events(&self) -> Vec<(String, Option<String>, Option<String>)> {
        self.store
            .with_conn(|c| {
                let rows = c.query_map(
                    "SELECT kind, from_state, to_state FROM events ORDER BY id",
                    params![],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                Ok(rows)
            })
            .await
            .expect("events")
    }

    async fn history(&self) -> Vec<(String, i64, Option<i64>)> {
        self.store
            .with_conn(|c| {
                let rows = c.query_map("SELECT state, start_ms / 1000, end_ms / 1000 FROM status_history WHERE app = 'web' ORDER BY start_ms, id", params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows)
            })
            .await
            .expect("history")
    }
}

fn tr(from: &str, to: &str) -> (String, Option<String>, Option<String>) {
    ("transition".into(), Some(from.into()), Some(to.into()))
}

#[tokio::test]
async fn a_poll_read_before_a_crash_does_not_undo_it() {
    let b = bed().await;
    b.poll(100, status(AppState::Running, 50)).await;
    b.event(event(1, AppState::Running, AppState::Failed, 105))
        .await;
    // Read at 100..110 (before the crash), stamped 110 after its slower reads.
    b.poll(110, status(AppState::Running, 50)).await;
    assert_eq!(b.state().await, "failed");
    // The next poll sees the crash too: still one transition.
    b.poll(140, status(AppState::Failed, 105)).await;
    assert_eq!(b.events().await, vec![tr("running", "failed")]);
    assert_eq!(
        b.history().await,
        vec![
            ("running".into(), 50, Some(105)),
            ("failed".into(), 105, None)
        ]
    );
}

#[tokio::test]
async fn a_crash_during_an_outage_is_one_event_after_it() {
    let b = bed().await;
    b.poll(100, status(AppState::Running, 50)).await;
    b.fail(200).await;
    b.fail(201).await; // down_after = 2: the host is down
    assert_eq!(b.state().await, "running", "the last known state stays");
    b.poll(300, status(AppState::Failed, 250)).await;
    let events = b.events().await;
    assert_eq!(
        events,
        vec![
            ("host-down".into(), Some("up".into()), Some("down".into())),
            ("host-up".into(), Some("down".into()), Some("up".into())),
            tr("running", "failed"),
        ]
    );
    assert_eq!(
        b.history().await,
        vec![
            ("running".into(), 50, Some(201)),
            ("unknown".into(), 201, Some(250)),
            ("failed".into(), 250, None)
        ]
    );
    // Back to running after another outage in which nothing changed: history follows.
    b.poll(400, status(AppState::Running, 390)).await;
    b.fail(500).await;
    b.fail(501).await;
    b.poll(600, status(AppState::Running, 390)).await;
    let history = b.history().await;
    assert_eq!(
        history.last(),
        Some(&("running".into(), 600, None)),
        "{history:?}"
    );
    assert_eq!(b.events().await.len(), 6, "failed → running, down, up");
}

#[tokio::test]
async fn replayed_events_behind_a_poll_are_recorded_once() {
    let b = bed().await;
    b.poll(100, status(AppState::Running, 50)).await;
    // Crash and restart while the stream was away; the poll sees only the restarted app.
    b.poll(300, status(AppState::Running, 250)).await;
    for _ in 0..2 {
        b.event(event(1, AppState::Running, AppState::Failed, 200))
            .await;
        b.event(event(2, AppState::Failed, AppState::Running, 250))
            .await;
    }
    assert_eq!(
        b.events().await,
        vec![tr("running", "failed"), tr("failed", "running")]
    );
    assert_eq!(
        b.history().await,
        vec![
            ("running".into(), 50, Some(200)),
            ("failed".into(), 200, Some(250)),
            ("running".into(), 250, None)
        ]
    );
    assert_eq!(b.state().await, "running");
}

#[tokio::test]
async fn a_transition_seen_by_the_stream_and_a_poll_counts_once() {
    let b = bed().await;
    b.poll(100, status(AppState::Running, 50)).await;
    b.poll(200, status(AppState::Failed, 150)).await; // the poll first
    b.event(event(1, AppState::Running, AppState::Failed, 151))
        .await; // then the stream
    b.event(event(2, AppState::Failed, AppState::Running, 260))
        .await; // the stream first
    b.poll(300, status(AppState::Running, 259)).await; // then the poll
    assert_eq!(
        b.events().await,
        vec![tr("running", "failed"), tr("failed", "running")]
    );
}

/// The (health, severity, reason) of the next `n` transitions handed to the alerter (they are
/// sent just after the write's commit: each is waited for, up to 5 s).
async fn alerted(
    rx: &mut tokio::sync::mpsc::Receiver<crate::alerting::AlertInput>,
    n: usize,
) -> Vec<(Health, AlertSeverity, Option<String>)> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a transition for the alerter within 5 s")
            .expect("the alert channel open");
        if let crate::alerting::AlertInput::Transition(t) = next {
            out.push((t.health, t.severity, t.detail.reason.clone()));
        }
    }
    out
}

#[tokio::test]
async fn stops_alert_only_when_nobody_asked_and_the_app_should_run() {
    let b = bed().await;
    let mut rx = b.store.take_transitions().expect("the alert channel");
    b.poll(100, status(AppState::Running, 50)).await;
    let mut stop = event(1, AppState::Running, AppState::Stopped, 110);
    b.event(stop.clone()).await;
    let reason = Some("stopped without a request through Fleetdeck".to_owned());
    assert_eq!(
        alerted(&mut rx, 1).await,
        vec![(Health::Problem, AlertSeverity::Critical, reason)]
    );
    b.event(event(2, AppState::Stopped, AppState::Running, 120))
        .await;
    assert_eq!(alerted(&mut rx, 1).await[0].0, Health::Ok);
    // Asked for through Fleetdeck: neutral.
    stop.id = 3;
    stop.at_unix_ms = 130 * S;
    stop.requested = true;
    b.event(stop).await;
    assert_eq!(alerted(&mut rx, 1).await[0].0, Health::Other);
    // A batch job (expect = any) that stops: neutral too.
    let mut job = status(AppState::Running, 140);
    job.expect = fleetdeck_proto::Expect::Any;
    b.poll(140, job.clone()).await;
    job.state = AppState::Stopped;
    job.since_unix_ms = Some(150 * S);
    b.poll(150, job).await;
    let last = alerted(&mut rx, 2).await.pop().expect("a transition");
    assert_eq!(last.0, Health::Other);
}

#[tokio::test]
async fn a_removed_app_is_critical_and_a_healed_crash_a_blip_with_its_context() {
    let b = bed().await;
    let mut rx = b.store.take_transitions().expect("the alert channel");
    b.poll(100, status(AppState::Running, 50)).await;
    b.poll(110, status(AppState::NotFound, 105)).await;
    let got = alerted(&mut rx, 1).await;
    assert_eq!(
        (got[0].0, got[0].1),
        (Health::Problem, AlertSeverity::Critical)
    );
    assert!(
        got[0].2.as_deref().is_some_and(|r| r.contains("not found")),
        "{got:?}"
    );
    b.poll(120, status(AppState::Running, 115)).await;
    assert_eq!(alerted(&mut rx, 1).await[0].0, Health::Ok);
    let mut crash = event(1, AppState::Running, AppState::Running, 130);
    crash.restarted = true;
    // The agent reads the run already back (no exit): the crash's exit is in its context.
    crash.exit = None;
    crash.crash = Some(fleetdeck_proto::CrashContext {
        exit: Some(Exit::Code(2)),
        last_lines: vec!["boom".into()],
        ..Default::default()
    });
    b.event(crash).await;
    let got = alerted(&mut rx, 1).await;
    assert_eq!((got[0].0, got[0].1), (Health::Blip, AlertSeverity::Warning));
    let (detail, message): (String, String) = b
        .store
        .with_conn(|c| {
            c.query_row(
                "SELECT detail_json, message FROM events WHERE kind = 'restarted'",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
        .expect("the restart's detail");
    assert!(detail.contains("\"boom\""), "{detail}");
    assert!(message.contains("exit code 2"), "{message}");
}

/// An HTTPS check's result at `at` (seconds) with a certificate ending `days` days later.
fn tls_check(at: u64, days: f64) -> fleetdeck_proto::CheckResult {
    fleetdeck_proto::CheckResult {
        name: "tls".into(),
        kind: fleetdeck_proto::CheckKind::Https,
        target: "https://localhost/".into(),
        ok: days > 0.0,
        consecutive_failures: 0,
        status_code: Some(200),
        latency_ms: Some(5.0),
        error: None,
        cert_not_after_unix_ms: Some(at * S + (days * 86_400_000.0) as u64),
        checked_unix_ms: at * S,
    }
}

#[tokio::test]
async fn a_certificate_warns_at_14_days_turns_critical_at_3_and_clears_once_renewed() {
    let b = bed().await;
    let mut rx = b.store.take_transitions().expect("the alert channel");
    let mut app = status(AppState::Running, 50);
    let mut poll_with = |at: u64, days: f64| {
        app.checks = vec![tls_check(at, days)];
        app.clone()
    };
    // 30 days left: nothing. 10 days: a warning. 10 again: nothing new. 2 days: critical too.
    b.poll(100, poll_with(100, 30.0)).await;
    b.poll(110, poll_with(110, 10.0)).await;
    let t = alerted(&mut rx, 1).await;
    assert_eq!(t[0].0, Health::Problem);
    assert_eq!(t[0].1, AlertSeverity::Warning);
    assert!(
        t[0].2
            .as_deref()
            .expect("reason")
            .contains("(10 days left)"),
        "{t:?}"
    );
    b.poll(120, poll_with(120, 10.0)).await;
    b.poll(130, poll_with(130, 2.5)).await;
    let t = alerted(&mut rx, 1).await;
    assert_eq!((t[0].0, t[0].1), (Health::Problem, AlertSeverity::Critical));
    // Renewed: both end, one event each.
    b.poll(140, poll_with(140, 90.0)).await;
    let t = alerted(&mut rx, 2).await;
    assert!(t.iter().all(|(h, _, _)| *h == Health::Ok), "{t:?}");
    let kinds: Vec<String> = b
        .events()
        .await
        .into_iter()
        .map(|(k, _, _)| k)
        .filter(|k| k.starts_with("cert-"))
        .collect();
    assert_eq!(
        kinds,
        [
            "cert-expiring",
            "cert-expiring",
            "cert-renewed",
            "cert-renewed"
        ]
    );
}

#[tokio::test]
async fn an_app_already_missing_or_failed_when_first_seen_alerts() {
    let b = bed().await;
    let mut rx = b.store.take_transitions().expect("the alert channel");
    b.poll(100, status(AppState::NotFound, 90)).await;
    let t = alerted(&mut rx, 1).await;
    assert_eq!((t[0].0, t[0].1), (Health::Problem, AlertSeverity::Critical));
    assert!(
        t[0].2.as_deref().expect("reason").contains("not found"),
        "{t:?}"
    );
    let events = b.events().await;
    assert_eq!(
        events,
        [("transition".to_owned(), None, Some("not-found".to_owned()))]
    );
    // Running when first seen: nothing.
    let b = bed().await;
    let mut rx = b.store.take_transitions().expect("the alert channel");
    b.poll(100, status(AppState::Running, 90)).await;
    b.poll(101, status(AppState::Running, 90)).await;
    assert!(
        rx.try_recv().is_err(),
        "no transition for a healthy first sight"
    );
    assert!(b.events().await.is_empty());
}

#[tokio::test]
async fn the_alerters_queue_is_bounded_and_loses_nothing() {
    use crate::alerting::{AlertInput, INPUT_QUEUE};
    let b = bed().await;
    let mut rx = b.store.take_transitions().expect("the alert channel");
    let n = INPUT_QUEUE + 100;
    let (store, id) = (b.store.clone(), b.host);
    // One sample per poll: each is one input for the alerter.
    let writes = tokio::spawn(async move {
        for seq in 1..=n as u64 {
            let mut p = polled(seq, status(AppState::Running, 1));
            p.samples = vec![fleetdeck_proto::Sample {
                seq,
                taken_unix_ms: seq * S,
                cpu_percent: Some(1.0),
                memory_used_bytes: 1,
                memory_total_bytes: 2,
                swap_used_bytes: 0,
                swap_total_bytes: 0,
                cores: 1,
                load1: 0.0,
                load5: 0.0,
                load15: 0.0,
                filesystems: Vec::new(),
                network: Vec::new(),
                apps: Vec::new(),
                disks: Vec::new(),
            }];
            store
                .write(move |ctx| apply_poll(ctx, id, "vm", p, seq * S))
                .await
                .expect("poll");
        }
    });
    // Nobody reads: the queue fills to its bound and the writes wait for room.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rx.len() < INPUT_QUEUE {
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(rx.len(), INPUT_QUEUE, "the queue grew past its bound");
    assert!(!writes.is_finished(), "the writes did not wait for room");
    // Read it all: every sample reaches the alerter, in order, none dropped.
    let mut next_seq = 1;
    while next_seq <= n as u64 {
        let input = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("an input within 10 s")
            .expect("the channel open");
        if let AlertInput::Samples { samples, .. } = input {
            for s in samples.iter() {
                assert_eq!(s.seq, next_seq, "a sample was lost or reordered");
                next_seq += 1;
            }
        }
    }
    writes.await.expect("the writes end once there is room");
}

/// A poll reads its host's rows up front and writes its "seen again" rows in one statement per
/// table when its work is done (preload.rs): what it leaves must be what one statement at a time
/// left, and a job that fails leaves none of it.
#[tokio::test]
async fn a_polls_waiting_writes_land_once_its_work_is_done_and_not_when_it_fails() {
    let b = bed().await;
    let id = b.host;
    let row = |app: &'static str| {
        let store = b.store.clone();
        async move {
            store
                .with_conn(move |c| {
                    c.query_opt(
                        "SELECT observed_ms / 1000, status_json FROM apps WHERE name = ?1",
                        params![app],
                        |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
                    )
                })
                .await
                .expect("app row")
        }
    };
    let aspect_seen = |aspect: &'static str| {
        let store = b.store.clone();
        async move {
            store
                .with_conn(move |c| {
                    c.query_opt(
                        "SELECT observed_ms / 1000 FROM aspects WHERE app = '' AND aspect = ?1",
                        params![aspect],
                        |r| r.get::<i64>(0),
                    )
                })
                .await
                .expect("aspect row")
        }
    };
    let web = status(AppState::Running, 1);
    b.poll(10, web.clone()).await;

    // Seen again (web: only its memory changed) beside a new app, with the clock measured in the
    // same job as the poller does.
    let mut seen = web.clone();
    seen.memory_bytes = Some(42 * 1024);
    let mut p = polled(20, seen);
    let mut api = status(AppState::Running, 15);
    api.name = "api".into();
    p.snapshot.apps.push(api);
    b.store
        .write(move |ctx| {
            apply_poll(ctx, id, "vm", p, 20 * S)?;
            apply_clock(ctx, id, "vm", 1_000, 20 * S)
        })
        .await
        .expect("poll");
    let (observed, json) = row("web").await.expect("web");
    assert_eq!(observed, 20, "web's observed time is the second poll's");
    assert!(
        json.contains("43008"),
        "web's status is the second poll's: {json}"
    );
    assert!(row("api").await.is_some(), "the new app is stored");
    assert_eq!(aspect_seen("source:systemd").await, Some(20));
    assert_eq!(aspect_seen("clock").await, Some(20));

    // A job that fails after its poll: nothing of it stays, the waiting writes included.
    let mut later = web.clone();
    later.memory_bytes = Some(7);
    let p = polled(30, later);
    let failed = b
        .store
        .write(move |ctx| {
            apply_poll(ctx, id, "vm", p, 30 * S)?;
            Err::<(), _>(StoreError::Invalid("the job fails after its poll".into()))
        })
        .await;
    assert!(failed.is_err());
    let (observed, json) = row("web").await.expect("web");
    assert_eq!((observed, json.contains("43008")), (20, true), "{json}");
    assert!(
        row("api").await.is_some(),
        "the failed poll's unwatch is undone"
    );
    assert_eq!(aspect_seen("source:systemd").await, Some(20));

    // The next job reads the database, not a preload the failed one left; api is gone now.
    b.poll(40, web.clone()).await;
    assert_eq!(row("web").await.map(|r| r.0), Some(40));
    assert!(row("api").await.is_none(), "api is no longer reported");
    assert_eq!(aspect_seen("source:systemd").await, Some(40));
    let unwatched: Vec<_> = b
        .events()
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "app-unwatched")
        .collect();
    assert_eq!(unwatched.len(), 1, "api unwatched once");
    assert_eq!(b.state().await, "running");
}

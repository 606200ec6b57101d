//! The write paths against a real SQLite store: one transition per change, whoever saw it first.

use fleetdeck_proto::{
    AppKind, Cpu, EventSource, HostMetrics, Load, Memory, SourceHealth, Sources, Swap,
};

use fleetdeck_proto::{AppEvent, AppState, AppStatus, Exit, Snapshot};

use super::*;
use crate::store::Store;

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
    _dir: tempfile::TempDir,
    store: Store,
    host: i64,
}

async fn bed() -> Bed {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("c.db")).expect("store");
    let hosts = store
        .write(|ctx| register_agents(ctx, &[("vm".into(), "http://vm:7070".into())]))
        .await
        .expect("register");
    Bed {
        _dir: dir,
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
            .with_conn(|c| Ok(c.query_row("SELECT state FROM apps", [], |r| r.get(0))?))
            .await
            .expect("state")
    }

    /// (kind, from, to) of every event, oldest first.
    async fn events(&self) -> Vec<(String, Option<String>, Option<String>)> {
        self.store
            .with_conn(|c| {
                let mut stmt =
                    c.prepare("SELECT kind, from_state, to_state FROM events ORDER BY id")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .expect("events")
    }

    async fn history(&self) -> Vec<(String, i64, Option<i64>)> {
        self.store
            .with_conn(|c| {
                let mut stmt = c.prepare(
                    "SELECT state, start_ms / 1000, end_ms / 1000 FROM status_history WHERE app = 'web' ORDER BY start_ms, id",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
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

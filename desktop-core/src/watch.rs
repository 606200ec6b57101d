//! One collector kept current: its fleet read every `poll_every` and shortly after each event
//! (several events close together cost one read), its events followed live, and its connection
//! status reported when it changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetdeck_proto::desktop::{ConnState, ConnStatus};
use fleetdeck_proto::{Fleet, FleetEvent};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::CollectorClient;
use crate::follow::{follow_events, StreamUpdate};

/// How soon after an event the fleet is read again (events arriving meanwhile share that read).
pub const REFRESH_AFTER_EVENT: Duration = Duration::from_millis(250);

/// What a [`Watcher`] reports about its collector.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchUpdate {
    /// The collector's name, as given to [`Watcher::spawn`].
    pub collector: String,
    pub kind: WatchKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchKind {
    /// The fleet as just read.
    Fleet(Fleet),
    /// A new event from the collector's stream.
    Event(Box<FleetEvent>),
    /// The collector's silences, read with the fleet (none from a collector without them).
    Silences(Vec<fleetdeck_proto::Silence>),
    /// Its open alerts, read with the fleet (for the tray's menu).
    Alerts(Vec<fleetdeck_proto::AlertRecord>),
    /// The connection's state changed: `Connecting` at the start, `Connected` once the fleet is
    /// read, `Failing` with why while reads fail.
    Status(ConnStatus),
}

/// Watches one collector until dropped.
#[derive(Debug)]
pub struct Watcher {
    tasks: Vec<JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Watcher {
    /// Starts watching `client` (reported as `name`) into `tx`, following events after
    /// `last_event_id`. Must be called within a tokio runtime; the tasks end when the watcher is
    /// dropped or `tx` is closed.
    pub fn spawn(
        name: String,
        client: CollectorClient,
        last_event_id: Option<i64>,
        poll_every: Duration,
        tx: UnboundedSender<WatchUpdate>,
    ) -> Watcher {
        let (stream_tx, stream_rx) = mpsc::channel(256);
        let follow = tokio::spawn(follow_events(client.clone(), last_event_id, stream_tx));
        let watch = tokio::spawn(watch(name, client, poll_every, stream_rx, tx));
        Watcher {
            tasks: vec![watch, follow],
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Sends `kind` for `name`; false when nobody listens any more.
fn send(tx: &UnboundedSender<WatchUpdate>, name: &str, kind: WatchKind) -> bool {
    tx.send(WatchUpdate {
        collector: name.to_owned(),
        kind,
    })
    .is_ok()
}

/// The status last reported, so only changes are.
struct Reported {
    state: ConnState,
    message: Option<String>,
}

impl Reported {
    /// The status to report if `state` and `message` differ from the last one.
    fn change(&mut self, state: ConnState, message: Option<String>) -> Option<ConnStatus> {
        if self.state == state && self.message == message {
            return None;
        }
        self.state = state;
        self.message = message.clone();
        Some(ConnStatus {
            state,
            message,
            since_unix_ms: now_ms(),
        })
    }
}

async fn watch(
    name: String,
    client: CollectorClient,
    poll_every: Duration,
    mut stream_rx: mpsc::Receiver<StreamUpdate>,
    tx: UnboundedSender<WatchUpdate>,
) {
    let mut reported = Reported {
        state: ConnState::Connecting,
        message: None,
    };
    let connecting = ConnStatus {
        state: ConnState::Connecting,
        message: None,
        since_unix_ms: now_ms(),
    };
    if !send(&tx, &name, WatchKind::Status(connecting)) {
        return;
    }
    let mut poll = tokio::time::interval(poll_every.max(Duration::from_millis(100)));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut refresh_at: Option<Instant> = None;
    let mut stream_open = true;
    loop {
        let read_now = tokio::select! {
            _ = poll.tick() => true,
            () = async {
                match refresh_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => true,
            update = stream_rx.recv(), if stream_open => {
                match update {
                    Some(StreamUpdate::Event(event)) => {
                        refresh_at.get_or_insert_with(|| Instant::now() + REFRESH_AFTER_EVENT);
                        if !send(&tx, &name, WatchKind::Event(event)) {
                            return;
                        }
                    }
                    Some(StreamUpdate::Connected) => {
                        tracing::debug!(collector = %name, "following events");
                    }
                    Some(StreamUpdate::Disconnected(e)) => {
                        // The fleet reads say whether the collector answers; the stream retries.
                        tracing::debug!(collector = %name, error = %e.message, "event stream interrupted");
                    }
                    // The follower ended (it only does when this task is gone): keep polling.
                    None => stream_open = false,
                }
                false
            }
            () = tx.closed() => return,
        };
        if !read_now {
            continue;
        }
        refresh_at = None;
        // The next periodic read counts from this one.
        poll.reset();
        let change = match client.fleet().await {
            Ok(fleet) => {
                if !send(&tx, &name, WatchKind::Fleet(fleet)) {
                    return;
                }
                // Silences keep notices quiet; a collector older than them answers 404.
                match client.silences().await {
                    Ok(silences) => {
                        if !send(&tx, &name, WatchKind::Silences(silences)) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(collector = %name, code = %e.code, "cannot read the silences");
                    }
                }
                match client.alerts(Some("open"), 50).await {
                    Ok(page) => {
                        if !send(&tx, &name, WatchKind::Alerts(page.alerts)) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(collector = %name, code = %e.code, "cannot read the open alerts");
                    }
                }
                reported.change(ConnState::Connected, None)
            }
            Err(e) => {
                tracing::debug!(collector = %name, code = %e.code, "cannot read the fleet");
                reported.change(ConnState::Failing, Some(e.message))
            }
        };
        if let Some(status) = change {
            if !send(&tx, &name, WatchKind::Status(status)) {
                return;
            }
        }
    }
}

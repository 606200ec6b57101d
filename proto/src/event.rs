use serde::{Deserialize, Serialize};

use crate::{AppKind, AppState, Exit};

/// A status transition of one app, as the agent saw it. Served on `GET /v1/events` (SSE, event
/// `transition`, id `INSTANCE:ID`); `Last-Event-ID` resumes after that id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppEvent {
    /// Increases by one per event within one agent instance.
    pub id: u64,
    pub instance_id: String,
    pub app: String,
    pub kind: AppKind,
    pub from: AppState,
    pub to: AppState,
    /// The same state with a new process: a restart of a running app (new systemd InvocationID or
    /// MainPID, new container start time).
    pub restarted: bool,
    pub at_unix_ms: u64,
    /// How the main process ended, when the transition is an exit.
    pub exit: Option<Exit>,
    pub restarts: Option<u64>,
    /// What revealed it: a systemd signal, a Docker event, or a poll.
    pub source: EventSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EventSource {
    Systemd,
    Docker,
    Poll,
}

impl AppEvent {
    /// The SSE event id: the instance and the event's number, so a client reconnecting to a
    /// restarted agent can tell its `Last-Event-ID` is from another instance.
    pub fn sse_id(&self) -> String {
        format!("{}:{}", self.instance_id, self.id)
    }
}

//! Fleetdeck's wire types, shared by the agent, the collector and the desktop.
//!
//! Only data and serde live here, so the crate builds for wasm32 (the Yew UI). The daemons turn on
//! the `openapi` feature to derive their OpenAPI schemas from these very types.

#![forbid(unsafe_code)]

mod app;
mod collector;
pub mod desktop;
mod env;
mod error;
mod event;
mod host;
mod info;
mod log;
mod sample;

pub use app::{
    signal_name, ActionOutcome, AppAction, AppKind, AppState, AppStatus, DockerDetail, Exit,
    SourceHealth, Sources, SystemdDetail,
};
pub use collector::{
    AppView, AuditEntry, AuditPage, DayUptime, EventsPage, Fleet, FleetEvent, FleetEventKind,
    FleetHealth, FleetSummary, HostStatus, HostView, KeyCreated, KeyInfo, MetricPoint, Metrics,
    NewKey, Role, Severity, Uptime,
};
pub use env::{EnvEntry, EnvFile, EnvUpdate, EnvWritten};
pub use error::{ErrorBody, ErrorDetail};
pub use event::{AppEvent, EventSource};
pub use host::{Cpu, Filesystem, HostMetrics, Load, Memory, NetInterface, Swap};
pub use info::{Info, Snapshot};
pub use log::{LogEntry, LogPage, LogStream};
pub use sample::{AppSample, FsSample, NetSample, Sample, SamplesPage};

/// The version of the agent's wire contract served under `/v1`.
pub const WIRE_VERSION: u32 = 1;

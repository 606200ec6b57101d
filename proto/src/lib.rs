//! Fleetdeck's wire types, shared by the agent, the collector and the desktop.
//!
//! Only data and serde live here, so the crate builds for wasm32 (the Yew UI). The daemons turn on
//! the `openapi` feature to derive their OpenAPI schemas from these very types.

#![forbid(unsafe_code)]

mod alerts;
mod app;
mod check;
mod collector;
pub mod desktop;
mod env;
mod error;
mod event;
mod host;
mod info;
mod log;
mod sample;

pub use alerts::{
    glob_match, AlertAck, AlertDelivery, AlertPage, AlertRecord, AlertState, ChannelInfo,
    ChannelTest, NewSilence, Silence,
};
pub use app::{
    signal_name, ActionOutcome, AppAction, AppKind, AppState, AppStatus, DockerDetail, Exit,
    Expect, SourceHealth, Sources, SystemdDetail,
};
pub use check::{CheckKind, CheckResult, CheckSample};
pub use collector::{
    AlertPolicyView, AppMetricPoint, AppMetrics, AppView, AuditEntry, AuditPage, CheckPoint,
    ClusterStatus, DayUptime, EventsPage, Fleet, FleetEvent, FleetEventKind, FleetHealth,
    FleetSummary, HostStatus, HostView, KeyCreated, KeyInfo, MetricPoint, Metrics, NewKey, Problem,
    Role, Severity, ThresholdHit, Uptime,
};
pub use env::{EnvBackup, EnvBackups, EnvEntry, EnvFile, EnvUpdate, EnvWritten};
pub use error::{ErrorBody, ErrorDetail};
pub use event::{AgentEvent, AppEvent, CheckEvent, CrashContext, EventSource, SourceEvent};
pub use host::{Cpu, DiskIo, Filesystem, HostMetrics, Load, Memory, NetInterface, Swap};
pub use info::{Info, Snapshot};
pub use log::{
    check_log_range, parse_log_priority, LogEntry, LogPage, LogSearchEvent, LogStream, LogTarget,
    MAX_LOG_TIME_MS,
};
pub use sample::{AppSample, DiskIoSample, FsSample, NetSample, Sample, SamplesPage};

/// The version of the agent's wire contract served under `/v1`.
pub const WIRE_VERSION: u32 = 1;

use serde::{Deserialize, Serialize};

use crate::{AppStatus, HostMetrics, Sources};

/// `GET /v1/info`: who this agent is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Info {
    pub agent_version: String,
    pub wire_version: u32,
    pub hostname: String,
    /// New at each start of the agent: a collector seeing a new one starts its backfill afresh.
    pub instance_id: String,
    pub boot_id: String,
    pub started_unix_ms: u64,
    /// What this agent can do, e.g. `systemd`, `docker`, `host`.
    pub capabilities: Vec<String>,
    /// How often a sample is recorded, and how many are kept: the backfill horizon.
    pub sample_interval_ms: u64,
    pub samples_capacity: u64,
    /// Heap the sample ring holds now.
    pub samples_memory_bytes: u64,
}

/// `GET /v1/snapshot`: one poll of the host and every configured app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// Increases by one with every snapshot this agent instance takes.
    pub seq: u64,
    pub instance_id: String,
    pub taken_unix_ms: u64,
    pub host: HostMetrics,
    pub apps: Vec<AppStatus>,
    /// Whether systemd and Docker answered; an app whose source is down is `unknown`.
    pub sources: Sources,
}

use serde::{Deserialize, Serialize};

use crate::{AppState, CheckSample};

/// One entry of the agent's ring buffer: host figures and every app's status at `taken_unix_ms`.
/// Compact on purpose (a day of them stays in the agent's memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    /// Increases by one per sample within one agent instance; a new instance starts again at 1.
    pub seq: u64,
    pub taken_unix_ms: u64,
    /// Busy share of all cores, 0–100, one decimal.
    pub cpu_percent: Option<f32>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub swap_used_bytes: u64,
    #[serde(default)]
    pub swap_total_bytes: u64,
    /// Logical cores, for load per core (0 in samples of older agents).
    #[serde(default)]
    pub cores: u32,
    pub load1: f32,
    pub load5: f32,
    pub load15: f32,
    pub filesystems: Vec<FsSample>,
    pub network: Vec<NetSample>,
    pub apps: Vec<AppSample>,
    /// Block devices' I/O rates (whole disks, from /proc/diskstats).
    #[serde(default)]
    pub disks: Vec<DiskIoSample>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FsSample {
    pub mount_point: String,
    pub used_bytes: u64,
    /// What apps can fill: used + available, as `df` computes its Use% (the blocks reserved for
    /// root are left out), so used / total is the percentage an operator knows from `df`.
    pub total_bytes: u64,
    #[serde(default)]
    pub inodes_used: u64,
    /// 0 when the filesystem has no fixed inode count (btrfs, some network filesystems).
    #[serde(default)]
    pub inodes_total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskIoSample {
    /// The kernel's name of the device (`sda`, `vda`, `nvme0n1`, `loop3`).
    pub device: String,
    pub read_bytes_per_sec: Option<u64>,
    pub write_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetSample {
    pub name: String,
    pub rx_bytes_per_sec: Option<u64>,
    pub tx_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppSample {
    pub name: String,
    pub state: AppState,
    pub restarts: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub cpu_percent: Option<f32>,
    /// The memory limit of the app's cgroup or container, when it has one.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// Containers: network rates over the sample's window.
    #[serde(default)]
    pub net_rx_bytes_per_sec: Option<u64>,
    #[serde(default)]
    pub net_tx_bytes_per_sec: Option<u64>,
    /// Each check's result at that time.
    #[serde(default)]
    pub checks: Vec<CheckSample>,
}

/// `GET /v1/samples?after=SEQ`: the samples newer than SEQ, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SamplesPage {
    /// Seqs belong to this instance; after a restart of the agent they start again.
    pub instance_id: String,
    /// The oldest sample still held; a client whose `after` is below `oldest_seq - 1` lost the gap.
    pub oldest_seq: Option<u64>,
    pub latest_seq: Option<u64>,
    pub samples: Vec<Sample>,
    /// More samples follow: ask again with `after` = the last seq of this page.
    pub more: bool,
}

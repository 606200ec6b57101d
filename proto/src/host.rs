use serde::{Deserialize, Serialize};

/// Host metrics from /proc. Rates (CPU %, bytes/s) are averages over `window_secs`, since the
/// agent's baseline reading (which moves forward at most once a second, so clients polling a
/// moment apart still get a meaningful window); right after the agent starts they may be absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostMetrics {
    pub hostname: String,
    pub boot_id: String,
    pub uptime_secs: f64,
    pub window_secs: Option<f64>,
    pub cpu: Cpu,
    pub memory: Memory,
    pub swap: Swap,
    pub load: Load,
    pub filesystems: Vec<Filesystem>,
    pub network: Vec<NetInterface>,
    /// Whole block devices' I/O rates over `window_secs` (from /proc/diskstats).
    #[serde(default)]
    pub disks: Vec<DiskIo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cpu {
    pub cores: u32,
    /// Busy time of all cores together, 0–100.
    pub total_percent: Option<f64>,
    pub per_core_percent: Vec<f64>,
}

/// `used_bytes` is `total_bytes - available_bytes`: page cache the kernel can drop is not "used".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Swap {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Load {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// A real mounted filesystem (no proc, sysfs, tmpfs, overlay or other pseudo filesystems).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    /// As `df` counts it: blocks in use, including those reserved for root.
    pub used_bytes: u64,
    /// What an unprivileged process can still write.
    pub available_bytes: u64,
    #[serde(default)]
    pub inodes_total: u64,
    #[serde(default)]
    pub inodes_used: u64,
}

/// One block device's I/O.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskIo {
    pub device: String,
    pub read_bytes_total: u64,
    pub written_bytes_total: u64,
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetInterface {
    pub name: String,
    pub rx_bytes_total: u64,
    pub tx_bytes_total: u64,
    pub rx_bytes_per_sec: Option<f64>,
    pub tx_bytes_per_sec: Option<f64>,
}

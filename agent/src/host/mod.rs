//! Host metrics from /proc (parsed by procfs) and statvfs: CPU and network rates from deltas
//! between readings, memory as the kernel's own MemAvailable sees it, and real filesystems only.

mod parse;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fleetdeck_proto::{Cpu, DiskIo, Filesystem, HostMetrics, Load, Memory, NetInterface, Swap};
use procfs::prelude::*;
use procfs::{CpuTime, KernelStats, LoadAverage, Uptime};

pub use parse::{
    busy_fraction, disk_counters, is_whole_disk, meminfo, real_mounts, storage_filesystems,
    MemInfo, RealMount,
};

/// A rate baseline is replaced only once it is this old, so that two clients polling a moment
/// apart still see rates over a meaningful window.
const MIN_RATE_WINDOW: Duration = Duration::from_secs(1);

/// How long statvfs may take for all filesystems (a hung network mount must not hang a snapshot).
const STATVFS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: &'static str,
        error: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: &'static str, message: String },
}

#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    cpu_total: CpuTime,
    cpu_cores: Vec<CpuTime>,
    net: HashMap<String, (u64, u64)>,
    /// Whole disks: bytes read and written since boot.
    disks: HashMap<String, (u64, u64)>,
}

/// Reads host metrics; keeps the previous counters to turn them into rates.
#[derive(Debug)]
pub struct HostReader {
    hostname: String,
    boot_id: String,
    baseline: Mutex<Option<Counters>>,
    storage_types: Vec<String>,
}

impl HostReader {
    /// Reads the host's fixed facts and takes the first counters, so the first snapshot has rates.
    pub fn new() -> Result<Self, HostError> {
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let boot_id = read_text("/proc/sys/kernel/random/boot_id")?
            .trim()
            .to_owned();
        let storage_types = storage_filesystems(&read_text("/proc/filesystems")?);
        let reader = Self {
            hostname,
            boot_id,
            baseline: Mutex::new(None),
            storage_types,
        };
        let first = reader.read_counters()?;
        *reader.lock_baseline() = Some(first);
        Ok(reader)
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    fn lock_baseline(&self) -> std::sync::MutexGuard<'_, Option<Counters>> {
        // A panic while holding this lock leaves at worst a stale baseline: keep going.
        self.baseline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read_counters(&self) -> Result<Counters, HostError> {
        let stat = KernelStats::from_read(
            read_bytes("/proc/stat")?.as_slice(),
            procfs::current_system_info(),
        )
        .map_err(|e| parse_err("/proc/stat", e))?;
        let net =
            procfs::net::InterfaceDeviceStatus::from_read(read_bytes("/proc/net/dev")?.as_slice())
                .map_err(|e| parse_err("/proc/net/dev", e))?;
        // Without /proc/diskstats (some containers) there is no disk I/O to report, which is no
        // reason to fail a snapshot.
        let disks = std::fs::read("/proc/diskstats")
            .map(|text| {
                disk_counters(&text, &|name| {
                    is_whole_disk(name) && std::path::Path::new("/sys/block").join(name).exists()
                })
            })
            .unwrap_or_default();
        Ok(Counters {
            at: Instant::now(),
            disks,
            cpu_total: stat.total,
            cpu_cores: stat.cpu_time,
            net: net
                .0
                .into_values()
                .filter(|d| d.name != "lo")
                .map(|d| (d.name, (d.recv_bytes, d.sent_bytes)))
                .collect(),
        })
    }

    /// Reads everything once. Rates cover the time since the baseline reading.
    pub async fn read(&self) -> Result<HostMetrics, HostError> {
        let now = self.read_counters()?;
        let (cpu, network, disks, window) = {
            let mut baseline = self.lock_baseline();
            let rates = rates(baseline.as_ref(), &now);
            if baseline
                .as_ref()
                .is_none_or(|b| now.at.duration_since(b.at) >= MIN_RATE_WINDOW)
            {
                *baseline = Some(now);
            }
            rates
        };
        let meminfo =
            meminfo(&read_text("/proc/meminfo")?).map_err(|message| HostError::Parse {
                path: "/proc/meminfo",
                message,
            })?;
        let load = LoadAverage::from_read(read_bytes("/proc/loadavg")?.as_slice())
            .map_err(|e| parse_err("/proc/loadavg", e))?;
        let uptime = Uptime::from_read(read_bytes("/proc/uptime")?.as_slice())
            .map_err(|e| parse_err("/proc/uptime", e))?;
        let filesystems = self.filesystems().await?;

        let available = meminfo.mem_available.unwrap_or(meminfo.mem_free);
        Ok(HostMetrics {
            hostname: self.hostname.clone(),
            boot_id: self.boot_id.clone(),
            uptime_secs: uptime.uptime,
            window_secs: window.map(|w| w.as_secs_f64()),
            cpu,
            memory: Memory {
                total_bytes: meminfo.mem_total,
                available_bytes: available,
                used_bytes: meminfo.mem_total.saturating_sub(available),
            },
            swap: Swap {
                total_bytes: meminfo.swap_total,
                free_bytes: meminfo.swap_free,
                used_bytes: meminfo.swap_total.saturating_sub(meminfo.swap_free),
            },
            load: Load {
                one: round2(load.one),
                five: round2(load.five),
                fifteen: round2(load.fifteen),
            },
            filesystems,
            network,
            disks,
        })
    }

    async fn filesystems(&self) -> Result<Vec<Filesystem>, HostError> {
        let mountinfo = read_text("/proc/self/mountinfo")?;
        let mounts = real_mounts(&mountinfo, &self.storage_types);
        let stat = tokio::task::spawn_blocking(move || {
            mounts
                .into_iter()
                .filter_map(|m| statvfs(m).ok())
                // A filesystem of zero blocks is a placeholder, not storage.
                .filter(|f| f.total_bytes > 0)
                .collect::<Vec<_>>()
        });
        match tokio::time::timeout(STATVFS_TIMEOUT, stat).await {
            Ok(Ok(fs)) => Ok(fs),
            // statvfs hung (a dead network mount) or its thread panicked: report no filesystems
            // this time rather than no snapshot.
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(
                    "statvfs of the mounted filesystems took over {STATVFS_TIMEOUT:?}; skipped"
                );
                Ok(Vec::new())
            }
        }
    }
}

/// Resident memory of one process (from `/proc/PID/statm`), for units whose cgroup has no
/// memory accounting (systemd reports `MemoryCurrent` as unknown then).
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read(format!("/proc/{pid}/statm")).ok()?;
    let statm = procfs::process::StatM::from_read(statm.as_slice()).ok()?;
    Some(statm.resident * procfs::page_size())
}

fn statvfs(m: RealMount) -> rustix::io::Result<Filesystem> {
    let s = rustix::fs::statvfs(m.mount_point.as_str())?;
    let frsize = s.f_frsize;
    Ok(Filesystem {
        total_bytes: s.f_blocks * frsize,
        used_bytes: s.f_blocks.saturating_sub(s.f_bfree) * frsize,
        available_bytes: s.f_bavail * frsize,
        inodes_total: s.f_files,
        inodes_used: s.f_files.saturating_sub(s.f_ffree),
        mount_point: m.mount_point,
        device: m.device,
        fs_type: m.fs_type,
    })
}

fn rates(
    baseline: Option<&Counters>,
    now: &Counters,
) -> (Cpu, Vec<NetInterface>, Vec<DiskIo>, Option<Duration>) {
    let window = baseline
        .map(|b| now.at.duration_since(b.at))
        .filter(|w| !w.is_zero());
    let base = baseline.filter(|_| window.is_some());
    let total_percent = base
        .and_then(|b| busy_fraction(&b.cpu_total, &now.cpu_total))
        .map(percent);
    let per_core_percent = match base {
        // Per-core figures only when the total has one (at least one tick passed) and no core
        // came or went since the baseline.
        Some(b) if total_percent.is_some() && b.cpu_cores.len() == now.cpu_cores.len() => b
            .cpu_cores
            .iter()
            .zip(&now.cpu_cores)
            .map(|(a, n)| busy_fraction(a, n).map_or(0.0, percent))
            .collect(),
        _ => Vec::new(),
    };
    let cpu = Cpu {
        cores: now.cpu_cores.len() as u32,
        total_percent,
        per_core_percent,
    };
    let mut network: Vec<NetInterface> = now
        .net
        .iter()
        .map(|(name, &(rx, tx))| {
            let per_sec = |old: u64, new: u64| {
                let secs = window?.as_secs_f64();
                // A counter that went backwards (interface re-created) gives no rate, not a negative one.
                new.checked_sub(old).map(|d| d as f64 / secs)
            };
            let old = base.and_then(|b| b.net.get(name));
            NetInterface {
                name: name.clone(),
                rx_bytes_total: rx,
                tx_bytes_total: tx,
                rx_bytes_per_sec: old.and_then(|&(orx, _)| per_sec(orx, rx)),
                tx_bytes_per_sec: old.and_then(|&(_, otx)| per_sec(otx, tx)),
            }
        })
        .collect();
    network.sort_by(|a, b| a.name.cmp(&b.name));
    let mut disks: Vec<DiskIo> = now
        .disks
        .iter()
        .map(|(name, &(read, written))| {
            let per_sec = |old: u64, new: u64| {
                let secs = window?.as_secs_f64();
                new.checked_sub(old).map(|d| d as f64 / secs)
            };
            let old = base.and_then(|b| b.disks.get(name));
            DiskIo {
                device: name.clone(),
                read_bytes_total: read,
                written_bytes_total: written,
                read_bytes_per_sec: old.and_then(|&(o, _)| per_sec(o, read)),
                write_bytes_per_sec: old.and_then(|&(_, o)| per_sec(o, written)),
            }
        })
        .collect();
    disks.sort_by(|a, b| a.device.cmp(&b.device));
    (cpu, network, disks, window)
}

/// The kernel prints load with two decimals; keep them, not f32's noise.
fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

fn percent(fraction: f64) -> f64 {
    (fraction * 1000.0).round() / 10.0
}

fn read_bytes(path: &'static str) -> Result<Vec<u8>, HostError> {
    std::fs::read(path).map_err(|error| HostError::Read { path, error })
}

fn read_text(path: &'static str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|error| HostError::Read { path, error })
}

fn parse_err(path: &'static str, e: procfs::ProcError) -> HostError {
    HostError::Parse {
        path,
        message: e.to_string(),
    }
}

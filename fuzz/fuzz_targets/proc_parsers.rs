//! Arbitrary text as each /proc file the agent reads (`/proc/stat`, `meminfo`, `net/dev`,
//! `loadavg`, `uptime`, `PID/statm`, `filesystems`, `self/mountinfo`), through the same parsers
//! (procfs and `host::parse`): none panics, and what comes out is sane (a CPU busy fraction
//! between 0 and 1, mounts only of the storage types asked for).

#![no_main]

use fleetdeck_agent::host::{busy_fraction, meminfo, real_mounts, storage_filesystems};
use libfuzzer_sys::fuzz_target;
use procfs::net::InterfaceDeviceStatus;
use procfs::prelude::*;
use procfs::process::StatM;
use procfs::{ExplicitSystemInfo, KernelStats, LoadAverage, Uptime};

const SYSTEM: ExplicitSystemInfo = ExplicitSystemInfo {
    boot_time_secs: 1_700_000_000,
    ticks_per_second: 100,
    page_size: 4096,
    is_little_endian: true,
};

/// A typical `/proc/filesystems`, for mountinfo inputs that come without one.
const FILESYSTEMS: &str = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\n\txfs\n\tbtrfs\n\
    \tsquashfs\nnodev\tzfs\nnodev\tnfs4\nnodev\toverlay\n";

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            // Two readings of /proc/stat, as the rate baseline and now.
            let mut halves = text.splitn(2, |b| *b == 0);
            let old = KernelStats::from_read(halves.next().unwrap_or_default(), &SYSTEM);
            let new = KernelStats::from_read(halves.next().unwrap_or_default(), &SYSTEM);
            if let (Ok(old), Ok(new)) = (old, new) {
                let pairs = std::iter::once((&old.total, &new.total))
                    .chain(old.cpu_time.iter().zip(&new.cpu_time));
                for (a, b) in pairs {
                    if let Some(f) = busy_fraction(a, b) {
                        assert!((0.0..=1.0).contains(&f), "{f} from {a:?} {b:?}");
                    }
                }
            }
        }
        1 => {
            // The agent's own reader (procfs 0.18's `Meminfo` panicked on odd names and sizes).
            let _ = meminfo(&String::from_utf8_lossy(text));
        }
        2 => {
            let _ = InterfaceDeviceStatus::from_read(text);
        }
        3 => {
            let _ = LoadAverage::from_read(text);
        }
        4 => {
            let _ = Uptime::from_read(text);
        }
        5 => {
            let _ = StatM::from_read(text);
        }
        6 => {
            let text = String::from_utf8_lossy(text);
            let storage = storage_filesystems(&text);
            // Each a type name: one word, never the `nodev` marker itself.
            for t in &storage {
                assert!(!t.is_empty() && t != "nodev", "{t:?}");
                assert!(!t.contains(char::is_whitespace), "{t:?}");
            }
        }
        _ => {
            // mountinfo, optionally preceded by its own /proc/filesystems and a NUL.
            let text = String::from_utf8_lossy(text);
            let (filesystems, mountinfo) = text.split_once('\0').unwrap_or((FILESYSTEMS, &text));
            let storage = storage_filesystems(filesystems);
            let mounts = real_mounts(mountinfo, &storage);
            for m in &mounts {
                assert!(storage.contains(&m.fs_type), "{m:?}");
            }
        }
    }
});

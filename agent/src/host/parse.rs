//! Pure functions over /proc text and counters, tested on fixtures.

use std::collections::HashMap;

use procfs::CpuTime;

/// Filesystem types that are real storage although the kernel lists them as `nodev`.
const NODEV_BUT_REAL: &[&str] = &[
    "zfs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
    "9p",
    "virtiofs",
];
/// Block filesystems that are read-only images (snaps, live media): noise on a server's disk list.
const IMAGE_FILESYSTEMS: &[&str] = &["squashfs", "erofs", "iso9660"];

/// The filesystem types that hold real storage: those `/proc/filesystems` lists without `nodev`
/// (ext4, xfs, btrfs, ...), less read-only images, plus the `nodev` ones that are real storage
/// (zfs, nfs, ...). Types the kernel does not list there at all (nsfs) are not real either.
/// Each line is a type, after `nodev` and a tab if it has no block device; a line of any other
/// shape names no type (found by fuzzing: `\tnodev\tx` was taken for a type `nodev\tx`).
pub fn storage_filesystems(proc_filesystems: &str) -> Vec<String> {
    proc_filesystems
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (Some("nodev"), Some(t), None) => Some(t).filter(|t| NODEV_BUT_REAL.contains(t)),
                (Some(t), None, None) if t != "nodev" => {
                    Some(t).filter(|t| !IMAGE_FILESYSTEMS.contains(t))
                }
                _ => None,
            }
        })
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealMount {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
}

/// The mounts of `/proc/self/mountinfo` whose type is in `storage` (see [`storage_filesystems`]),
/// each device once (bind mounts of it are left out; the shortest mount point stays).
pub fn real_mounts(mountinfo: &str, storage: &[String]) -> Vec<RealMount> {
    let mut out: Vec<(String, RealMount)> = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(majmin), Some(mount_point), Some(fs_type), Some(source)) =
            (left.get(2), left.get(4), right.first(), right.get(1))
        else {
            continue;
        };
        if !storage.iter().any(|t| t == fs_type) {
            continue;
        }
        let mount = RealMount {
            mount_point: unescape_octal(mount_point),
            device: unescape_octal(source),
            fs_type: (*fs_type).to_owned(),
        };
        match out.iter_mut().find(|(mm, _)| mm == majmin) {
            Some((_, kept)) if mount.mount_point.len() < kept.mount_point.len() => *kept = mount,
            Some(_) => {}
            None => out.push(((*majmin).to_owned(), mount)),
        }
    }
    out.into_iter().map(|(_, m)| m).collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\040`-style octal. An escape above
/// `\377` is no byte, so it stays as written (found by fuzzing: `\777` overflowed a u8).
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The figures of `/proc/meminfo` the agent reports, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_free: u64,
    /// Since Linux 3.14.
    pub mem_available: Option<u64>,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// Reads `/proc/meminfo` (`Name:   123 kB` lines). Not procfs's `Meminfo`: that one panics on a
/// field name ending in a multi-byte character and overflows on sizes past a u64 (found by
/// fuzzing, procfs 0.18); here a line that is not a size is skipped and an absurd size refused.
pub fn meminfo(text: &str) -> Result<MemInfo, String> {
    let mut fields = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(Ok(value)), unit, None) = (
            words.next().map(str::parse::<u64>),
            words.next(),
            words.next(),
        ) else {
            continue;
        };
        let bytes = match unit {
            None => Some(value),
            Some("kB") => value.checked_mul(1024),
            Some(_) => continue,
        };
        let bytes = bytes.ok_or_else(|| format!("{name} is larger than 16 EiB"))?;
        fields.insert(name.trim(), bytes);
    }
    let need = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or_else(|| format!("no {name} line"))
    };
    Ok(MemInfo {
        mem_total: need("MemTotal")?,
        mem_free: need("MemFree")?,
        mem_available: fields.get("MemAvailable").copied(),
        swap_total: need("SwapTotal")?,
        swap_free: need("SwapFree")?,
    })
}

/// The fraction of time not idle between two readings, or `None` if no time passed.
/// Guest time is already inside user time, so it is not added again.
pub fn busy_fraction(old: &CpuTime, new: &CpuTime) -> Option<f64> {
    // Checked: counters that do not fit in a u64 together are garbage, not a reading.
    let total = |c: &CpuTime| {
        [
            c.nice,
            c.system,
            c.idle,
            c.iowait.unwrap_or(0),
            c.irq.unwrap_or(0),
            c.softirq.unwrap_or(0),
            c.steal.unwrap_or(0),
        ]
        .into_iter()
        .try_fold(c.user, u64::checked_add)
    };
    let idle = |c: &CpuTime| c.idle.saturating_add(c.iowait.unwrap_or(0));
    let dt = total(new)?.checked_sub(total(old)?)?;
    if dt == 0 {
        return None;
    }
    let didle = idle(new).saturating_sub(idle(old)).min(dt);
    Some((dt - didle) as f64 / dt as f64)
}

/// Bytes read and written since boot per device of `/proc/diskstats`, for the devices `keep`
/// accepts that ever did any I/O (an unused loop device is not a disk anyone watches). Sectors
/// in this file are 512 bytes whatever the device's own sector size. Lines that do not parse
/// are skipped.
pub fn disk_counters(diskstats: &[u8], keep: &dyn Fn(&str) -> bool) -> HashMap<String, (u64, u64)> {
    String::from_utf8_lossy(diskstats)
        .lines()
        .filter_map(|line| procfs::DiskStat::from_line(line).ok())
        .filter(|d| keep(&d.name) && (d.reads > 0 || d.writes > 0))
        .map(|d| {
            (
                d.name,
                (
                    d.sectors_read.saturating_mul(512),
                    d.sectors_written.saturating_mul(512),
                ),
            )
        })
        .collect()
}

/// Whether a block device name can be a whole disk worth reporting: not a RAM disk, and not a
/// device stacked on other disks (device mapper, software RAID), whose I/O its disks already
/// count. Partitions are told apart by the caller (`/sys/block` lists whole devices only).
pub fn is_whole_disk(name: &str) -> bool {
    !(name.starts_with("ram")
        || name.starts_with("zram")
        || name.starts_with("dm-")
        || name.starts_with("md"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::prelude::*;
    use procfs::{ExplicitSystemInfo, KernelStats};

    const FILESYSTEMS: &str = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tcgroup2\n\text4\n\
        nodev\toverlay\n\txfs\n\tsquashfs\nnodev\tzfs\nnodev\tnfs4\n\tbtrfs\n";

    #[test]
    fn storage_types_are_block_and_network_filesystems() {
        assert_eq!(
            storage_filesystems(FILESYSTEMS),
            ["ext4", "xfs", "zfs", "nfs4", "btrfs"]
        );
        // Found by fuzzing (fuzz/, proc_parsers): a line of another shape is no type at all.
        assert_eq!(
            storage_filesystems("\tnodev\tmqueue\nnodev\nnodev zfs extra\n ext4 \n\n"),
            ["ext4"]
        );
    }

    #[test]
    fn real_mounts_drop_pseudo_images_and_bind_mounts() {
        let mountinfo = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
23 1 0:22 / /sys rw - sysfs sysfs rw
25 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
26 25 0:5 / /dev rw - devtmpfs udev rw
27 25 0:23 / /run rw - tmpfs tmpfs rw
28 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
30 25 253:1 / /srv/my\\040data rw - xfs /dev/vdb1 rw
31 25 253:0 /etc/hosts /etc/hosts rw - ext4 /dev/vda rw
32 25 7:1 / /snap/core/1 ro - squashfs /dev/loop1 ro
33 25 0:40 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw
34 25 0:41 / /mnt/nfs rw - nfs4 srv:/export rw
35 25 0:42 / /tank rw - zfs tank rw
36 25 0:43 / /home/u/.cache/x rw - fuse.sshfs u@h:/ rw
37 25 0:4 net:[4026532] /run/netns/x rw - nsfs nsfs rw
bad line without separator
";
        let got: Vec<(String, String, String)> =
            real_mounts(mountinfo, &storage_filesystems(FILESYSTEMS))
                .into_iter()
                .map(|m| (m.mount_point, m.device, m.fs_type))
                .collect();
        let want = [
            ("/", "/dev/vda", "ext4"),
            ("/srv/my data", "/dev/vdb1", "xfs"),
            ("/mnt/nfs", "srv:/export", "nfs4"),
            ("/tank", "tank", "zfs"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn octal_escapes_above_a_byte_stay_as_written() {
        // Found by fuzzing (fuzz/, proc_parsers): `\777` overflowed a u8 and panicked.
        assert_eq!(unescape_octal("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_octal("/x\\777\\400\\0"), "/x\\777\\400\\0");
    }

    #[test]
    fn meminfo_in_bytes() {
        let text = "MemTotal:       24684084 kB\nMemFree:        11930320 kB\n\
            MemAvailable:   22303120 kB\nHugePages_Total:       0\nSwapTotal:       1048572 kB\n\
            SwapFree:        1048572 kB\nnot a line\nOdd: x kB\n";
        assert_eq!(
            meminfo(text),
            Ok(MemInfo {
                mem_total: 24684084 * 1024,
                mem_free: 11930320 * 1024,
                mem_available: Some(22303120 * 1024),
                swap_total: 1048572 * 1024,
                swap_free: 1048572 * 1024,
            })
        );
        // Found by fuzzing (fuzz/, proc_parsers): procfs's parser panicked on both of these.
        let odd_name = text.replace("Odd:", "Odd\u{fa}:");
        assert!(meminfo(&odd_name).is_ok());
        let huge = text.replace("24684084", &u64::MAX.to_string());
        assert_eq!(
            meminfo(&huge),
            Err("MemTotal is larger than 16 EiB".to_owned())
        );
        assert_eq!(
            meminfo("MemTotal: 1 kB\n"),
            Err("no MemFree line".to_owned())
        );
    }

    fn stat(text: &str) -> KernelStats {
        let si = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: true,
        };
        KernelStats::from_read(text.as_bytes(), &si).expect("fixture parses")
    }

    #[test]
    fn busy_fraction_from_deltas() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let a = stat("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\nctxt 1\nbtime 1\nprocesses 1\n");
        let b = stat("cpu  250 0 150 1000 100 0 0 0 50 0\ncpu0 250 0 150 1000 100 0 0 0 50 0\nctxt 1\nbtime 1\nprocesses 1\n");
        // total delta: 150+50+200+100 = 500; idle delta: 200+100 = 300; busy 200/500
        let f = busy_fraction(&a.total, &b.total).expect("time passed");
        assert!((f - 0.4).abs() < 1e-9, "{f}");
        assert_eq!(busy_fraction(&a.total, &a.total), None);
        // counters that went backwards (a different boot) give no figure
        assert_eq!(busy_fraction(&b.total, &a.total), None);
        // nor do counters whose sum overflows a u64 (it panicked in debug builds)
        let huge = stat(&format!("cpu  {m} {m} 0 0 0 0 0 0 0 0\ncpu0 {m} {m} 0 0 0 0 0 0 0 0\nctxt 1\nbtime 1\nprocesses 1\n", m = u64::MAX));
        assert_eq!(busy_fraction(&a.total, &huge.total), None);
    }

    #[test]
    fn disk_counters_keep_whole_disks_that_did_io() {
        let text = b"\
 253       0 vda 31474 10230 2396042 14096 418765 250013 10254768 346361 0 382040 375700 0 0 0 0 65207 15242
 253       1 vda1 31300 10230 2389000 14000 418700 250013 10254700 346000 0 382000 375600 0 0 0 0 0 0
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       1 loop1 120 0 2048 10 4 0 16 1 0 12 11 0 0 0 0 0 0
 252       0 dm-0 900 0 8000 10 20 0 160 1 0 12 11
   1       0 ram0 5 0 40 0 0 0 0 0 0 0 0
garbage line
";
        let whole = |name: &str| is_whole_disk(name) && !name.ends_with('1') || name == "loop1";
        let got = disk_counters(text, &whole);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got["vda"], (2_396_042 * 512, 10_254_768 * 512));
        assert_eq!(got["loop1"], (2048 * 512, 16 * 512));
    }
}

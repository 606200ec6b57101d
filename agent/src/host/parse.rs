//! Pure functions over /proc text and counters, tested on fixtures.

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
pub fn storage_filesystems(proc_filesystems: &str) -> Vec<String> {
    proc_filesystems
        .lines()
        .filter_map(|l| match l.strip_prefix("nodev") {
            Some(t) => Some(t.trim()).filter(|t| NODEV_BUT_REAL.contains(t)),
            None => Some(l.trim()).filter(|t| !t.is_empty() && !IMAGE_FILESYSTEMS.contains(t)),
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

/// mountinfo escapes space, tab, newline and backslash as `\040`-style octal.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
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

/// The fraction of time not idle between two readings, or `None` if no time passed.
/// Guest time is already inside user time, so it is not added again.
pub fn busy_fraction(old: &CpuTime, new: &CpuTime) -> Option<f64> {
    let total = |c: &CpuTime| {
        c.user
            + c.nice
            + c.system
            + c.idle
            + c.iowait.unwrap_or(0)
            + c.irq.unwrap_or(0)
            + c.softirq.unwrap_or(0)
            + c.steal.unwrap_or(0)
    };
    let idle = |c: &CpuTime| c.idle + c.iowait.unwrap_or(0);
    let dt = total(new).checked_sub(total(old))?;
    if dt == 0 {
        return None;
    }
    let didle = idle(new).saturating_sub(idle(old)).min(dt);
    Some((dt - didle) as f64 / dt as f64)
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
    }
}

//! Host metrics from the real agent agree with /proc and statvfs read independently here.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use fleetdeck_proto::Snapshot;

fn meminfo_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .expect("field present");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

/// The first number of a /proc file such as /proc/uptime or /proc/loadavg.
fn first_number(path: &str) -> f64 {
    let text = std::fs::read_to_string(path).expect("proc file");
    text.split_whitespace()
        .next()
        .expect("field")
        .parse()
        .expect("number")
}

async fn snapshot(agent: &RunningAgent) -> Snapshot {
    serde_json::from_value(agent.get_json("/v1/snapshot").await).expect("snapshot")
}

#[tokio::test]
async fn host_metrics_agree_with_proc() {
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(""));
    // Rates need a window: right after the start the agent has no earlier reading to compare.
    let snap = wait_for(
        "a snapshot with a rate window of 1 s",
        std::time::Duration::from_secs(10),
        || async {
            let s = snapshot(&agent).await;
            s.host.window_secs.filter(|w| *w >= 1.0).map(|_| s)
        },
    )
    .await;
    let host = &snap.host;

    assert_eq!(
        host.boot_id,
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .expect("boot_id")
            .trim()
    );
    assert_eq!(host.hostname, run("hostname", &[]).trim());
    let uptime = first_number("/proc/uptime");
    assert!(
        (host.uptime_secs - uptime).abs() < 5.0,
        "uptime {} vs /proc {uptime}",
        host.uptime_secs
    );

    // Memory: total exact; used = total - MemAvailable, which moves a little between the reads.
    assert_eq!(host.memory.total_bytes, meminfo_kib("MemTotal") * 1024);
    let used_here = (meminfo_kib("MemTotal") - meminfo_kib("MemAvailable")) * 1024;
    let diff = host.memory.used_bytes.abs_diff(used_here);
    assert!(
        diff < 64 << 20,
        "used {} vs /proc {used_here}",
        host.memory.used_bytes
    );
    assert!(
        host.memory.used_bytes
            < meminfo_kib("MemTotal") * 1024 - meminfo_kib("MemFree") * 1024 + (64 << 20),
        "page cache must not count as used"
    );
    assert_eq!(host.swap.total_bytes, meminfo_kib("SwapTotal") * 1024);

    // CPU: one figure per core the kernel lists, each a percentage.
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(host.cpu.cores as usize, cores);
    assert_eq!(host.cpu.per_core_percent.len(), cores);
    let total = host.cpu.total_percent.expect("cpu total");
    assert!((0.0..=100.0).contains(&total), "{total}");
    assert!(host
        .cpu
        .per_core_percent
        .iter()
        .all(|p| (0.0..=100.0).contains(p)));

    // Load as the kernel prints it.
    let one = first_number("/proc/loadavg");
    assert!(
        (host.load.one - one).abs() < 1.0,
        "load {} vs /proc {one}",
        host.load.one
    );

    // Filesystems: the root filesystem as df sees it; no pseudo filesystems.
    let root = host
        .filesystems
        .iter()
        .find(|f| f.mount_point == "/")
        .expect("/ is listed");
    let df = run("df", &["-B1", "--output=size,avail", "/"]);
    let nums: Vec<u64> = df
        .lines()
        .nth(1)
        .expect("df row")
        .split_whitespace()
        .map(|n| n.parse().expect("n"))
        .collect();
    assert_eq!(root.total_bytes, nums[0]);
    assert!(
        root.available_bytes.abs_diff(nums[1]) < 256 << 20,
        "avail {} vs df {}",
        root.available_bytes,
        nums[1]
    );
    for fs in &host.filesystems {
        assert!(
            ![
                "proc", "sysfs", "tmpfs", "devtmpfs", "overlay", "cgroup", "cgroup2", "nsfs",
                "devpts", "mqueue"
            ]
            .contains(&fs.fs_type.as_str()),
            "pseudo filesystem listed: {fs:?}"
        );
        assert!(
            fs.total_bytes > 0 && fs.used_bytes <= fs.total_bytes,
            "{fs:?}"
        );
    }

    // Network: the same interfaces as /proc/net/dev (loopback left out), counters that only grow.
    let netdev = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev");
    let names: BTreeSet<String> = netdev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_owned())
        .filter(|n| n != "lo")
        .collect();
    let reported: BTreeSet<String> = host.network.iter().map(|n| n.name.clone()).collect();
    assert_eq!(reported, names);
}

#[tokio::test]
async fn network_rates_follow_traffic() {
    require_testbed();
    // The test bed's second "host": netns tb-agent at 10.99.0.2 behind veth tb-veth0 (10.99.0.1).
    let bed = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed/testbed.sh");
    run(bed, &["net", "up"]);
    let work = Workdir::new();
    let agent = RunningAgent::start(&work.config(""));
    let veth = |s: &Snapshot| {
        s.host
            .network
            .iter()
            .find(|n| n.name == "tb-veth0")
            .cloned()
    };
    let first = snapshot(&agent).await;
    let before = veth(&first).expect("tb-veth0 listed");

    // About 200 KB out through the veth.
    run(
        "busybox",
        &[
            "ping",
            "-c",
            "100",
            "-i",
            "0.01",
            "-s",
            "2000",
            "-q",
            "10.99.0.2",
        ],
    );
    let after = wait_for(
        "a rate over a window of at least 1 s",
        Duration::from_secs(10),
        || async {
            let s = snapshot(&agent).await;
            s.host
                .window_secs
                .filter(|w| *w >= 1.0)
                .and_then(|_| veth(&s))
                .filter(|v| v.tx_bytes_per_sec.is_some())
        },
    )
    .await;
    let sent = after.tx_bytes_total - before.tx_bytes_total;
    assert!(sent >= 200_000, "tx counter grew by {sent}");
    assert!(
        after.tx_bytes_per_sec.is_some_and(|r| r > 0.0),
        "tx rate {:?}",
        after.tx_bytes_per_sec
    );
    assert!(
        after.rx_bytes_total > before.rx_bytes_total,
        "the replies came back"
    );
}

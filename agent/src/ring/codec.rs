//! A compact byte encoding of [`Sample`] for the ring buffer: LEB128 varints, memory in KiB,
//! percentages in tenths, names as indexes into an interning table. About 60–120 bytes a sample
//! instead of the ~1 KiB a `Sample` of strings and vectors takes on the heap.

use std::collections::HashMap;
use std::sync::Arc;

use fleetdeck_proto::{
    AppSample, AppState, CheckSample, DiskIoSample, FsSample, NetSample, Sample,
};

/// Names seen in samples (mount points, interfaces, apps), each stored once.
#[derive(Debug, Default)]
pub struct Names {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let name: Arc<str> = Arc::from(name);
        let i = self.names.len() as u32;
        self.names.push(name.clone());
        self.index.insert(name, i);
        i
    }

    fn get(&self, i: u64) -> String {
        self.names
            .get(i as usize)
            .map(|n| n.to_string())
            .unwrap_or_default()
    }

    pub fn heap_bytes(&self) -> usize {
        self.names.iter().map(|n| n.len() + 16).sum::<usize>() * 2 + self.names.capacity() * 16
    }
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `None` as 0, `Some(v)` as `v + 1`.
fn put_opt(out: &mut Vec<u8>, v: Option<u64>) {
    put(out, v.map_or(0, |v| v.saturating_add(1)));
}

fn tenths(p: f32) -> u64 {
    (f64::from(p) * 10.0).round().max(0.0) as u64
}

fn hundredths(p: f32) -> u64 {
    (f64::from(p) * 100.0).round().max(0.0) as u64
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

const STATES: [AppState; 8] = [
    AppState::Running,
    AppState::Starting,
    AppState::Stopping,
    AppState::Stopped,
    AppState::Failed,
    AppState::CrashLooping,
    AppState::Unknown,
    AppState::NotFound,
];

/// Encodes everything of `s` but its seq (the ring knows it). Memory is kept to the KiB
/// (rounded up), percentages to a tenth, load to a hundredth, rates to the byte.
pub fn encode(s: &Sample, names: &mut Names) -> Box<[u8]> {
    let mut out = Vec::with_capacity(96);
    put(&mut out, s.taken_unix_ms);
    put_opt(&mut out, s.cpu_percent.map(tenths));
    put(&mut out, kib(s.memory_used_bytes));
    put(&mut out, kib(s.memory_total_bytes));
    put(&mut out, kib(s.swap_used_bytes));
    put(&mut out, kib(s.swap_total_bytes));
    put(&mut out, u64::from(s.cores));
    put(&mut out, hundredths(s.load1));
    put(&mut out, hundredths(s.load5));
    put(&mut out, hundredths(s.load15));
    put(&mut out, s.filesystems.len() as u64);
    for f in &s.filesystems {
        put(&mut out, u64::from(names.intern(&f.mount_point)));
        put(&mut out, kib(f.used_bytes));
        put(&mut out, kib(f.total_bytes));
        put(&mut out, f.inodes_used);
        put(&mut out, f.inodes_total);
    }
    put(&mut out, s.network.len() as u64);
    for n in &s.network {
        put(&mut out, u64::from(names.intern(&n.name)));
        put_opt(&mut out, n.rx_bytes_per_sec);
        put_opt(&mut out, n.tx_bytes_per_sec);
    }
    put(&mut out, s.apps.len() as u64);
    for a in &s.apps {
        put(&mut out, u64::from(names.intern(&a.name)));
        put(
            &mut out,
            STATES.iter().position(|&st| st == a.state).unwrap_or(6) as u64,
        );
        put_opt(&mut out, a.restarts);
        put_opt(&mut out, a.memory_bytes.map(kib));
        put_opt(&mut out, a.cpu_percent.map(tenths));
        put_opt(&mut out, a.memory_limit_bytes.map(kib));
        put_opt(&mut out, a.net_rx_bytes_per_sec);
        put_opt(&mut out, a.net_tx_bytes_per_sec);
        put(&mut out, a.checks.len() as u64);
        for c in &a.checks {
            put(&mut out, u64::from(names.intern(&c.name)));
            put(&mut out, u64::from(c.ok));
            put_opt(&mut out, c.latency_ms.map(tenths));
        }
    }
    put(&mut out, s.disks.len() as u64);
    for d in &s.disks {
        put(&mut out, u64::from(names.intern(&d.device)));
        put_opt(&mut out, d.read_bytes_per_sec);
        put_opt(&mut out, d.write_bytes_per_sec);
    }
    out.into_boxed_slice()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn get(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        v
    }

    fn kib(&mut self) -> u64 {
        self.get().saturating_mul(1024)
    }

    fn opt(&mut self) -> Option<u64> {
        self.get().checked_sub(1)
    }
}

/// Decodes what [`encode`] wrote (the ring only decodes its own bytes).
pub fn decode(seq: u64, bytes: &[u8], names: &Names) -> Sample {
    let mut r = Reader { bytes, pos: 0 };
    let taken_unix_ms = r.get();
    let cpu_percent = r.opt().map(|t| t as f32 / 10.0);
    let memory_used_bytes = r.kib();
    let memory_total_bytes = r.kib();
    let swap_used_bytes = r.kib();
    let swap_total_bytes = r.kib();
    let cores = u32::try_from(r.get()).unwrap_or(u32::MAX);
    let load1 = r.get() as f32 / 100.0;
    let load5 = r.get() as f32 / 100.0;
    let load15 = r.get() as f32 / 100.0;
    let filesystems = (0..r.get())
        .map(|_| FsSample {
            mount_point: names.get(r.get()),
            used_bytes: r.kib(),
            total_bytes: r.kib(),
            inodes_used: r.get(),
            inodes_total: r.get(),
        })
        .collect();
    let network = (0..r.get())
        .map(|_| NetSample {
            name: names.get(r.get()),
            rx_bytes_per_sec: r.opt(),
            tx_bytes_per_sec: r.opt(),
        })
        .collect();
    let apps = (0..r.get())
        .map(|_| AppSample {
            name: names.get(r.get()),
            state: STATES
                .get(r.get() as usize)
                .copied()
                .unwrap_or(AppState::Unknown),
            restarts: r.opt(),
            memory_bytes: r.opt().map(|k| k.saturating_mul(1024)),
            cpu_percent: r.opt().map(|t| t as f32 / 10.0),
            memory_limit_bytes: r.opt().map(|k| k.saturating_mul(1024)),
            net_rx_bytes_per_sec: r.opt(),
            net_tx_bytes_per_sec: r.opt(),
            checks: (0..r.get())
                .map(|_| CheckSample {
                    name: names.get(r.get()),
                    ok: r.get() != 0,
                    latency_ms: r.opt().map(|t| t as f32 / 10.0),
                })
                .collect(),
        })
        .collect();
    let disks = (0..r.get())
        .map(|_| DiskIoSample {
            device: names.get(r.get()),
            read_bytes_per_sec: r.opt(),
            write_bytes_per_sec: r.opt(),
        })
        .collect();
    Sample {
        seq,
        taken_unix_ms,
        cpu_percent,
        memory_used_bytes,
        memory_total_bytes,
        swap_used_bytes,
        swap_total_bytes,
        cores,
        load1,
        load5,
        load15,
        filesystems,
        network,
        apps,
        disks,
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) fn typical() -> fleetdeck_proto::Sample {
        super::tests::typical(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn typical(seq: u64) -> Sample {
        Sample {
            seq,
            taken_unix_ms: 1_795_000_000_000 + seq * 10_000,
            cpu_percent: Some(12.3),
            memory_used_bytes: 1_234_567 * 1024,
            memory_total_bytes: 24 << 30,
            swap_used_bytes: 0,
            swap_total_bytes: 2 << 30,
            cores: 16,
            load1: 0.42,
            load5: 1.5,
            load15: 12.25,
            filesystems: vec![
                FsSample {
                    mount_point: "/".into(),
                    used_bytes: 15 << 30,
                    total_bytes: 250 << 30,
                    inodes_used: 412_345,
                    inodes_total: 16_384_000,
                },
                FsSample {
                    mount_point: "/srv data".into(),
                    used_bytes: 0,
                    total_bytes: 1 << 40,
                    inodes_used: 0,
                    inodes_total: 0,
                },
            ],
            network: vec![
                NetSample {
                    name: "eth0".into(),
                    rx_bytes_per_sec: Some(123_456),
                    tx_bytes_per_sec: Some(0),
                },
                NetSample {
                    name: "tailscale0".into(),
                    rx_bytes_per_sec: None,
                    tx_bytes_per_sec: None,
                },
            ],
            apps: vec![
                AppSample {
                    name: "web".into(),
                    state: AppState::Running,
                    restarts: Some(0),
                    memory_bytes: Some(48 << 20),
                    cpu_percent: None,
                    memory_limit_bytes: Some(512 << 20),
                    net_rx_bytes_per_sec: Some(2_048),
                    net_tx_bytes_per_sec: Some(0),
                    checks: vec![
                        CheckSample {
                            name: "health".into(),
                            ok: true,
                            latency_ms: Some(3.2),
                        },
                        CheckSample {
                            name: "db port".into(),
                            ok: false,
                            latency_ms: None,
                        },
                    ],
                },
                AppSample {
                    name: "worker".into(),
                    state: AppState::CrashLooping,
                    restarts: Some(17),
                    memory_bytes: None,
                    cpu_percent: Some(99.9),
                    memory_limit_bytes: None,
                    net_rx_bytes_per_sec: None,
                    net_tx_bytes_per_sec: None,
                    checks: Vec::new(),
                },
                AppSample {
                    name: "gone".into(),
                    state: AppState::NotFound,
                    restarts: None,
                    memory_bytes: None,
                    cpu_percent: None,
                    memory_limit_bytes: None,
                    net_rx_bytes_per_sec: None,
                    net_tx_bytes_per_sec: None,
                    checks: Vec::new(),
                },
            ],
            disks: vec![
                DiskIoSample {
                    device: "vda".into(),
                    read_bytes_per_sec: Some(4_096),
                    write_bytes_per_sec: Some(1 << 20),
                },
                DiskIoSample {
                    device: "nvme0n1".into(),
                    read_bytes_per_sec: None,
                    write_bytes_per_sec: None,
                },
            ],
        }
    }

    #[test]
    fn round_trip_keeps_every_figure_at_its_precision() {
        let mut names = Names::default();
        let s = typical(7);
        let bytes = encode(&s, &mut names);
        assert!(bytes.len() <= 120, "{} bytes", bytes.len());
        assert_eq!(decode(7, &bytes, &names), s);
    }

    #[test]
    fn every_state_survives() {
        let mut names = Names::default();
        for state in STATES {
            let mut s = typical(1);
            s.apps[0].state = state;
            assert_eq!(
                decode(1, &encode(&s, &mut names), &names).apps[0].state,
                state
            );
        }
    }

    #[test]
    fn memory_rounds_up_to_the_kib_and_extremes_do_not_wrap() {
        let mut names = Names::default();
        let mut s = typical(1);
        s.memory_used_bytes = 1;
        s.swap_used_bytes = u64::MAX - 5;
        s.network[0].rx_bytes_per_sec = Some(u64::MAX);
        let d = decode(1, &encode(&s, &mut names), &names);
        assert_eq!(d.memory_used_bytes, 1024);
        assert_eq!(d.swap_used_bytes, u64::MAX, "saturates");
        assert_eq!(
            d.network[0].rx_bytes_per_sec,
            Some(u64::MAX - 1),
            "saturates, never wraps to None"
        );
    }
}

//! A virtual host's figures over time (CPU, memory, disk, network: smooth noise from its seed),
//! and the snapshots and samples made of them, live or at a time in the past.

use super::*;

impl Host {
    fn figures(&self, t: u64) -> Figures {
        let hw = &self.hw;
        let s = hw.seed;
        let cpu = hw.cpu_base * (0.5 + smooth(s ^ 10, t, 600_000))
            + 25.0 * (smooth(s ^ 11, t, 45_000) - 0.5);
        let cpu = round1(cpu.clamp(0.5, 99.5));
        let mem_frac = hw.mem_base
            + 0.15 * (smooth(s ^ 12, t, 1_800_000) - 0.5)
            + 0.05 * (smooth(s ^ 13, t, 60_000) - 0.5);
        let load = |salt: u64, period: u64| {
            round2(
                f64::from(hw.cores) * hw.cpu_base / 100.0
                    * (0.6 + 0.8 * smooth(s ^ salt, t, period)),
            )
        };
        let up_secs = t.saturating_sub(self.boot_ms) as f64 / 1_000.0;
        let days = up_secs / 86_400.0;
        let disk_frac = (hw.disk_base + days * 0.002).min(0.95);
        let rx_rate = hw.net_base * (0.3 + 1.4 * smooth(s ^ 15, t, 120_000));
        let tx_rate = rx_rate * (0.2 + 0.4 * smooth(s ^ 16, t, 90_000));
        Figures {
            cpu,
            mem_used: (hw.mem_total as f64 * mem_frac.clamp(0.05, 0.97)) as u64,
            swap_used: (hw.swap_total as f64 * 0.08 * smooth(s ^ 17, t, 3_600_000)) as u64,
            load: (load(18, 30_000), load(19, 300_000), load(20, 900_000)),
            disk_used: (hw.disk_total as f64 * disk_frac) as u64,
            rx_rate,
            tx_rate,
            rx_total: (hw.net_base * up_secs) as u64,
            tx_total: (hw.net_base * 0.4 * up_secs) as u64,
        }
    }

    /// The seq of the newest sample at `now`: 0 while there is none.
    pub(crate) fn latest_seq(&self, now: u64) -> u64 {
        now.saturating_sub(self.started_ms) / self.interval_ms
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = now_ms();
        self.snapshot_at(now, self.latest_seq(now), self.agent_now(), self.statuses())
    }

    /// The host at `t` in the past, for a stored history (the demo's 30 days): its snapshot with
    /// each app as `apps[i]` says (state, since when, last exit), and its sample numbered `seq`.
    pub(crate) fn past(
        &self,
        t: u64,
        seq: u64,
        apps: &[(AppState, u64, Option<Exit>)],
    ) -> (Snapshot, Sample) {
        let statuses = self
            .apps
            .iter()
            .zip(apps)
            .enumerate()
            .map(|(i, (spec, &(state, since_ms, last_exit)))| {
                let a = AppLive {
                    state,
                    since_ms,
                    last_exit,
                    restarts: 0,
                    invocation: i as u64,
                    run_started_ms: since_ms,
                    history: VecDeque::new(),
                    checks: Vec::new(),
                    stopped_by_request: false,
                };
                self.status_of(spec, &a, t)
            })
            .collect();
        let states: Vec<(AppState, u64)> = apps.iter().map(|(s, ..)| (*s, 0)).collect();
        (
            self.snapshot_at(t, seq, t, statuses),
            self.sample_at(t, seq, &states),
        )
    }

    fn snapshot_at(
        &self,
        now: u64,
        seq: u64,
        taken_unix_ms: u64,
        apps: Vec<AppStatus>,
    ) -> Snapshot {
        let f = self.figures(now);
        let hw = &self.hw;
        let per_core = (0..hw.cores)
            .map(|i| {
                let v =
                    f.cpu * (0.6 + 0.8 * smooth(hash(hw.seed, 100 + u64::from(i)), now, 20_000));
                round1(v.clamp(0.0, 100.0))
            })
            .collect();
        let host = HostMetrics {
            hostname: self.name.clone(),
            boot_id: self.boot_id.clone(),
            uptime_secs: now.saturating_sub(self.boot_ms) as f64 / 1_000.0,
            window_secs: Some(self.interval_ms as f64 / 1_000.0),
            cpu: Cpu {
                cores: hw.cores,
                total_percent: Some(f.cpu),
                per_core_percent: per_core,
            },
            memory: Memory {
                total_bytes: hw.mem_total,
                available_bytes: hw.mem_total - f.mem_used,
                used_bytes: f.mem_used,
            },
            swap: Swap {
                total_bytes: hw.swap_total,
                free_bytes: hw.swap_total - f.swap_used,
                used_bytes: f.swap_used,
            },
            load: Load {
                one: f.load.0,
                five: f.load.1,
                fifteen: f.load.2,
            },
            filesystems: vec![Filesystem {
                mount_point: "/".to_owned(),
                device: "/dev/vda1".to_owned(),
                fs_type: "ext4".to_owned(),
                total_bytes: hw.disk_total,
                used_bytes: f.disk_used,
                // ext4 reserves 5% for root.
                available_bytes: (hw.disk_total - f.disk_used).saturating_sub(hw.disk_total / 20),
                inodes_total: hw.disk_total / 16_384,
                inodes_used: f.disk_used / 65_536,
            }],
            network: vec![NetInterface {
                name: "eth0".to_owned(),
                rx_bytes_total: f.rx_total,
                tx_bytes_total: f.tx_total,
                rx_bytes_per_sec: Some(f.rx_rate.round()),
                tx_bytes_per_sec: Some(f.tx_rate.round()),
            }],
            disks: Vec::new(),
        };
        Snapshot {
            seq,
            instance_id: self.instance_id.clone(),
            taken_unix_ms,
            host,
            apps,
            sources: self.sources(),
        }
    }

    /// `GET /v1/samples`: the samples after `after`, oldest first, at most `limit`.
    pub(crate) fn samples_after(&self, after: u64, limit: usize) -> SamplesPage {
        let plan = plan_page(self.latest_seq(now_ms()), self.capacity, after, limit);
        let samples = match plan.range {
            None => Vec::new(),
            Some((first, last)) => {
                // Apps are sampled in their current state: the simulator keeps no per-sample
                // history of states.
                let states: Vec<(AppState, u64)> = self
                    .lock()
                    .apps
                    .iter()
                    .map(|a| (a.state, a.restarts))
                    .collect();
                (first..=last)
                    .map(|seq| self.sample(seq, &states))
                    .collect()
            }
        };
        SamplesPage {
            instance_id: self.instance_id.clone(),
            oldest_seq: plan.oldest,
            latest_seq: plan.latest,
            samples,
            more: plan.more,
        }
    }

    pub(super) fn sample(&self, seq: u64, states: &[(AppState, u64)]) -> Sample {
        self.sample_at(self.started_ms + seq * self.interval_ms, seq, states)
    }

    fn sample_at(&self, t: u64, seq: u64, states: &[(AppState, u64)]) -> Sample {
        let f = self.figures(t);
        Sample {
            seq,
            taken_unix_ms: t,
            cpu_percent: Some(f.cpu as f32),
            memory_used_bytes: f.mem_used,
            memory_total_bytes: self.hw.mem_total,
            swap_used_bytes: f.swap_used,
            swap_total_bytes: self.hw.swap_total,
            cores: self.hw.cores,
            load1: f.load.0 as f32,
            load5: f.load.1 as f32,
            load15: f.load.2 as f32,
            filesystems: vec![FsSample {
                mount_point: "/".to_owned(),
                used_bytes: f.disk_used,
                total_bytes: self.hw.disk_total,
                inodes_used: f.disk_used / 65_536,
                inodes_total: self.hw.disk_total / 16_384,
            }],
            network: vec![NetSample {
                name: "eth0".to_owned(),
                rx_bytes_per_sec: Some(f.rx_rate as u64),
                tx_bytes_per_sec: Some(f.tx_rate as u64),
            }],
            apps: self
                .apps
                .iter()
                .zip(states)
                .map(|(spec, &(state, restarts))| {
                    let running = state == AppState::Running;
                    AppSample {
                        name: spec.name.to_owned(),
                        state,
                        restarts: Some(restarts),
                        memory_bytes: running.then(|| spec.memory_at(t)),
                        cpu_percent: running.then(|| spec.cpu_at(t) as f32),
                        memory_limit_bytes: spec.mem_limit,
                        net_rx_bytes_per_sec: None,
                        net_tx_bytes_per_sec: None,
                        checks: Vec::new(),
                    }
                })
                .collect(),
            disks: Vec::new(),
        }
    }
}

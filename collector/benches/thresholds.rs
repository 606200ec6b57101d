//! Threshold rule evaluation at fleet scale: 5,000 hosts, 12 rules (the 9 shipped ones plus app
//! CPU, app memory and check latency), each host bringing the 3 samples of a 30 s poll round
//! (10 s sampling) with 3 filesystems and 4 apps with a check each. Prints the time per round and
//! what it costs of one core at 30 s polls (issue 14's budget: at most 10 %). Then an alert storm:
//! every host's `/data` jumps to 99 % at once (disk-full and its critical level fire on all of them
//! in one round), and is freed again: the time of the round that raises them all and of the one
//! that clears them, with the list of open problems the fleet API reads.
//!
//! `cargo bench -p fleetdeck-collector --bench thresholds [-- HOSTS]`

use std::time::{Duration, Instant};

use fleetdeck_collector::alerting::thresholds::{build_rules, Evaluator, RawRule};
use fleetdeck_proto::{AppSample, AppState, CheckSample, FsSample, Sample};

const ROUND: Duration = Duration::from_secs(30);
const SAMPLES_PER_ROUND: u64 = 3;

fn sample(host: usize, t_ms: u64, storm: bool) -> Sample {
    let wobble = ((host as u64 * 7919 + t_ms / 10_000) % 100) as f64;
    Sample {
        seq: t_ms / 10_000,
        taken_unix_ms: t_ms,
        cpu_percent: Some((wobble * 0.9) as f32),
        memory_used_bytes: 4_000_000_000 + wobble as u64 * 10_000_000,
        memory_total_bytes: 8_000_000_000,
        swap_used_bytes: 100_000_000,
        swap_total_bytes: 2_000_000_000,
        cores: 4,
        load1: (wobble / 20.0) as f32,
        load5: 1.0,
        load15: 1.0,
        filesystems: ["/", "/var", "/data"]
            .iter()
            .enumerate()
            .map(|(i, m)| FsSample {
                mount_point: (*m).to_owned(),
                // Slowly filling, so the predicted-full fit always has work to do.
                used_bytes: if storm && i == 2 {
                    99_000_000_000
                } else {
                    40_000_000_000 + i as u64 * 1_000_000_000 + t_ms / 100
                },
                total_bytes: 100_000_000_000,
                inodes_used: 1_000_000,
                inodes_total: 6_000_000,
            })
            .collect(),
        network: Vec::new(),
        apps: (0..4)
            .map(|a| AppSample {
                name: format!("app-{a}"),
                state: AppState::Running,
                restarts: Some(0),
                memory_bytes: Some(200_000_000 + wobble as u64 * 1_000_000),
                cpu_percent: Some(wobble as f32 / 4.0),
                memory_limit_bytes: Some(512_000_000),
                net_rx_bytes_per_sec: None,
                net_tx_bytes_per_sec: None,
                checks: vec![CheckSample {
                    name: "health".into(),
                    ok: true,
                    latency_ms: Some(5.0 + wobble as f32),
                }],
            })
            .collect(),
        disks: Vec::new(),
    }
}

fn main() {
    let hosts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000);
    let extra = |name: &str, metric: &str, above: f64| RawRule {
        name: Some(name.into()),
        metric: Some(metric.into()),
        above: Some(above),
        for_: Some("5m".into()),
        ..RawRule::default()
    };
    let rules = build_rules(
        true,
        vec![
            extra("app-cpu", "app.cpu_percent", 90.0),
            extra("app-memory", "app.memory_bytes", 1e9),
            extra("slow-check", "check.latency_ms", 1000.0),
        ],
    )
    .expect("valid rules");
    assert_eq!(rules.len(), 12);
    let mut evaluator = Evaluator::new(rules);
    let names: Vec<String> = (0..hosts).map(|h| format!("host-{h}")).collect();
    let start_ms = 1_800_000_000_000u64;
    let round = |r: u64, evaluator: &mut Evaluator, storm: bool| -> (Duration, usize) {
        // Samples are made before the clock starts: only evaluation is measured.
        let batches: Vec<Vec<Sample>> = (0..hosts)
            .map(|h| {
                (0..SAMPLES_PER_ROUND)
                    .map(|i| sample(h, start_ms + (r * SAMPLES_PER_ROUND + i) * 10_000, storm))
                    .collect()
            })
            .collect();
        let began = Instant::now();
        let mut alerts = 0;
        for (name, batch) in names.iter().zip(&batches) {
            alerts += evaluator.observe(name, batch).len();
        }
        (began.elapsed(), alerts)
    };
    // 6 h of rounds fill every predicted-full window, as in a collector that has run a while.
    let warm_rounds = 6 * 3600 / ROUND.as_secs();
    let warm_hosts_note = if hosts > 1000 {
        " (a minute or two)"
    } else {
        ""
    };
    eprintln!("warming up {warm_rounds} rounds{warm_hosts_note}...");
    for r in 0..warm_rounds {
        round(r, &mut evaluator, false);
    }
    let measured = 10;
    let mut times = Vec::new();
    let mut alerts = 0;
    for r in warm_rounds..warm_rounds + measured {
        let (t, a) = round(r, &mut evaluator, false);
        times.push(t);
        alerts += a;
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = *times.last().expect("rounds");
    println!(
        "threshold rules: {hosts} hosts x 12 rules, {SAMPLES_PER_ROUND} samples per host per 30 s round: \
         median {:.1} ms per round (worst {:.1} ms) = {:.2} % of one core; {} series tracked, {alerts} alerts in the measured rounds",
        median.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0,
        median.as_secs_f64() * 100.0 / ROUND.as_secs_f64(),
        evaluator.series_count(),
    );

    // The storm: full from the next round on; `for` (5 min) holds after 10 rounds.
    let first = warm_rounds + measured;
    let mut fired = (Duration::ZERO, 0);
    for r in first..first + 12 {
        let (t, a) = round(r, &mut evaluator, true);
        if a > fired.1 {
            fired = (t, a);
        }
    }
    let listed = Instant::now();
    let open = evaluator.open().open_problems().len();
    let listed = listed.elapsed();
    let (cleared, recoveries) = round(first + 12, &mut evaluator, false);
    println!(
        "alert storm: {} alerts raised in one round of {:.1} ms; {open} open problems listed in {:.1} ms; \
         {recoveries} recoveries in a round of {:.1} ms",
        fired.1,
        fired.0.as_secs_f64() * 1000.0,
        listed.as_secs_f64() * 1000.0,
        cleared.as_secs_f64() * 1000.0,
    );
    assert!(
        fired.1 >= 2 * hosts,
        "every host fired its warning and critical"
    );
}

use fleetdeck_proto::{AppSample, AppState, FsSample, Severity};

use super::*;
use crate::alerting::thresholds::{build_rules, default_rules, RawRule, ResumedThreshold};

const GB: u64 = 1_000_000_000;

fn sample(t_ms: u64, var_used: u64) -> Sample {
    Sample {
        seq: t_ms,
        taken_unix_ms: t_ms,
        cpu_percent: Some(10.0),
        memory_used_bytes: 1,
        memory_total_bytes: 10,
        swap_used_bytes: 5,
        swap_total_bytes: 0,
        cores: 2,
        load1: 1.0,
        load5: 1.0,
        load15: 1.0,
        filesystems: vec![FsSample {
            mount_point: "/var".into(),
            used_bytes: var_used,
            total_bytes: 100 * GB,
            inodes_used: 10,
            inodes_total: 0,
        }],
        network: Vec::new(),
        apps: vec![AppSample {
            name: "web".into(),
            state: AppState::Running,
            restarts: None,
            memory_bytes: Some(95),
            cpu_percent: Some(1.0),
            memory_limit_bytes: Some(100),
            net_rx_bytes_per_sec: None,
            net_tx_bytes_per_sec: None,
            checks: Vec::new(),
        }],
        disks: Vec::new(),
    }
}

fn disk_rule(for_: &str, clear_below: f64) -> Vec<Rule> {
    build_rules(
        false,
        vec![RawRule {
            name: Some("disk-full".into()),
            metric: Some("disk.used_percent".into()),
            above: Some(90.0),
            for_: Some(for_.into()),
            clear_below: Some(clear_below),
            ..RawRule::default()
        }],
    )
    .expect("valid")
}

#[test]
fn fires_once_after_for_and_recovers_once_below_the_clear_level() {
    let mut e = Evaluator::new(disk_rule("5m", 85.0));
    let minute = 60_000;
    // 93 % from t=0: pending until 5 min of sample time have passed.
    for i in 0..5 {
        assert!(
            e.observe("db-1", &[sample(i * minute, 93 * GB)]).is_empty(),
            "{i}"
        );
    }
    let fired = e.observe("db-1", &[sample(5 * minute, 93_200_000_000)]);
    assert_eq!(fired.len(), 1);
    let a = &fired[0];
    assert_eq!(a.kind, AlertKind::Problem);
    assert_eq!(
        a.message,
        "/var on db-1 is 93.2% full (rule disk-full: above 90% for 5 min)"
    );
    let hit = a.detail.threshold.as_ref().expect("hit");
    assert_eq!(
        (hit.threshold, hit.for_secs, hit.direction.as_str()),
        (90.0, 300, "above")
    );
    assert_eq!(hit.subject.as_deref(), Some("/var"));
    assert_eq!(
        a.aspect,
        Aspect::Threshold {
            rule: "disk-full".into(),
            subject: Some("/var".into())
        }
    );
    assert_eq!(e.open().open_problems().len(), 1);
    // Still above, then between the clear level and the threshold: no repeat, no recovery.
    assert!(e
        .observe(
            "db-1",
            &[sample(6 * minute, 95 * GB), sample(7 * minute, 87 * GB)]
        )
        .is_empty());
    let recovered = e.observe("db-1", &[sample(8 * minute, 80 * GB)]);
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].kind, AlertKind::Recovery);
    assert!(
        recovered[0].message.contains("back below 85%"),
        "{}",
        recovered[0].message
    );
    assert!(e.open().open_problems().is_empty());
}

#[test]
fn a_dip_resets_the_pending_time_and_old_samples_are_ignored() {
    let mut e = Evaluator::new(disk_rule("2m", 90.0));
    let m = 60_000;
    assert!(e
        .observe(
            "h",
            &[
                sample(0, 95 * GB),
                sample(m, 95 * GB),
                sample(m + 1, 50 * GB)
            ]
        )
        .is_empty());
    assert!(e
        .observe("h", &[sample(2 * m, 95 * GB), sample(3 * m, 95 * GB)])
        .is_empty());
    // A re-sent old sample does not move time.
    assert!(e.observe("h", &[sample(3 * m, 95 * GB)]).is_empty());
    assert_eq!(e.observe("h", &[sample(4 * m, 95 * GB)]).len(), 1);
}

#[test]
fn defaults_skip_what_does_not_exist_and_app_limit_fires() {
    let mut e = Evaluator::new(default_rules());
    let m = 60_000;
    let mut all = Vec::new();
    for i in 0..=3 {
        all.extend(e.observe("vm", &[sample(i * m, GB)]));
    }
    // Swap total 0 never fires; inodes_total 0 is skipped; the app at 95 % of its limit fires
    // after 2 min.
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].app.as_deref(), Some("web"));
    assert!(
        all[0]
            .message
            .starts_with("web on vm uses 95.0% of its memory limit"),
        "{}",
        all[0].message
    );
    assert_eq!(all[0].severity, Severity::Warning);
}

#[test]
fn predicted_full_fires_before_the_disk_is_full() {
    let rules = build_rules(
        false,
        vec![RawRule {
            name: Some("disk-predicted-full".into()),
            metric: Some("disk.hours_to_full".into()),
            below: Some(24.0),
            window: Some("6h".into()),
            for_: Some("10m".into()),
            ..RawRule::default()
        }],
    )
    .expect("valid");
    let mut e = Evaluator::new(rules);
    // 2 GB per hour from 50 GB: full in 25 h at the start, in 24 h after 1 h (+ `for`).
    let mut fired = None;
    for minute in 0..600u64 {
        let used = 50 * GB + minute * 2 * GB / 60;
        let alerts = e.observe("db-1", &[sample(minute * 60_000, used)]);
        if let Some(a) = alerts.into_iter().next() {
            fired = Some((minute, used, a));
            break;
        }
    }
    let (minute, used, alert) = fired.expect("fires");
    assert!(used < 100 * GB);
    assert!((69..75).contains(&minute), "{minute}");
    assert!(
        alert.message.starts_with("/var on db-1 will be full in ~")
            && alert.message.contains("at the current rate"),
        "{}",
        alert.message
    );
    // The fill stops: the rate drops to zero and it recovers.
    let mut recovered = false;
    for minute in minute + 1..minute + 400 {
        if !e
            .observe("db-1", &[sample(minute * 60_000, used)])
            .is_empty()
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered);
}

#[test]
fn unreported_series_and_gone_hosts_are_forgotten_with_a_recovery() {
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    assert_eq!(e.observe("a", &[sample(0, 95 * GB)]).len(), 1);
    let mut unmounted = sample(STALE_MS + 1, 0);
    unmounted.filesystems.clear();
    let gone = e.observe("a", &[unmounted]);
    assert_eq!(gone.len(), 1);
    assert!(
        gone[0].message.contains("no longer reported"),
        "{}",
        gone[0].message
    );
    assert_eq!(e.series_count(), 0);
    assert_eq!(e.observe("b", &[sample(0, 95 * GB)]).len(), 1);
    assert_eq!(e.observe("c", &[sample(HOST_GONE_MS + 1, GB)]).len(), 0);
    let mut alerts = Vec::new();
    e.forget_gone_hosts(&mut alerts);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].host, "b");
    assert!(e.open().open_problems().is_empty());
}

#[test]
fn a_host_is_gone_by_the_collectors_clock_not_another_agents() {
    let hour = 3_600_000;
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    // "b" fires at collector time 0; "ahead" has a clock two days ahead, heard at the same time.
    assert_eq!(
        e.observe_at("b", &[sample(0, 95 * GB)], Some(0), 0).len(),
        1
    );
    let ahead = 48 * hour;
    e.observe_at("ahead", &[sample(ahead, GB)], Some(ahead), 0);
    let mut alerts = Vec::new();
    e.forget_gone_hosts(&mut alerts);
    assert!(
        alerts.is_empty(),
        "a clock ahead made a host look gone: {alerts:?}"
    );
    assert_eq!(e.open().open_problems().len(), 1);
    // 25 h later by the collector's clock "b" has not been heard of, "ahead" has.
    e.observe_at("ahead", &[sample(ahead + 25 * hour, GB)], None, 25 * hour);
    e.forget_gone_hosts(&mut alerts);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].host, "b");
    assert_eq!(alerts[0].kind, AlertKind::Recovery);
    assert!(e.open().open_problems().is_empty());
}

#[test]
fn a_clock_set_back_does_not_stall_a_hosts_rules() {
    let minute = 60_000;
    let hour = 60 * minute;
    let mut e = Evaluator::new(disk_rule("5m", 85.0));
    let t0 = 10 * hour;
    // Filling, pending for 2 min, when the agent's clock is set back by an hour.
    for i in 0..=2 {
        let t = t0 + i * minute;
        assert!(e
            .observe_at("db-1", &[sample(t, 95 * GB)], Some(t), t)
            .is_empty());
    }
    // Samples of the new time, still full: the rule fires once `for` has held on the new time
    // (its pending time started again), not an hour later.
    let back = t0 - hour;
    let mut fired = None;
    for i in 0..=6 {
        let t = back + i * minute;
        let heard = t0 + (3 + i) * minute;
        let alerts = e.observe_at("db-1", &[sample(t, 95 * GB)], Some(t), heard);
        if !alerts.is_empty() {
            assert_eq!(alerts.len(), 1, "{alerts:?}");
            assert_eq!(alerts[0].kind, AlertKind::Problem);
            fired = Some(i);
            break;
        }
    }
    assert_eq!(fired, Some(5), "fired after 5 min of the new time");
    // And it clears on the new time.
    let t = back + 7 * minute;
    let freed = e.observe_at("db-1", &[sample(t, 10 * GB)], Some(t), t0 + 10 * minute);
    assert_eq!(freed.len(), 1);
    assert_eq!(freed[0].kind, AlertKind::Recovery);
}

#[test]
fn an_alert_storm_publishes_every_host_once_per_change() {
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    for h in 0..50 {
        assert_eq!(e.observe(&format!("h{h}"), &[sample(10, 95 * GB)]).len(), 1);
    }
    let open = e.open().open_problems();
    assert_eq!(open.len(), 50);
    // Oldest first, then by host.
    assert_eq!(open[0].host, "h0");
    for h in 0..25 {
        assert_eq!(e.observe(&format!("h{h}"), &[sample(20, GB)]).len(), 1);
    }
    let open = e.open().open_problems();
    assert_eq!(open.len(), 25);
    assert!(open
        .iter()
        .all(|p| p.host.trim_start_matches('h').parse::<u32>().expect("h<n>") >= 25));
}

#[test]
fn a_resumed_threshold_is_not_alerted_again_and_recovers_once() {
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    e.resume(
        &ResumedThreshold {
            host: "db-1".into(),
            app: None,
            rule: "disk-full".into(),
            subject: Some("/var".into()),
            since_ms: 5,
            message: "/var on db-1 is 95.0% full".into(),
        },
        10,
    );
    assert_eq!(e.open().open_problems().len(), 1);
    assert!(e.observe("db-1", &[sample(20, 95 * GB)]).is_empty());
    let recovered = e.observe("db-1", &[sample(30, 50 * GB)]);
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].kind, AlertKind::Recovery);
    // A rule that is gone is not taken up.
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    e.resume(
        &ResumedThreshold {
            host: "db-1".into(),
            app: None,
            rule: "removed".into(),
            subject: None,
            since_ms: 5,
            message: String::new(),
        },
        10,
    );
    assert!(e.open().open_problems().is_empty());
}

#[test]
fn a_backlog_is_history_what_fired_and_cleared_in_it_is_not_news() {
    let minute = 60_000;
    let hour = 60 * minute;
    let mut e = Evaluator::new(disk_rule("5m", 85.0));
    // The agent's now is 10 h; the collector was away from 0 to 10 h and backfills the gap.
    assert!(e
        .observe_at("db-1", &[sample(0, 50 * GB)], Some(10 * hour), 10 * hour)
        .is_empty());
    // Full from 1 h to 2 h, then freed: fired and cleared in the backlog.
    let page: Vec<Sample> = (1..=180)
        .map(|i| {
            let t = i * minute;
            sample(t, if t <= 2 * hour { 95 * GB } else { 50 * GB })
        })
        .collect();
    assert!(
        e.observe_at("db-1", &page, None, 10 * hour).is_empty(),
        "a problem that began and ended in the backlog raised alerts"
    );
    // Full again from 9 h 30 and still full at the present: one problem, when the present is
    // reached, and its recovery later.
    let page: Vec<Sample> = (181..=600)
        .map(|i| {
            let t = i * minute;
            sample(
                t,
                if t >= 9 * hour + 30 * minute {
                    95 * GB
                } else {
                    50 * GB
                },
            )
        })
        .collect();
    let alerts = e.observe_at("db-1", &page, None, 10 * hour);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::Problem);
    let freed = e.observe_at(
        "db-1",
        &[sample(601 * minute, 50 * GB)],
        Some(601 * minute),
        601 * minute,
    );
    assert_eq!(freed.len(), 1);
    assert_eq!(freed[0].kind, AlertKind::Recovery);
}

#[test]
fn a_backlog_that_ends_firing_but_not_yet_at_present_holds_its_alert() {
    let minute = 60_000;
    let hour = 60 * minute;
    let mut e = Evaluator::new(disk_rule("5m", 85.0));
    e.observe_at("db-1", &[sample(0, 50 * GB)], Some(10 * hour), 10 * hour);
    // A page ending 5 h before the present, full for its last hour: nothing yet.
    let page: Vec<Sample> = (1..=300)
        .map(|i| sample(i * minute, if i > 240 { 95 * GB } else { 50 * GB }))
        .collect();
    assert!(e.observe_at("db-1", &page, None, 10 * hour).is_empty());
    // Freed before the present: the held problem is dropped, and no recovery goes out.
    let page: Vec<Sample> = (301..=600).map(|i| sample(i * minute, 50 * GB)).collect();
    assert!(e.observe_at("db-1", &page, None, 10 * hour).is_empty());
}

#[test]
fn a_reload_keeps_what_fires_under_rules_kept_by_name() {
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    assert_eq!(e.observe("db-1", &[sample(10, 95 * GB)]).len(), 1);
    // Reloaded with the same rule (a new level): still firing, not alerted again, recovers once.
    let mut same = e.with_rules(disk_rule("0s", 80.0), 20);
    assert_eq!(same.open().open_problems().len(), 1);
    assert!(same.observe("db-1", &[sample(30, 95 * GB)]).is_empty());
    let recovered = same.observe("db-1", &[sample(40, 10 * GB)]);
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].kind, AlertKind::Recovery);
    // Reloaded without it: nothing open any more.
    assert_eq!(
        e.open().open_problems().len(),
        0,
        "the shared list follows the reload"
    );
    let mut e = Evaluator::new(disk_rule("0s", 90.0));
    e.observe("db-1", &[sample(10, 95 * GB)]);
    let gone = e.with_rules(Vec::new(), 20);
    assert!(gone.open().open_problems().is_empty());
}

//! A virtual host's states, events, samples and snapshots.

use super::*;

fn host(apps: usize) -> Host {
    Host::new(HostParams {
        name: "t-01".into(),
        seed: 9,
        instance_id: "inst".into(),
        now_ms: 1_700_000_000_000,
        interval_ms: 10_000,
        apps,
        env_dir: None,
        log_period_ms: None,
    })
}

#[test]
fn page_plans() {
    let p = |latest, cap, after, limit| {
        let plan = plan_page(latest, cap, after, limit);
        (plan.oldest, plan.latest, plan.range, plan.more)
    };
    assert_eq!(p(0, 100, 0, 10), (None, None, None, false), "no sample yet");
    assert_eq!(p(5, 100, 0, 10), (Some(1), Some(5), Some((1, 5)), false));
    assert_eq!(p(25, 100, 0, 10), (Some(1), Some(25), Some((1, 10)), true));
    assert_eq!(
        p(25, 100, 10, 10),
        (Some(1), Some(25), Some((11, 20)), true)
    );
    assert_eq!(
        p(25, 100, 20, 10),
        (Some(1), Some(25), Some((21, 25)), false)
    );
    assert_eq!(
        p(25, 100, 25, 10),
        (Some(1), Some(25), None, false),
        "up to date"
    );
    assert_eq!(
        p(25, 100, 90, 10),
        (Some(1), Some(25), None, false),
        "ahead"
    );
    // Only `capacity` are kept: an old `after` starts at the oldest held.
    assert_eq!(
        p(1000, 100, 3, 10),
        (Some(901), Some(1000), Some((901, 910)), true)
    );
    assert_eq!(
        p(100, 100, 0, 5000),
        (Some(1), Some(100), Some((1, 100)), false)
    );
    assert_eq!(p(5000, 8640, 0, 5000).2, Some((1, 1000)), "limit is capped");
    assert_eq!(p(3, 100, 0, 0).2, Some((1, 1)), "limit is at least 1");
}

#[test]
fn samples_are_deterministic_and_plausible() {
    let h = host(4);
    let states = vec![(AppState::Running, 0); 4];
    let a = h.sample(42, &states);
    assert_eq!(a, h.sample(42, &states));
    assert_eq!(a.taken_unix_ms, h.started_ms + 42 * 10_000);
    for seq in 1..2_000 {
        let s = h.sample(seq, &states);
        let cpu = s.cpu_percent.unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        assert!(s.memory_used_bytes < s.memory_total_bytes);
        assert!((4 * GIB..=16 * GIB).contains(&s.memory_total_bytes));
        assert!(s.filesystems[0].used_bytes < s.filesystems[0].total_bytes);
        assert_eq!(s.apps.len(), 4);
    }
}

#[test]
fn changes_become_events() {
    let h = host(3);
    assert!(h
        .change(0, AppState::Running, None, Process::Same)
        .is_none());
    let e = h
        .change(0, AppState::Failed, Some(Exit::Code(2)), Process::Same)
        .expect("a transition");
    assert_eq!(
        (e.id, e.from, e.to, e.restarted),
        (1, AppState::Running, AppState::Failed, false)
    );
    assert_eq!(e.source, EventSource::Systemd);
    let before = h.status(0).and_then(|s| s.restarts).unwrap_or(0);
    let e = h
        .change(0, AppState::Running, None, Process::New { counted: true })
        .expect("recovery");
    assert_eq!(e.restarts, Some(before + 1));
    let e = h
        .change(1, AppState::Running, None, Process::New { counted: false })
        .expect("restart");
    assert!(e.restarted);
    assert_eq!(e.source, EventSource::Docker);
    assert_eq!(h.events_after(0).len(), 3);
    assert_eq!(h.events_after(2).len(), 1);
    assert_eq!(h.events_start(None), 3);
    assert_eq!(h.events_start(Some("inst:1")), 1);
    assert_eq!(h.events_start(Some("other:2")), 0);
    assert_eq!(h.events_start(Some("garbage")), 0);
}

#[test]
fn event_buffer_is_bounded() {
    let h = host(1);
    for i in 0..(EVENT_BUFFER + 10) {
        let to = if i % 2 == 0 {
            AppState::Failed
        } else {
            AppState::Running
        };
        h.change(0, to, None, Process::Same);
    }
    let all = h.events_after(0);
    assert_eq!(all.len(), EVENT_BUFFER);
    assert_eq!(all[0].id(), 11);
}

#[test]
fn state_history_lookup() {
    let hist = [
        (0, AppState::Running),
        (100, AppState::Failed),
        (200, AppState::Running),
    ];
    assert_eq!(state_in(&hist, 50), AppState::Running);
    assert_eq!(state_in(&hist, 100), AppState::Failed);
    assert_eq!(state_in(&hist, 199), AppState::Failed);
    assert_eq!(state_in(&hist, 500), AppState::Running);
}

#[test]
fn kinds_alternate_and_details_match() {
    let h = host(4);
    let apps = h.statuses();
    let kinds: Vec<AppKind> = apps.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            AppKind::Systemd,
            AppKind::Docker,
            AppKind::Systemd,
            AppKind::Docker
        ]
    );
    assert!(apps[0].target.ends_with(".service"));
    assert!(apps[0].systemd.is_some() && apps[0].docker.is_none());
    assert!(apps[1].docker.is_some() && apps[1].systemd.is_none());
    let snap = h.snapshot();
    assert_eq!(snap.sources.systemd, SourceHealth::Up);
    assert_eq!(snap.host.filesystems[0].mount_point, "/");
    assert_eq!(snap.host.network[0].name, "eth0");
}

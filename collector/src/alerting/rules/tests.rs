//! The rules as scripts over exact times.

use super::*;

const S: u64 = 1000;
/// 2024-05-01 12:00:00 UTC, so summaries show readable clock times.
const T0: u64 = 1_714_564_800_000;

fn policy(grace_s: u64, window_s: u64, threshold: u32) -> AlertPolicy {
    AlertPolicy {
        grace: Duration::from_secs(grace_s),
        flap_window: Duration::from_secs(window_s),
        flap_threshold: threshold,
    }
}

/// Runs a script and answers each alert as `kind@seconds message`.
///
/// Steps: `"<s> <subject> <state>"` observes a transition `<s>` seconds after T0, where the
/// subject `host` is vm-1 itself and any other name is an app on vm-1, and a state
/// `failed=3` carries exit code 3 (`failed!9`: killed by signal 9); `"<s> tick"` ticks.
fn run(policy: AlertPolicy, steps: &[&str]) -> Vec<String> {
    let mut rules = Rules::new(policy);
    let mut out = Vec::new();
    for step in steps {
        let words: Vec<&str> = step.split(' ').collect();
        let at = T0 + words[0].parse::<u64>().expect("seconds") * S;
        let alerts = if words[1] == "tick" {
            rules.tick(at)
        } else {
            rules.observe(&transition(words[1], &words[2..].join(" "), at))
        };
        out.extend(alerts.into_iter().map(|a| {
            let secs = (a.at_ms - T0) / S;
            format!("{}@{secs} {}", a.kind, a.message)
        }));
    }
    out
}

fn transition(subject: &str, state: &str, at_ms: u64) -> Transition {
    let (state, exit) = if let Some((s, code)) = state.split_once('=') {
        (s, Some(Exit::Code(code.parse().expect("exit code"))))
    } else if let Some((s, sig)) = state.split_once('!') {
        (s, Some(Exit::Signal(sig.parse().expect("signal"))))
    } else {
        (state, None)
    };
    let health = match state.split([' ', ':']).next() {
        Some("failed" | "crash-looping" | "down") => Health::Problem,
        Some("running" | "up") => Health::Ok,
        _ => Health::Other,
    };
    Transition {
        host: "vm-1".into(),
        app: (subject != "host").then(|| subject.to_owned()),
        state: state.to_owned(),
        health,
        exit,
        at_ms,
        aspect: Aspect::State,
        severity: Severity::Critical,
        detail: Detail::default(),
    }
}

#[test]
fn scripts() {
    let cases: &[(&str, AlertPolicy, &[&str], &[&str])] = &[
        (
            "recovered within grace: nothing, not even a recovery",
            policy(30, 600, 3),
            &["0 web failed=3", "10 web running", "40 tick", "100 tick"],
            &[],
        ),
        (
            "grace passes: exactly one problem, dated when it failed",
            policy(30, 600, 3),
            &["0 web failed=3", "29 tick", "30 tick", "31 tick", "60 tick"],
            &["problem@0 web on vm-1 failed (exit code 3)"],
        ),
        (
            "problem then recovery, with the outage's length",
            policy(30, 600, 3),
            &["0 web failed=3", "30 tick", "252 web running", "300 tick"],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@252 web on vm-1 recovered after 4m 12s",
            ],
        ),
        (
            "a late tick still dates the problem at its start",
            policy(30, 600, 3),
            &["0 web failed!9", "500 tick"],
            &["problem@0 web on vm-1 failed (killed by SIGKILL)"],
        ),
        (
            "no tick before the recovery: observe raises the due problem first",
            policy(30, 600, 3),
            &["0 web failed=1", "45 web running"],
            &[
                "problem@0 web on vm-1 failed (exit code 1)",
                "recovery@45 web on vm-1 recovered after 45s",
            ],
        ),
        (
            "failed then crash-looping is one problem, reported in its latest state",
            policy(30, 600, 3),
            &["0 web failed=3", "5 web crash-looping=3", "30 tick", "40 web failed=3", "90 tick"],
            &["problem@0 web on vm-1 is crash-looping (exit code 3)"],
        ),
        (
            "grace 0 alerts at once in observe",
            policy(0, 600, 3),
            &["0 web failed=3", "1 web running"],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@1 web on vm-1 recovered after 1s",
            ],
        ),
        (
            "a host subject",
            policy(30, 600, 3),
            &["0 host down: 2 polls missed", "30 tick", "3720 host up"],
            &[
                "problem@0 vm-1 is down: 2 polls missed",
                "recovery@3720 vm-1 recovered after 1h 2m",
            ],
        ),
        (
            "problem, neutral state, then healthy: the alert stays open until running",
            policy(30, 600, 3),
            &["0 web failed=3", "30 tick", "60 web stopped", "90 web starting", "120 web running"],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@120 web on vm-1 recovered after 2m",
            ],
        ),
        (
            "an open alert is not repeated when the problem comes back without a recovery",
            policy(30, 600, 3),
            &["0 web failed=3", "30 tick", "60 web starting", "65 web failed=3", "200 tick"],
            &["problem@0 web on vm-1 failed (exit code 3)"],
        ),
        (
            "stopped within grace: no alert (the operator did it)",
            policy(30, 600, 3),
            &["0 web failed=3", "10 web stopped", "40 tick", "50 web running"],
            &[],
        ),
        (
            "stopped and failed again within grace: still one pending problem",
            policy(30, 600, 5),
            &["0 web failed=3", "10 web starting", "20 web failed=4", "30 tick", "60 tick"],
            &["problem@0 web on vm-1 failed (exit code 4)"],
        ),
        (
            "a repeated state (stream and poll both saw it) changes nothing",
            policy(0, 600, 2),
            &["0 web failed=3", "1 web failed=3", "2 web running", "3 web running"],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@2 web on vm-1 recovered after 2s",
            ],
        ),
        (
            "subjects are independent",
            policy(30, 600, 3),
            &["0 web failed=3", "10 db failed=1", "15 web running", "40 tick", "50 db running"],
            &[
                "problem@10 db on vm-1 failed (exit code 1)",
                "recovery@50 db on vm-1 recovered after 40s",
            ],
        ),
        (
            "three problems inside the window: one flapping alert, a summary once quiet",
            policy(30, 600, 3),
            &[
                "0 web failed=3", "10 web running",
                "60 web failed=3", "70 web running",
                "120 web failed=3", "130 web running",
                "180 web failed=3", "190 web running",
                "240 web failed=3", "250 web running",
                "300 tick", "849 tick", "850 tick", "900 tick",
            ],
            &[
                "flapping@120 web on vm-1 is flapping: 3 failures in 10m; further alerts held until it is stable",
                "flap-ended@850 web on vm-1 stopped flapping after 5 failures between 12:00 and 12:04 UTC; now running",
            ],
        ),
        (
            "flapping after a problem and its recovery",
            policy(30, 600, 3),
            &[
                "0 web failed=3", "40 tick",
                "60 web running", "70 web failed=3", "75 web running",
                "80 web failed=3", "90 web running",
                "700 tick", "1000 tick",
            ],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@60 web on vm-1 recovered after 1m",
                "flapping@80 web on vm-1 is flapping: 3 failures in 10m; further alerts held until it is stable",
                "flap-ended@690 web on vm-1 stopped flapping after 3 failures between 12:00 and 12:01 UTC; now running",
            ],
        ),
        (
            "flapping while the problem alert is open, ending healthy: no separate recovery",
            policy(0, 600, 3),
            &[
                "0 web failed=3", "5 web starting", "10 web failed=3",
                "15 web starting", "20 web failed=3", "25 web running",
                "700 tick",
            ],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "flapping@20 web on vm-1 is flapping: 3 failures in 10m; further alerts held until it is stable",
                "flap-ended@625 web on vm-1 stopped flapping after 3 failures between 12:00 and 12:00 UTC; now running",
            ],
        ),
        (
            "flapping that ends still failed: the alert stays open, recovery later",
            policy(30, 600, 3),
            &[
                "0 web failed=3", "10 web running", "20 web failed=3", "25 web running",
                "30 web crash-looping=2", "630 tick", "2000 web running",
            ],
            &[
                "flapping@30 web on vm-1 is flapping: 3 failures in 10m; further alerts held until it is stable",
                "flap-ended@630 web on vm-1 stopped flapping after 3 failures between 12:00 and 12:00 UTC; now crash-looping (exit code 2)",
                "recovery@2000 web on vm-1 recovered after 32m 50s",
            ],
        ),
        (
            "every transition while flapping postpones the end",
            policy(30, 600, 3),
            &[
                "0 web failed=3", "10 web running", "20 web failed=3", "25 web running",
                "30 web failed=3", "500 web running", "1099 tick", "1100 tick",
            ],
            &[
                "flapping@30 web on vm-1 is flapping: 3 failures in 10m; further alerts held until it is stable",
                "flap-ended@1100 web on vm-1 stopped flapping after 3 failures between 12:00 and 12:00 UTC; now running",
            ],
        ),
        (
            "problems spread wider than the window are not flapping",
            policy(30, 600, 3),
            &[
                "0 web failed=3", "10 web running",
                "400 web failed=3", "410 web running",
                "800 web failed=3", "810 web running",
                "1000 tick",
            ],
            &[],
        ),
        (
            "a fresh episode after the summary starts over",
            policy(0, 60, 2),
            &[
                "0 web failed=3", "1 web running", "2 web failed=3", "3 web running",
                "63 tick", "100 web failed=3", "101 web running",
            ],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@1 web on vm-1 recovered after 1s",
                "flapping@2 web on vm-1 is flapping: 2 failures in 1m; further alerts held until it is stable",
                "flap-ended@63 web on vm-1 stopped flapping after 2 failures between 12:00 and 12:00 UTC; now running",
                "problem@100 web on vm-1 failed (exit code 3)",
                "recovery@101 web on vm-1 recovered after 1s",
            ],
        ),
        (
            "host flapping uses outages",
            policy(0, 600, 2),
            &["0 host down", "5 host up", "10 host down", "15 host up", "700 tick"],
            &[
                "problem@0 vm-1 is down",
                "recovery@5 vm-1 recovered after 5s",
                "flapping@10 vm-1 is flapping: 2 outages in 10m; further alerts held until it is stable",
                "flap-ended@615 vm-1 stopped flapping after 2 outages between 12:00 and 12:00 UTC; now up",
            ],
        ),
        (
            "threshold below 2 turns flapping off",
            policy(0, 600, 1),
            &["0 web failed=3", "1 web running", "2 web failed=3", "3 web running"],
            &[
                "problem@0 web on vm-1 failed (exit code 3)",
                "recovery@1 web on vm-1 recovered after 1s",
                "problem@2 web on vm-1 failed (exit code 3)",
                "recovery@3 web on vm-1 recovered after 1s",
            ],
        ),
        (
            "a transition dated before the previous one does not run time backwards",
            policy(30, 600, 3),
            &["100 web failed=3", "50 web running", "200 tick"],
            &[],
        ),
    ];
    for (name, policy, steps, expected) in cases {
        let got = run(policy.clone(), steps);
        assert_eq!(got, *expected, "case: {name}");
    }
}

#[test]
fn next_deadline_follows_grace_and_quiet_window() {
    let mut rules = Rules::new(policy(30, 600, 2));
    assert_eq!(rules.next_deadline(), None);
    rules.observe(&transition("web", "failed=3", T0));
    assert_eq!(rules.next_deadline(), Some(T0 + 30 * S));
    assert_eq!(rules.tick(T0 + 30 * S).len(), 1);
    assert_eq!(rules.next_deadline(), None);
    rules.observe(&transition("web", "running", T0 + 40 * S));
    let flapping = rules.observe(&transition("web", "failed=3", T0 + 50 * S));
    assert_eq!(flapping.len(), 1);
    assert_eq!(rules.next_deadline(), Some(T0 + 650 * S));
    rules.observe(&transition("web", "running", T0 + 60 * S));
    assert_eq!(rules.next_deadline(), Some(T0 + 660 * S));
    assert_eq!(rules.tick(T0 + 659 * S), Vec::new());
    assert_eq!(rules.tick(T0 + 660 * S).len(), 1);
    assert_eq!(rules.next_deadline(), None);
}

#[test]
fn healthy_subjects_are_forgotten() {
    let mut rules = Rules::new(policy(0, 60, 3));
    rules.observe(&transition("web", "running", T0));
    assert!(rules.subjects.is_empty(), "{rules:?}");
    rules.observe(&transition("web", "failed=3", T0));
    rules.observe(&transition("web", "running", T0 + S));
    // The problem entry is remembered for the flap window, then dropped.
    assert_eq!(rules.subjects.len(), 1);
    rules.tick(T0 + 61 * S);
    assert!(rules.subjects.is_empty(), "{rules:?}");
}

#[test]
fn alert_fields_carry_the_subject_and_state() {
    let mut rules = Rules::new(policy(0, 600, 3));
    let alerts = rules.observe(&transition("web", "crash-looping=3", T0));
    assert_eq!(
        alerts,
        vec![Alert {
            kind: AlertKind::Problem,
            host: "vm-1".into(),
            app: Some("web".into()),
            state: "crash-looping".into(),
            exit: Some(Exit::Code(3)),
            message: "web on vm-1 is crash-looping (exit code 3)".into(),
            at_ms: T0,
            aspect: Aspect::State,
            severity: Severity::Critical,
            detail: Detail::default(),
            healthy: false,
        }]
    );
}

#[test]
fn health_of_app_states() {
    assert_eq!(Health::from(AppState::Running), Health::Ok);
    assert_eq!(Health::from(AppState::Failed), Health::Problem);
    assert_eq!(Health::from(AppState::CrashLooping), Health::Problem);
    for state in [
        AppState::Starting,
        AppState::Stopping,
        AppState::Stopped,
        AppState::Unknown,
        AppState::NotFound,
    ] {
        assert_eq!(Health::from(state), Health::Other, "{state}");
    }
}

#[test]
fn durations_read_like_a_person_wrote_them() {
    for (ms, text) in [
        (0, "0s"),
        (999, "0s"),
        (45_000, "45s"),
        (252_000, "4m 12s"),
        (600_000, "10m"),
        (3_720_000, "1h 2m"),
        (3_600_000 + 5_000, "1h"),
        (86_400_000 * 2 + 3_600_000 * 3 + 59_000, "2d 3h"),
    ] {
        assert_eq!(human_duration(ms), text, "{ms} ms");
    }
}

#[test]
fn spans_across_days_show_dates() {
    assert_eq!(utc_span(T0, T0 + 19 * 60 * S), "12:00 and 12:19 UTC");
    assert_eq!(
        utc_span(
            T0 + 11 * 3600 * S + 50 * 60 * S,
            T0 + 12 * 3600 * S + 10 * 60 * S
        ),
        "2024-05-01 23:50 and 2024-05-02 00:10 UTC"
    );
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(19_782), "2024-02-29");
}

#[test]
fn policy_reads_humane_durations() {
    let policy: AlertPolicy =
        serde_json::from_str(r#"{"grace": "45s", "flap_window": "15m"}"#).expect("policy");
    assert_eq!(policy.grace, Duration::from_secs(45));
    assert_eq!(policy.flap_window, Duration::from_secs(900));
    assert_eq!(policy.flap_threshold, 3);
    assert!(serde_json::from_str::<AlertPolicy>(r#"{"grac": "1s"}"#).is_err());
}

#[test]
fn a_blip_alerts_once_at_once_with_its_last_line_and_never_recovers() {
    let mut rules = Rules::new(policy(30, 600, 3));
    let mut blip = transition("web", "running", T0);
    blip.health = Health::Blip;
    blip.severity = Severity::Warning;
    blip.exit = Some(Exit::Code(1));
    blip.detail.context = Some(CrashContext {
        exit: Some(Exit::Code(1)),
        last_lines: vec!["starting".into(), "panic: config missing".into()],
        ..CrashContext::default()
    });
    let alerts = rules.observe(&blip);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::Problem);
    assert_eq!(alerts[0].severity, Severity::Warning);
    assert_eq!(
        alerts[0].message,
        "web on vm-1 crashed (exit code 1) and was restarted: last line: panic: config missing"
    );
    assert_eq!(alerts[0].detail, blip.detail);
    // Nothing is pending and nothing recovers.
    assert_eq!(rules.tick(T0 + 3600 * S), vec![]);
    assert_eq!(
        rules.observe(&transition("web", "running", T0 + 10 * S)),
        vec![]
    );
    // A second crash is a second alert.
    blip.at_ms = T0 + 20 * S;
    assert_eq!(rules.observe(&blip).len(), 1);
}

#[test]
fn aspects_are_subjects_of_their_own() {
    let mut rules = Rules::new(policy(0, 600, 3));
    let mut check = transition("web", "failing", T0);
    check.aspect = Aspect::Check("health".into());
    check.health = Health::Problem;
    check.severity = Severity::Warning;
    check.detail.reason = Some("HTTP 500".into());
    let alerts = rules.observe(&check);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].message,
        "check health of web on vm-1 is failing: HTTP 500"
    );
    assert_eq!(alerts[0].aspect, Aspect::Check("health".into()));
    // The app's own state recovering does not recover its check.
    assert_eq!(rules.observe(&transition("web", "running", T0 + S)), vec![]);
    let mut pass = check.clone();
    pass.state = "passing".into();
    pass.health = Health::Ok;
    pass.at_ms = T0 + 5 * S;
    pass.detail = Detail::default();
    let alerts = rules.observe(&pass);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::Recovery);
    assert_eq!(
        alerts[0].message,
        "check health of web on vm-1 recovered after 5s"
    );
}

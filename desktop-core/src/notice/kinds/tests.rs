use super::*;
use fleetdeck_proto::CheckKind;

pub(crate) fn event(
    id: i64,
    kind: FleetEventKind,
    from: Option<&str>,
    to: Option<&str>,
    exit: Option<Exit>,
) -> FleetEvent {
    FleetEvent {
        id,
        at_unix_ms: 1_700_000_000_000,
        severity: Severity::Info,
        source: "agent-stream".into(),
        kind,
        host: "web-1".into(),
        app: match kind {
            FleetEventKind::HostDown | FleetEventKind::HostUp => None,
            _ => Some("api".into()),
        },
        from: from.map(str::to_owned),
        to: to.map(str::to_owned),
        exit,
        message: "web-1 is down: 2 polls missed (cannot connect)".into(),
        context: None,
        check: None,
        threshold: None,
    }
}

fn transition(from: Option<&str>, to: &str, exit: Option<Exit>) -> FleetEvent {
    event(1, FleetEventKind::Transition, from, Some(to), exit)
}

#[test]
fn a_crash_is_noticed_with_its_exit() {
    let n = notice_for(
        "home",
        &transition(Some("running"), "failed", Some(Exit::Code(1))),
    )
    .expect("a crash");
    assert_eq!(n.summary, "api crashed on web-1");
    assert!(n.body.contains("exit code 1"), "{}", n.body);
    assert!(n.body.contains("web-1") && n.body.contains("api") && n.body.contains("home"));
    assert!(n.critical);
    assert_eq!(
        n.target,
        AppRef {
            collector: "home".into(),
            host: "web-1".into(),
            app: Some("api".into())
        }
    );
    let n = notice_for(
        "home",
        &transition(Some("running"), "crash-looping", Some(Exit::Signal(11))),
    )
    .expect("crash-looping");
    assert_eq!(n.summary, "api crashed on web-1");
    assert!(n.body.contains("crash-looping"), "{}", n.body);
    assert!(
        n.body.contains("killed by signal 11 (SIGSEGV)"),
        "{}",
        n.body
    );
    // No exit known: still a crash, without the detail.
    let n = notice_for("home", &transition(None, "failed", None)).expect("first seen failed");
    assert!(!n.body.contains("exit"), "{}", n.body);
}

#[test]
fn a_recovery_is_noticed() {
    for from in ["failed", "crash-looping"] {
        let n = notice_for("home", &transition(Some(from), "running", None)).expect(from);
        assert_eq!(n.summary, "api recovered on web-1");
        assert!(
            n.body.contains(from) && n.body.contains("home"),
            "{}",
            n.body
        );
        assert!(!n.critical);
    }
}

#[test]
fn a_restart_after_a_bad_exit_is_a_crash() {
    let restarted = |exit| {
        event(
            1,
            FleetEventKind::Restarted,
            Some("running"),
            Some("running"),
            exit,
        )
    };
    let n = notice_for("home", &restarted(Some(Exit::Code(137)))).expect("exit 137");
    assert_eq!(n.summary, "api crashed on web-1");
    assert!(
        n.body.contains("exit code 137") && n.body.contains("restarted"),
        "{}",
        n.body
    );
    let n = notice_for("home", &restarted(Some(Exit::Signal(9)))).expect("SIGKILL");
    assert!(
        n.body.contains("killed by signal 9 (SIGKILL)"),
        "{}",
        n.body
    );
    assert_eq!(notice_for("home", &restarted(Some(Exit::Code(0)))), None);
    assert_eq!(notice_for("home", &restarted(None)), None);
}

#[test]
fn hosts_going_down_and_up() {
    let down = notice_for(
        "home",
        &event(1, FleetEventKind::HostDown, Some("up"), Some("down"), None),
    )
    .expect("down");
    assert_eq!(down.summary, "web-1 is down");
    assert!(down.critical);
    assert!(
        down.body.contains("home") && down.body.contains("polls missed"),
        "{}",
        down.body
    );
    assert_eq!(down.target.app, None);
    let up = notice_for(
        "home",
        &event(2, FleetEventKind::HostUp, Some("down"), Some("up"), None),
    )
    .expect("up");
    assert_eq!(up.summary, "web-1 is back up");
    assert!(!up.critical);
    assert_eq!(up.target.host, "web-1");
}

#[test]
fn other_events_are_ignored() {
    for (from, to) in [
        (Some("running"), "stopping"),
        (Some("stopping"), "stopped"),
        (Some("stopped"), "starting"),
        (Some("starting"), "running"),
        (None, "running"),
        (Some("failed"), "crash-looping"),
        (Some("crash-looping"), "failed"),
        (Some("failed"), "stopped"),
        (Some("running"), "unknown"),
        (Some("unknown"), "running"),
    ] {
        assert_eq!(
            notice_for("home", &transition(from, to, Some(Exit::Code(1)))),
            None,
            "{from:?} -> {to}"
        );
    }
    // A transition without an app is malformed: nothing to say.
    let mut e = transition(Some("running"), "failed", None);
    e.app = None;
    assert_eq!(notice_for("home", &e), None);
}

#[test]
fn signal_names() {
    assert_eq!(
        describe_exit(Exit::Signal(9)),
        "killed by signal 9 (SIGKILL)"
    );
    assert_eq!(
        describe_exit(Exit::Signal(15)),
        "killed by signal 15 (SIGTERM)"
    );
    assert_eq!(
        describe_exit(Exit::Signal(6)),
        "killed by signal 6 (SIGABRT)"
    );
    assert_eq!(
        describe_exit(Exit::Signal(11)),
        "killed by signal 11 (SIGSEGV)"
    );
    assert_eq!(
        describe_exit(Exit::Signal(2)),
        "killed by signal 2 (SIGINT)"
    );
    assert_eq!(describe_exit(Exit::Signal(64)), "killed by signal 64");
    assert_eq!(describe_exit(Exit::Code(3)), "exit code 3");
}

fn crash_context() -> CrashContext {
    CrashContext {
        exit: Some(Exit::Signal(9)),
        oom_killed: true,
        memory_bytes: Some(33_000_000),
        memory_limit_bytes: Some(32 * 1024 * 1024),
        last_lines: vec![
            "starting".into(),
            "allocating <big> & more".into(),
            "   ".into(),
        ],
        lines_error: None,
    }
}

#[test]
fn a_crash_says_why_in_the_body() {
    let mut e = transition(Some("running"), "failed", Some(Exit::Signal(9)));
    e.context = Some(crash_context());
    let n = notice_for("home", &e).expect("a crash");
    assert_eq!(n.summary, "api crashed on web-1");
    assert_eq!(
        n.body,
        "api on web-1 is failed: killed by the OOM killer (killed by signal 9 (SIGKILL)); \
         memory 31.5 MiB of its 32.0 MiB limit. Collector: home.\nLast log line: allocating \
         <big> & more"
    );
    // Without OOM nor memory: the exit and the line.
    let mut e = transition(Some("running"), "failed", Some(Exit::Code(3)));
    e.context = Some(CrashContext {
        exit: Some(Exit::Code(3)),
        last_lines: vec!["FATAL: config missing".into()],
        ..CrashContext::default()
    });
    assert_eq!(
        notice_for("home", &e).expect("crash").body,
        "api on web-1 is failed: exit code 3. Collector: home.\nLast log line: FATAL: config missing"
    );
}

#[test]
fn a_long_last_line_is_cut_on_a_char_boundary() {
    let line = "é".repeat(300);
    let mut e = transition(Some("running"), "failed", Some(Exit::Code(1)));
    e.context = Some(CrashContext {
        last_lines: vec![line],
        ..CrashContext::default()
    });
    let body = notice_for("home", &e).expect("crash").body;
    let shown = body
        .split("Last log line: ")
        .nth(1)
        .map(str::trim_end)
        .expect("a last line");
    assert_eq!(shown, format!("{}…", "é".repeat(LAST_LINE_CHARS)));
    assert_eq!(cut_chars("short", 200), "short");
}

#[test]
fn a_blip_says_crashed_and_was_restarted() {
    let mut e = event(
        1,
        FleetEventKind::Restarted,
        Some("running"),
        Some("running"),
        None,
    );
    e.context = Some(CrashContext {
        exit: Some(Exit::Code(2)),
        last_lines: vec!["panic: index out of range".into()],
        ..CrashContext::default()
    });
    let n = notice_for("home", &e).expect("a blip");
    assert_eq!(n.summary, "api crashed on web-1");
    assert_eq!(
        n.body,
        "api on web-1 crashed and was restarted: exit code 2. Collector: home.\nLast log line: \
         panic: index out of range"
    );
    assert!(!n.critical);
}

#[test]
fn a_blip_seen_as_a_transition_back_to_running_is_a_crash_too() {
    let mut e = transition(Some("starting"), "running", None);
    e.severity = Severity::Warning;
    e.context = Some(CrashContext {
        exit: Some(Exit::Signal(11)),
        last_lines: vec!["segfault at 0x10".into()],
        ..CrashContext::default()
    });
    let n = notice_for("home", &e).expect("a blip");
    assert_eq!(
        n.body,
        "api on web-1 crashed and was restarted: killed by signal 11 (SIGSEGV). Collector: \
         home.\nLast log line: segfault at 0x10"
    );
    // A plain start (info, no context) says nothing.
    assert_eq!(
        notice_for("home", &transition(Some("starting"), "running", None)),
        None
    );
}

#[test]
fn a_removed_app_and_an_unexpected_stop_are_noticed() {
    let mut e = transition(Some("running"), "not-found", None);
    e.severity = Severity::Critical;
    let n = notice_for("home", &e).expect("not-found");
    assert_eq!(n.summary, "api disappeared from web-1");
    assert_eq!(
        n.body,
        "api on web-1 is not found any more (it was running): its unit or container was \
         removed or renamed. Collector: home."
    );
    assert!(n.critical);
    // A stop the collector marks as unexpected (not info).
    let mut e = transition(Some("running"), "stopped", Some(Exit::Code(0)));
    e.severity = Severity::Warning;
    let n = notice_for("home", &e).expect("unexpected stop");
    assert_eq!(n.summary, "api stopped on web-1");
    assert_eq!(
        n.body,
        "api on web-1 stopped while it is expected to run, and nobody stopped it through \
         Fleetdeck. Collector: home."
    );
    assert!(!n.critical);
    // A requested stop is info: nothing.
    e.severity = Severity::Info;
    assert_eq!(notice_for("home", &e), None);
}

fn check(ok: bool) -> CheckResult {
    CheckResult {
        name: "health".into(),
        kind: CheckKind::Http,
        target: "http://127.0.0.1:8080/healthz".into(),
        ok,
        consecutive_failures: u32::from(!ok),
        status_code: Some(if ok { 200 } else { 500 }),
        latency_ms: Some(if ok { 12.4 } else { 811.6 }),
        error: (!ok).then(|| "status 500, expected 2xx or 3xx".into()),
        cert_not_after_unix_ms: None,
        checked_unix_ms: 1_700_000_000_000,
    }
}

#[test]
fn checks_failing_and_passing() {
    let mut e = event(1, FleetEventKind::CheckFailed, None, None, None);
    e.severity = Severity::Warning;
    e.check = Some(check(false));
    let n = notice_for("home", &e).expect("failed");
    assert_eq!(n.summary, "Check health of api failing on web-1");
    assert_eq!(
        n.body,
        "health (http http://127.0.0.1:8080/healthz) of api on web-1 failed: status 500, \
         expected 2xx or 3xx. Status 500, 812 ms. Collector: home."
    );
    assert!(!n.critical);
    assert_eq!(n.target.app.as_deref(), Some("api"));
    let mut e = event(2, FleetEventKind::CheckPassed, None, None, None);
    e.check = Some(check(true));
    let n = notice_for("home", &e).expect("passed");
    assert_eq!(n.summary, "Check health of api passing again on web-1");
    assert_eq!(
        n.body,
        "health (http http://127.0.0.1:8080/healthz) of api on web-1 passes again. \
         Status 200, 12 ms. Collector: home."
    );
}

#[test]
fn a_certificate_problem_names_the_date() {
    let mut c = check(false);
    c.kind = CheckKind::Https;
    c.target = "https://127.0.0.1:8443/".into();
    c.status_code = Some(200);
    c.latency_ms = Some(20.0);
    c.error = Some("the certificate expires in 5 days".into());
    // 2023-11-14T22:13:20Z + 5 days
    c.cert_not_after_unix_ms = Some(1_700_000_000_000 + 5 * 86_400_000);
    let mut e = event(1, FleetEventKind::CheckFailed, None, None, None);
    e.check = Some(c.clone());
    assert_eq!(
        notice_for("home", &e).expect("cert").body,
        "health (https https://127.0.0.1:8443/) of api on web-1 failed: the certificate \
         expires in 5 days. Status 200, 20 ms. The certificate expires on 2023-11-19 (in 5 \
         days). Collector: home."
    );
    c.cert_not_after_unix_ms = Some(1_700_000_000_000 - 86_400_000);
    e.check = Some(c.clone());
    assert!(notice_for("home", &e)
        .expect("expired")
        .body
        .contains("The certificate expired on 2023-11-13."));
    // Far away: not worth saying.
    c.cert_not_after_unix_ms = Some(1_700_000_000_000 + 90 * 86_400_000);
    e.check = Some(c);
    assert!(!notice_for("home", &e)
        .expect("far")
        .body
        .contains("certificate expires on"));
}

#[test]
fn sources_down_and_up() {
    let mut e = event(1, FleetEventKind::SourceDown, None, Some("docker"), None);
    e.app = None;
    e.severity = Severity::Warning;
    // As the collector words it.
    e.message = "the docker source of web-1 is down: cannot connect to \
                 /run/user/1000/podman/podman.sock: connection refused"
        .into();
    let n = notice_for("home", &e).expect("down");
    assert_eq!(n.summary, "Docker engine not answering on web-1");
    assert_eq!(
        n.body,
        "Docker engine not answering on web-1: cannot connect to \
         /run/user/1000/podman/podman.sock: connection refused. Its apps show their last known \
         state. Collector: home."
    );
    assert_eq!(n.target.app, None);
    let mut e = event(2, FleetEventKind::SourceUp, Some("systemd"), None, None);
    e.app = None;
    let n = notice_for("home", &e).expect("up");
    assert_eq!(n.summary, "systemd (D-Bus) answering again on web-1");
    assert_eq!(
        n.body,
        "systemd (D-Bus) answers again on web-1. Collector: home."
    );
    // The collector's own wording names the source first: a host called docker-1 does not make
    // systemd's outage Docker's.
    let mut e = event(3, FleetEventKind::SourceDown, None, Some("down"), None);
    e.app = None;
    e.host = "docker-1".into();
    e.message = "the systemd source of docker-1 is down: org.freedesktop.DBus.Error.NoReply".into();
    let n = notice_for("home", &e).expect("down");
    assert_eq!(n.summary, "systemd (D-Bus) not answering on docker-1");
}

fn hit(metric: &str, value: f64, threshold: f64, direction: &str) -> ThresholdHit {
    ThresholdHit {
        rule: "disk-full".into(),
        metric: metric.into(),
        subject: Some("/var".into()),
        value,
        threshold,
        direction: direction.into(),
        for_secs: 300,
    }
}

#[test]
fn thresholds_fired_and_cleared() {
    let mut e = event(1, FleetEventKind::ThresholdFired, None, None, None);
    e.app = None;
    e.severity = Severity::Critical;
    e.threshold = Some(hit("disk.used_percent", 93.24, 90.0, "above"));
    let n = notice_for("home", &e).expect("fired");
    assert_eq!(n.summary, "disk-full on web-1 (/var)");
    assert_eq!(
        n.body,
        "disk.used_percent of /var on web-1 is 93.2 %, above the 90.0 % threshold for 5m \
         (rule disk-full). Collector: home."
    );
    assert!(n.critical);
    let mut e = event(2, FleetEventKind::ThresholdCleared, None, None, None);
    e.app = None;
    e.threshold = Some(hit("disk.used_percent", 80.0, 85.0, "above"));
    let n = notice_for("home", &e).expect("cleared");
    assert_eq!(n.summary, "Cleared: disk-full on web-1 (/var)");
    assert_eq!(
        n.body,
        "disk.used_percent of /var on web-1 is 80.0 %, back below 85.0 % (rule disk-full). \
         Collector: home."
    );
    assert!(!n.critical);
    // No longer reported (unmounted): the collector's words, not a made-up figure.
    e.message =
        "/var on web-1 is no longer reported (rule disk-full: firing since 600 s before)".into();
    let n = notice_for("home", &e).expect("gone");
    assert_eq!(
        n.body,
        "/var on web-1 is no longer reported (rule disk-full: firing since 600 s before). \
         Collector: home."
    );
    // Predicted full: hours, below.
    let mut e = event(3, FleetEventKind::ThresholdFired, None, None, None);
    e.severity = Severity::Warning;
    e.threshold = Some(hit("disk.hours_to_full", 18.46, 24.0, "below"));
    assert_eq!(
        notice_for("home", &e).expect("predicted").body,
        "disk.hours_to_full of /var on web-1 is 18.5 h, below the 24.0 h threshold for 5m \
         (rule disk-full). Collector: home."
    );
    assert_eq!(metric_value("app.memory_bytes", 33_554_432.0), "32.0 MiB");
    assert_eq!(metric_value("check.latency_ms", 811.6), "812 ms");
    assert_eq!(metric_value("load.per_core", 4.256), "4.26");
}

#[test]
fn clock_skew_and_back() {
    let mut e = event(1, FleetEventKind::ClockSkew, None, None, None);
    e.app = None;
    e.message = "the clock of web-1 is skewed: agent clock 42 s ahead".into();
    let n = notice_for("home", &e).expect("skew");
    assert_eq!(n.summary, "The clock of web-1 is off");
    assert_eq!(
        n.body,
        "The clock of web-1 is skewed: agent clock 42 s ahead. History and grace periods depend \
         on it: set the clock right (NTP). Collector: home."
    );
    let mut e = event(2, FleetEventKind::ClockOk, None, None, None);
    e.app = None;
    e.message = "the clock of web-1 is ok: agent clock 0 s ahead".into();
    let n = notice_for("home", &e).expect("ok");
    assert_eq!(n.summary, "The clock of web-1 is right again");
    assert_eq!(
        n.body,
        "The clock of web-1 is ok: agent clock 0 s ahead. Collector: home."
    );
}

#[test]
fn bytes_for_a_person() {
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
}

#[test]
fn certificates_expiring_and_renewed() {
    let mut e = event(
        1,
        FleetEventKind::CertExpiring,
        None,
        Some("expiring"),
        None,
    );
    e.severity = Severity::Warning;
    e.check = Some(check(true));
    e.message = "the certificate of check health of api on web-1 expires on 2023-11-19 \
                 (5 days left) (limit: 14 days)"
        .into();
    let n = notice_for("home", &e).expect("expiring");
    assert_eq!(
        n.summary,
        "Certificate of check health of api expiring on web-1"
    );
    assert_eq!(
        n.body,
        "The certificate of check health of api on web-1 expires on 2023-11-19 (5 days left) \
         (limit: 14 days). Collector: home."
    );
    assert!(!n.critical);
    e.severity = Severity::Critical;
    let n = notice_for("home", &e).expect("critical");
    assert_eq!(
        n.summary,
        "Certificate of check health of api about to expire on web-1"
    );
    assert!(n.critical);
    let mut e = event(2, FleetEventKind::CertRenewed, None, Some("renewed"), None);
    e.check = Some(check(true));
    e.message = "the certificate of check health of api on web-1 was renewed: it expires on \
                 2024-02-12 (90 days left)"
        .into();
    let n = notice_for("home", &e).expect("renewed");
    assert_eq!(
        n.summary,
        "Certificate of check health of api renewed on web-1"
    );
    assert!(!n.critical);
}

//! What each kind of fleet event says in a notification: the summary names the app and host, the
//! body says why (the exit, the OOM killer, memory against its limit and the last log line of a
//! crash; a check's error, status, latency and certificate expiry; a rule's value against its
//! threshold; a source's error).

use fleetdeck_proto::desktop::AppRef;
use fleetdeck_proto::{
    signal_name, CheckResult, CrashContext, Exit, FleetEvent, FleetEventKind, Severity,
    ThresholdHit,
};

use super::Notice;

/// The longest log line a notification body shows, in characters.
pub const LAST_LINE_CHARS: usize = 200;

/// A certificate expiring within this many days is worth saying in a check's notice.
const CERT_WARN_DAYS: i64 = 14;

const DAY_MS: i64 = 86_400_000;

/// States in which an app is down.
fn is_down(state: Option<&str>) -> bool {
    matches!(state, Some("failed" | "crash-looping"))
}

/// How a process ended, for a person: `exit code 1`, `killed by signal 9 (SIGKILL)`.
pub fn describe_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit code {code}"),
        Exit::Signal(signal) => match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        },
    }
}

/// An exit that is a crash: a non-zero code or any signal.
fn crashed(exit: Option<Exit>) -> Option<Exit> {
    exit.filter(|e| !matches!(e, Exit::Code(0)))
}

/// `text` cut to `max` characters (on a character boundary), with `…` when cut.
pub fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Bytes for a person: `512 B`, `31.9 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A Unix time in ms as a date: `2026-12-09`.
fn date(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// Why a process ended, from its crash context (or the event's exit when there is none): the
/// exit or the OOM killer, then memory against its limit, each a clause.
fn crash_reason(exit: Option<Exit>, context: Option<&CrashContext>) -> Vec<String> {
    let exit = crashed(context.and_then(|c| c.exit).or(exit)).map(describe_exit);
    let mut parts = Vec::new();
    match (exit, context.is_some_and(|c| c.oom_killed)) {
        (Some(exit), true) => parts.push(format!("killed by the OOM killer ({exit})")),
        (None, true) => parts.push("killed by the OOM killer".to_owned()),
        (Some(exit), false) => parts.push(exit),
        (None, false) => {}
    }
    if let Some(c) = context {
        match (c.memory_bytes, c.memory_limit_bytes) {
            (Some(used), Some(limit)) => parts.push(format!(
                "memory {} of its {} limit",
                human_bytes(used),
                human_bytes(limit)
            )),
            (Some(used), None) => parts.push(format!("memory {}", human_bytes(used))),
            _ => {}
        }
    }
    parts
}

/// The last log line, cut for a notification, on a line of its own at the end of the body:
/// `\nLast log line: …`, or nothing.
fn last_line(context: Option<&CrashContext>) -> String {
    context
        .and_then(CrashContext::last_line)
        .map(|l| format!("\nLast log line: {}", cut_chars(l, LAST_LINE_CHARS)))
        .unwrap_or_default()
}

/// `name (http http://…)`.
fn check_label(c: &CheckResult) -> String {
    format!("{} ({} {})", c.name, c.kind.as_str(), c.target)
}

/// A check's figures: `status 500, 812 ms`.
fn check_figures(c: &CheckResult) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(code) = c.status_code {
        parts.push(format!("status {code}"));
    }
    if let Some(ms) = c.latency_ms {
        parts.push(format!("{ms:.0} ms"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `The certificate expires on 2026-12-09 (in 5 days).` when it does within 14 days of the run.
fn cert_note(c: &CheckResult) -> Option<String> {
    let not_after = c.cert_not_after_unix_ms?;
    let left_ms = i64::try_from(not_after).ok()? - i64::try_from(c.checked_unix_ms).ok()?;
    let days = left_ms.div_euclid(DAY_MS);
    if left_ms < 0 {
        Some(format!("The certificate expired on {}.", date(not_after)))
    } else if days <= CERT_WARN_DAYS {
        let when = match days {
            0 => "today".to_owned(),
            1 => "in 1 day".to_owned(),
            n => format!("in {n} days"),
        };
        Some(format!(
            "The certificate expires on {} ({when}).",
            date(not_after)
        ))
    } else {
        None
    }
}

/// A rule's value for a person, by its metric: `93.2 %`, `31.9 MiB`, `18.5 h`, `812 ms`.
pub fn metric_value(metric: &str, value: f64) -> String {
    if metric.ends_with("percent") {
        format!("{value:.1} %")
    } else if metric.ends_with("bytes") {
        // Saturating: a negative or huge value is a bug elsewhere, not a reason to panic here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bytes = value.max(0.0) as u64;
        human_bytes(bytes)
    } else if metric.ends_with("hours_to_full") {
        format!("{value:.1} h")
    } else if metric.ends_with("_ms") {
        format!("{value:.0} ms")
    } else {
        format!("{value:.2}")
    }
}

/// The rule and what it is about: `disk-full on db-1 (/var)`.
fn threshold_title(t: &ThresholdHit, host: &str) -> String {
    match &t.subject {
        Some(subject) => format!("{} on {host} ({subject})", t.rule),
        None => format!("{} on {host}", t.rule),
    }
}

/// The source an event is about, for a person. The collector's message starts "the NAME source
/// of HOST is ..." (NAME `docker` or `systemd`); failing that, the event's other fields and then
/// the message are searched (a host named `docker-1` must not make systemd's event Docker's, so
/// the message's own prefix comes first).
fn source_label(event: &FleetEvent) -> &'static str {
    let named_by_prefix = event
        .message
        .strip_prefix("the ")
        .and_then(|rest| rest.split_once(" source of "))
        .map(|(name, _)| name);
    match named_by_prefix {
        Some("docker") => return "Docker engine",
        Some("systemd") => return "systemd (D-Bus)",
        _ => {}
    }
    let named = [
        event.to.as_deref(),
        event.from.as_deref(),
        Some(event.source.as_str()),
        Some(event.message.as_str()),
    ];
    for text in named.into_iter().flatten() {
        let text = text.to_ascii_lowercase();
        if text.contains("docker") {
            return "Docker engine";
        }
        if text.contains("systemd") || text.contains("d-bus") || text.contains("dbus") {
            return "systemd (D-Bus)";
        }
    }
    "A status source"
}

/// The notice for `event` from `collector`, or `None` when it needs none (a start, a requested
/// stop, a clean restart, a crash-looping app that was already failed...).
#[allow(clippy::too_many_lines)]
pub fn notice_for(collector: &str, event: &FleetEvent) -> Option<Notice> {
    let host = event.host.as_str();
    let target = AppRef {
        collector: collector.to_owned(),
        host: host.to_owned(),
        app: event.app.clone(),
    };
    let host_target = AppRef {
        app: None,
        ..target.clone()
    };
    let (from, to) = (event.from.as_deref(), event.to.as_deref());
    let context = event.context.as_ref();
    let severe = event.severity == Severity::Critical;
    let notice = |summary: String, body: String, critical: bool, target: AppRef| {
        Some(Notice {
            summary,
            body,
            critical,
            target,
        })
    };
    match event.kind {
        FleetEventKind::Transition => {
            let app = event.app.as_deref()?;
            if is_down(to) && !is_down(from) {
                let state = to.unwrap_or("failed");
                let reason = crash_reason(event.exit, context);
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", reason.join("; "))
                };
                notice(
                    format!("{app} crashed on {host}"),
                    format!(
                        "{app} on {host} is {state}{why}. Collector: {collector}.{}",
                        last_line(context)
                    ),
                    true,
                    target,
                )
            } else if is_down(from) && to == Some("running") {
                notice(
                    format!("{app} recovered on {host}"),
                    format!(
                        "{app} on {host} is running again (it was {}). Collector: {collector}.",
                        from.unwrap_or("failed")
                    ),
                    false,
                    target,
                )
            } else if to == Some("running") && context.is_some() && event.severity != Severity::Info
            {
                // Running again after a crash the restart policy healed before anyone looked
                // (the collector marks the blip with a warning and the crash's context).
                blip(app, host, collector, event.exit, context, target)
            } else if to == Some("not-found") && from != Some("not-found") && from.is_some() {
                notice(
                    format!("{app} disappeared from {host}"),
                    format!(
                        "{app} on {host} is not found any more (it was {}): its unit or \
                         container was removed or renamed. Collector: {collector}.",
                        from.unwrap_or("unknown")
                    ),
                    severe,
                    target,
                )
            } else if to == Some("stopped") && event.severity != Severity::Info {
                // The collector marks a stop that nobody asked for through Fleetdeck, of an app
                // expected to run, with a warning or critical severity; a requested one is info.
                let why = crash_reason(event.exit, context);
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why.join("; "))
                };
                notice(
                    format!("{app} stopped on {host}"),
                    format!(
                        "{app} on {host} stopped{why} while it is expected to run, and nobody \
                         stopped it through Fleetdeck. Collector: {collector}.{}",
                        last_line(context)
                    ),
                    severe,
                    target,
                )
            } else {
                None
            }
        }
        // A new process in the same state: a crash only if the old one ended badly (or the
        // agent saw a crash), and then systemd (or Docker) has already restarted it.
        FleetEventKind::Restarted => {
            let app = event.app.as_deref()?;
            blip(app, host, collector, event.exit, context, target)
        }
        FleetEventKind::CheckFailed | FleetEventKind::CheckPassed => {
            let failed = event.kind == FleetEventKind::CheckFailed;
            let of = event
                .app
                .as_deref()
                .map(|a| format!(" of {a}"))
                .unwrap_or_default();
            let Some(check) = &event.check else {
                let (what, state) = if failed {
                    ("failing", "failed")
                } else {
                    ("passing again", "passes again")
                };
                return notice(
                    format!("A check{of} is {what} on {host}"),
                    format!(
                        "A check{of} on {host} {state}: {}. Collector: {collector}.",
                        event.message
                    ),
                    failed && severe,
                    target,
                );
            };
            let mut body = if failed {
                let error = check.error.as_deref().unwrap_or("it did not pass");
                format!("{}{of} on {host} failed: {error}.", check_label(check))
            } else {
                format!("{}{of} on {host} passes again.", check_label(check))
            };
            if let Some(figures) = check_figures(check) {
                body.push_str(&format!(" {}.", capitalize(&figures)));
            }
            if let Some(cert) = cert_note(check) {
                body.push_str(&format!(" {cert}"));
            }
            body.push_str(&format!(" Collector: {collector}."));
            let summary = if failed {
                format!("Check {}{of} failing on {host}", check.name)
            } else {
                format!("Check {}{of} passing again on {host}", check.name)
            };
            notice(summary, body, failed && severe, target)
        }
        FleetEventKind::SourceDown => {
            let source = source_label(event);
            // The collector's message is `the docker source of vm-1 is down: ERROR`: the error.
            let error = event
                .message
                .split_once(" is down: ")
                .map_or(event.message.as_str(), |(_, error)| error);
            notice(
                format!("{source} not answering on {host}"),
                format!(
                    "{source} not answering on {host}: {}. Its apps show their last known \
                     state. Collector: {collector}.",
                    error.trim_end_matches('.')
                ),
                severe,
                host_target,
            )
        }
        FleetEventKind::SourceUp => {
            let source = source_label(event);
            notice(
                format!("{source} answering again on {host}"),
                format!("{source} answers again on {host}. Collector: {collector}."),
                false,
                host_target,
            )
        }
        FleetEventKind::ThresholdFired | FleetEventKind::ThresholdCleared => {
            let fired = event.kind == FleetEventKind::ThresholdFired;
            let Some(t) = &event.threshold else {
                let what = if fired { "fired" } else { "cleared" };
                return notice(
                    format!("A threshold {what} on {host}"),
                    format!(
                        "{}. Collector: {collector}.",
                        event.message.trim_end_matches('.')
                    ),
                    fired && severe,
                    target,
                );
            };
            let of = t
                .subject
                .as_deref()
                .map(|s| format!(" of {s}"))
                .unwrap_or_default();
            let (value, level) = (
                metric_value(&t.metric, t.value),
                metric_value(&t.metric, t.threshold),
            );
            // A series that stopped being reported (a filesystem unmounted, an app or host
            // gone) cleared without a value: the collector's message says so, not a figure.
            let unreported = !fired && event.message.contains("is no longer reported");
            let body = if unreported {
                format!(
                    "{}. Collector: {collector}.",
                    capitalize(event.message.trim_end_matches('.'))
                )
            } else if fired {
                let held = if t.for_secs > 0 {
                    format!(
                        " for {}",
                        humantime::format_duration(std::time::Duration::from_secs(t.for_secs))
                    )
                } else {
                    String::new()
                };
                format!(
                    "{}{of} on {host} is {value}, {} the {level} threshold{held} (rule {}). \
                     Collector: {collector}.",
                    t.metric, t.direction, t.rule
                )
            } else {
                format!(
                    "{}{of} on {host} is {value}, back {} {level} (rule {}). \
                     Collector: {collector}.",
                    t.metric,
                    if t.direction == "below" {
                        "above"
                    } else {
                        "below"
                    },
                    t.rule
                )
            };
            let summary = if fired {
                threshold_title(t, host)
            } else {
                format!("Cleared: {}", threshold_title(t, host))
            };
            notice(summary, body, fired && severe, target)
        }
        // The collector words it "the certificate of check tls of web on vm-1 expires on
        // 2026-12-09 (5 days left) (limit: 14 days)": the notice says it as it is.
        FleetEventKind::CertExpiring | FleetEventKind::CertRenewed => {
            let renewed = event.kind == FleetEventKind::CertRenewed;
            let name = event.check.as_ref().map_or("", |c| c.name.as_str());
            let of = event
                .app
                .as_deref()
                .map(|a| format!(" of {a}"))
                .unwrap_or_default();
            let summary = if renewed {
                format!("Certificate of check {name}{of} renewed on {host}")
            } else if severe {
                format!("Certificate of check {name}{of} about to expire on {host}")
            } else {
                format!("Certificate of check {name}{of} expiring on {host}")
            };
            notice(
                summary,
                format!(
                    "{}. Collector: {collector}.",
                    capitalize(event.message.trim_end_matches('.'))
                ),
                !renewed && severe,
                target,
            )
        }
        FleetEventKind::ClockSkew => notice(
            format!("The clock of {host} is off"),
            format!(
                "{}. History and grace periods depend on it: set the clock right (NTP). \
                 Collector: {collector}.",
                capitalize(event.message.trim_end_matches('.'))
            ),
            false,
            host_target,
        ),
        // Not a problem: it is in the fleet's history, not a notification.
        FleetEventKind::AppUnwatched => None,
        FleetEventKind::ClockOk => notice(
            format!("The clock of {host} is right again"),
            format!(
                "{}. Collector: {collector}.",
                capitalize(event.message.trim_end_matches('.'))
            ),
            false,
            host_target,
        ),
        FleetEventKind::HostDown => notice(
            format!("{host} is down"),
            format!(
                "The collector {collector} cannot reach the agent on {host}: {}",
                event.message
            ),
            true,
            host_target,
        ),
        FleetEventKind::HostUp => notice(
            format!("{host} is back up"),
            format!(
                "The collector {collector} reaches the agent on {host} again: {}",
                event.message
            ),
            false,
            host_target,
        ),
    }
}

/// A crash the restart policy healed: the app runs again, but it crashed, and this says why.
fn blip(
    app: &str,
    host: &str,
    collector: &str,
    exit: Option<Exit>,
    context: Option<&CrashContext>,
    target: AppRef,
) -> Option<Notice> {
    let reason = crash_reason(exit, context);
    if reason.is_empty() && context.is_none() {
        return None;
    }
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(": {}", reason.join("; "))
    };
    Some(Notice {
        summary: format!("{app} crashed on {host}"),
        body: format!(
            "{app} on {host} crashed and was restarted{why}. Collector: {collector}.{}",
            last_line(context)
        ),
        critical: false,
        target,
    })
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests;

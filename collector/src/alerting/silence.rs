//! Silences: which alerts stay away from the channels (and the desktop's notifications) for a
//! while. Pure: what matches, and what a request may ask. The silences themselves live in the
//! database (`store::alerts`), so the API and the command line change them alike, and the
//! alerting task reads them when it raises an alert and when a held one may go out.

use std::time::Duration;

use fleetdeck_proto::{NewSilence, Silence};

use super::rules::{Alert, Aspect};

/// The aspects a silence may be limited to (`Aspect`'s names).
pub const KINDS: [&str; 7] = [
    "state",
    "check",
    "source",
    "clock",
    "cert-expiring",
    "cert-critical",
    "threshold",
];
/// How far ahead a silence may end.
pub const MAX_SILENCE: Duration = Duration::from_secs(90 * 24 * 3600);
/// Bytes of a glob, a reason or a note at most.
pub const MAX_GLOB: usize = 128;
pub const MAX_TEXT: usize = 512;

/// The name of an alert's aspect, as silences and the history name it.
pub fn aspect_kind(aspect: &Aspect) -> &'static str {
    match aspect {
        Aspect::State => "state",
        Aspect::Check(_) => "check",
        Aspect::Source(_) => "source",
        Aspect::Clock => "clock",
        Aspect::CertExpiring(_) => "cert-expiring",
        Aspect::CertCritical(_) => "cert-critical",
        Aspect::Threshold { .. } => "threshold",
    }
}

/// The check, source or rule an aspect names.
pub fn aspect_name(aspect: &Aspect) -> Option<String> {
    match aspect {
        Aspect::State | Aspect::Clock => None,
        Aspect::Check(n)
        | Aspect::Source(n)
        | Aspect::CertExpiring(n)
        | Aspect::CertCritical(n) => Some(n.clone()),
        Aspect::Threshold { rule, subject } => Some(match subject {
            Some(s) => format!("{rule} {s}"),
            None => rule.clone(),
        }),
    }
}

/// Whether `silence`, in force at `now_ms`, covers `alert` ([`Silence::covers`]).
pub fn covers(silence: &Silence, alert: &Alert, now_ms: u64) -> bool {
    silence.covers(
        &alert.host,
        alert.app.as_deref(),
        aspect_kind(&alert.aspect),
        now_ms,
    )
}

/// The first silence in `silences` that covers `alert` at `now_ms`.
pub fn covering<'a>(silences: &'a [Silence], alert: &Alert, now_ms: u64) -> Option<&'a Silence> {
    silences.iter().find(|s| covers(s, alert, now_ms))
}

/// What the audit says of a silence: its id and what it covers (all validated and bounded).
pub fn audit_target(s: &Silence) -> String {
    format!(
        "silence {} hosts={} apps={} kind={}",
        s.id,
        s.hosts,
        s.apps.as_deref().unwrap_or("*"),
        s.kind.as_deref().unwrap_or("*"),
    )
}

/// A silence to store: what was asked, checked, with its start and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub hosts: String,
    pub apps: Option<String>,
    pub kind: Option<String>,
    pub reason: String,
    pub starts_ms: u64,
    pub ends_ms: u64,
}

/// Checks a request for a silence at `now_ms`; the error says what is wrong and what to send.
pub fn check(new: &NewSilence, now_ms: u64) -> Result<Checked, String> {
    let hosts = new.hosts.clone().unwrap_or_else(|| "*".to_owned());
    glob_ok("hosts", &hosts)?;
    if let Some(apps) = &new.apps {
        glob_ok("apps", apps)?;
    }
    if let Some(kind) = &new.kind {
        if !KINDS.contains(&kind.as_str()) {
            return Err(format!(
                "kind must be one of {}; leave it out to silence every kind",
                KINDS.join(", ")
            ));
        }
    }
    let reason = new.reason.trim();
    if reason.is_empty() || reason.len() > MAX_TEXT || reason.chars().any(char::is_control) {
        return Err(format!(
            "reason is required: one line of at most {MAX_TEXT} bytes saying why (e.g. \"db-1 maintenance\")"
        ));
    }
    let max = u64::try_from(MAX_SILENCE.as_millis()).unwrap_or(u64::MAX);
    let ends_ms = match (&new.duration, new.until_unix_ms) {
        (Some(d), None) => {
            let d = humantime::parse_duration(d).map_err(|e| {
                format!(
                    "duration {d:?} is not a duration ({e}); send e.g. \"1h\", \"4h\" or \"1d\""
                )
            })?;
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            if ms == 0 || ms > max {
                return Err("duration must be more than 0 and at most 90 days".to_owned());
            }
            now_ms + ms
        }
        (None, Some(until)) => {
            if until <= now_ms || until - now_ms > max {
                return Err(
                    "until_unix_ms must be in the future and at most 90 days ahead".to_owned(),
                );
            }
            until
        }
        _ => return Err("give exactly one of duration (e.g. \"2h\") and until_unix_ms".to_owned()),
    };
    Ok(Checked {
        hosts,
        apps: new.apps.clone(),
        kind: new.kind.clone(),
        reason: reason.to_owned(),
        starts_ms: now_ms,
        ends_ms,
    })
}

/// A glob over names: the characters of a name, `*` and `?`.
fn glob_ok(field: &str, glob: &str) -> Result<(), String> {
    let ok = !glob.is_empty()
        && glob.len() <= MAX_GLOB
        && glob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '*' | '?'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} must be a glob of at most {MAX_GLOB} bytes over names (letters, digits, - _ . @, \
             with * for any run and ? for one character), e.g. \"db-*\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::rules::{AlertKind, Detail};
    use fleetdeck_proto::Severity;

    fn alert(host: &str, app: Option<&str>, aspect: Aspect) -> Alert {
        Alert {
            kind: AlertKind::Problem,
            host: host.into(),
            app: app.map(Into::into),
            state: "failed".into(),
            exit: None,
            message: String::new(),
            at_ms: 0,
            aspect,
            severity: Severity::Critical,
            detail: Detail::default(),
            healthy: false,
        }
    }

    fn silence(hosts: &str, apps: Option<&str>, kind: Option<&str>) -> Silence {
        Silence {
            id: 1,
            hosts: hosts.into(),
            apps: apps.map(Into::into),
            kind: kind.map(Into::into),
            reason: "r".into(),
            created_by: "k".into(),
            starts_unix_ms: 100,
            ends_unix_ms: 200,
            removed_unix_ms: None,
            removed_by: None,
        }
    }

    #[test]
    fn what_a_silence_covers() {
        let db = alert("db-1", Some("pg"), Aspect::State);
        let host = alert("db-1", None, Aspect::State);
        let check = alert("db-1", Some("pg"), Aspect::Check("health".into()));
        let all = silence("db-*", None, None);
        assert!(covers(&all, &db, 150) && covers(&all, &host, 150) && covers(&all, &check, 150));
        // Only while in force.
        assert!(!covers(&all, &db, 99) && !covers(&all, &db, 200));
        let mut removed = all.clone();
        removed.removed_unix_ms = Some(120);
        assert!(!covers(&removed, &db, 150));
        // Other hosts; apps narrow to apps (not the host itself); kinds narrow to an aspect.
        assert!(!covers(
            &all,
            &alert("web-1", Some("pg"), Aspect::State),
            150
        ));
        let pg = silence("*", Some("p?"), None);
        assert!(covers(&pg, &db, 150) && !covers(&pg, &host, 150));
        assert!(!covers(
            &pg,
            &alert("db-1", Some("redis"), Aspect::State),
            150
        ));
        let checks = silence("*", None, Some("check"));
        assert!(covers(&checks, &check, 150) && !covers(&checks, &db, 150));
    }

    #[test]
    fn requests_are_checked_and_say_what_to_send() {
        let ask = |f: &dyn Fn(&mut NewSilence)| {
            let mut n = NewSilence {
                reason: "maintenance".into(),
                duration: Some("1h".into()),
                ..NewSilence::default()
            };
            f(&mut n);
            check(&n, 1_000)
        };
        let ok = ask(&|_| {}).expect("a valid silence");
        assert_eq!(
            (ok.hosts.as_str(), ok.starts_ms, ok.ends_ms),
            ("*", 1_000, 3_601_000)
        );
        let until = ask(&|n| {
            n.duration = None;
            n.until_unix_ms = Some(5_000);
        })
        .expect("until");
        assert_eq!(until.ends_ms, 5_000);
        for (what, f, says) in [
            (
                "both",
                &(|n: &mut NewSilence| n.until_unix_ms = Some(5_000)) as &dyn Fn(&mut NewSilence),
                "exactly one",
            ),
            (
                "neither",
                &|n: &mut NewSilence| n.duration = None,
                "exactly one",
            ),
            (
                "past",
                &|n: &mut NewSilence| {
                    n.duration = None;
                    n.until_unix_ms = Some(500)
                },
                "future",
            ),
            (
                "too long",
                &|n: &mut NewSilence| n.duration = Some("100d".into()),
                "90 days",
            ),
            (
                "not a duration",
                &|n: &mut NewSilence| n.duration = Some("soon".into()),
                "not a duration",
            ),
            (
                "no reason",
                &|n: &mut NewSilence| n.reason = " ".into(),
                "reason is required",
            ),
            (
                "long reason",
                &|n: &mut NewSilence| n.reason = "x".repeat(513),
                "reason is required",
            ),
            (
                "bad glob",
                &|n: &mut NewSilence| n.hosts = Some("db/1".into()),
                "hosts must be a glob",
            ),
            (
                "long glob",
                &|n: &mut NewSilence| n.apps = Some("a".repeat(129)),
                "apps must be a glob",
            ),
            (
                "bad kind",
                &|n: &mut NewSilence| n.kind = Some("crash".into()),
                "kind must be one of",
            ),
        ] {
            let e = ask(f).expect_err(what);
            assert!(e.contains(says), "{what}: {e}");
        }
    }
}

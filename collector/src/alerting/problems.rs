//! The open problems: every condition that raised (or will raise, after its grace period or a
//! threshold's `for`) an alert and has not recovered. `GET /v1/fleet` lists them
//! (`Fleet::problems`) and counts them by severity (`FleetSummary::problems_*`).
//!
//! One map, several writers, each owning its keys:
//! - the alerting task, from every [`Transition`] it observes (host down, app down, not found,
//!   stopped unexpectedly, failing checks, sources down, clock skew): [`OpenProblems::observe`];
//! - the threshold evaluator, for each rule that fires or clears: [`OpenProblems::open`] and
//!   [`OpenProblems::close`] with a [`ProblemKey::threshold`] key.
//!
//! Readers take a copy with [`OpenProblems::list`]; the lock is never held across an await.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fleetdeck_proto::{Problem, Severity};

use super::rules::{Aspect, Health, Transition};

/// The map as the alerting task, the threshold evaluator and the API share it.
pub type SharedProblems = Arc<Mutex<OpenProblems>>;

/// A new, empty shared map.
pub fn shared() -> SharedProblems {
    Arc::new(Mutex::new(OpenProblems::default()))
}

/// Which problem: the host, the app (if any) and what within them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProblemKey {
    pub host: String,
    pub app: Option<String>,
    /// `state`, `check:NAME`, `source:NAME`, `clock`, `cert:NAME`, `cert-critical:NAME`, or
    /// `threshold:RULE:SUBJECT`.
    pub what: String,
}

impl ProblemKey {
    /// The key of a transition's aspect.
    pub fn aspect(host: &str, app: Option<&str>, aspect: &Aspect) -> Self {
        // Any other aspect (a newer kind) is keyed by its JSON.
        let what = match aspect {
            Aspect::Check(name) => format!("check:{name}"),
            Aspect::Source(name) => format!("source:{name}"),
            Aspect::Clock => "clock".to_owned(),
            Aspect::CertExpiring(name) => format!("cert:{name}"),
            Aspect::CertCritical(name) => format!("cert-critical:{name}"),
            other if *other == Aspect::State => "state".to_owned(),
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        Self {
            host: host.to_owned(),
            app: app.map(str::to_owned),
            what,
        }
    }

    /// The key of a threshold rule over one subject (a mount point, or empty for host-wide).
    pub fn threshold(host: &str, app: Option<&str>, rule: &str, subject: Option<&str>) -> Self {
        Self {
            host: host.to_owned(),
            app: app.map(str::to_owned),
            what: format!("threshold:{rule}:{}", subject.unwrap_or("")),
        }
    }
}

/// The open problems by key.
#[derive(Debug, Default, Clone)]
pub struct OpenProblems {
    open: BTreeMap<ProblemKey, Problem>,
}

impl OpenProblems {
    /// Opens (or updates) a problem. A problem already open keeps its first `since_unix_ms`.
    pub fn open(&mut self, key: ProblemKey, mut problem: Problem) {
        if let Some(old) = self.open.get(&key) {
            problem.since_unix_ms = old.since_unix_ms.min(problem.since_unix_ms);
        }
        self.open.insert(key, problem);
    }

    /// Closes a problem; answers whether it was open.
    pub fn close(&mut self, key: &ProblemKey) -> bool {
        self.open.remove(key).is_some()
    }

    /// Closes every problem of a host (one no longer in the config).
    pub fn forget_host(&mut self, host: &str) {
        self.open.retain(|k, _| k.host != host);
    }

    /// Closes every problem of one app (no longer watched).
    pub fn forget_app(&mut self, host: &str, app: Option<&str>) {
        self.open
            .retain(|k, _| !(k.host == host && k.app.as_deref() == app));
    }

    /// Follows one transition: a `Problem` opens its aspect's problem, anything else but a
    /// `Blip` (announced once, nothing stays open) closes it.
    pub fn observe(&mut self, t: &Transition) {
        let key = ProblemKey::aspect(&t.host, t.app.as_deref(), &t.aspect);
        match t.health {
            Health::Problem => {
                let problem = Problem {
                    kind: problem_kind(t),
                    rule: None,
                    severity: t.severity,
                    host: t.host.clone(),
                    app: t.app.clone(),
                    subject: match &t.aspect {
                        Aspect::Check(name)
                        | Aspect::Source(name)
                        | Aspect::CertExpiring(name)
                        | Aspect::CertCritical(name) => Some(name.clone()),
                        _ => None,
                    },
                    message: problem_message(t),
                    since_unix_ms: t.at_ms,
                };
                self.open(key, problem);
            }
            Health::Ok | Health::Other => {
                self.close(&key);
            }
            Health::Blip => {}
        }
    }

    /// Every open problem, critical first, then oldest first.
    pub fn list(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = self.open.values().cloned().collect();
        out.sort_by(|a, b| {
            let rank = |s: Severity| u8::from(s != Severity::Critical);
            rank(a.severity)
                .cmp(&rank(b.severity))
                .then(a.since_unix_ms.cmp(&b.since_unix_ms))
                .then_with(|| a.host.cmp(&b.host))
                .then_with(|| a.app.cmp(&b.app))
        });
        out
    }

    /// (warning, critical) counts.
    pub fn counts(&self) -> (u32, u32) {
        self.open
            .values()
            .fold((0, 0), |(w, c), p| match p.severity {
                Severity::Critical => (w, c + 1),
                _ => (w + 1, c),
            })
    }
}

/// The `Problem::kind` of a problem transition.
fn problem_kind(t: &Transition) -> String {
    match &t.aspect {
        Aspect::Check(_) => "check",
        Aspect::Source(_) => "source",
        Aspect::Clock => "clock-skew",
        Aspect::CertExpiring(_) | Aspect::CertCritical(_) => "cert-expiring",
        _ if t.app.is_none() => "host-down",
        _ => match t.state.as_str() {
            "not-found" => "not-found",
            "stopped" => "stopped",
            _ => "app-down",
        },
    }
    .to_owned()
}

/// One line: the subject, its state, and why.
fn problem_message(t: &Transition) -> String {
    let who = match &t.app {
        Some(app) => format!("{app} on {}", t.host),
        None => t.host.clone(),
    };
    let what = match &t.aspect {
        Aspect::Check(name) => format!("check {name} failing"),
        Aspect::Source(name) => format!("{name} source down"),
        Aspect::Clock => "clock skew".to_owned(),
        Aspect::CertExpiring(name) | Aspect::CertCritical(name) => {
            format!("certificate of check {name} expiring")
        }
        _ => t.state.clone(),
    };
    let why = t
        .detail
        .reason
        .clone()
        .or_else(|| t.detail.check.as_ref().and_then(|c| c.error.clone()))
        .or_else(|| {
            t.detail
                .context
                .as_ref()
                .and_then(|c| c.last_line().map(str::to_owned))
        });
    match why {
        Some(why) => format!("{who}: {what}: {why}"),
        None => format!("{who}: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::rules::Detail;

    fn t(app: Option<&str>, aspect: Aspect, health: Health, severity: Severity) -> Transition {
        Transition {
            host: "vm".into(),
            app: app.map(str::to_owned),
            state: "failed".into(),
            health,
            exit: None,
            at_ms: 1000,
            aspect,
            severity,
            detail: Detail::default(),
        }
    }

    #[test]
    fn problems_open_and_close_per_aspect_critical_first() {
        let mut p = OpenProblems::default();
        p.observe(&t(
            Some("web"),
            Aspect::Check("health".into()),
            Health::Problem,
            Severity::Warning,
        ));
        p.observe(&t(
            Some("web"),
            Aspect::State,
            Health::Problem,
            Severity::Critical,
        ));
        p.observe(&t(
            Some("web"),
            Aspect::State,
            Health::Blip,
            Severity::Warning,
        ));
        assert_eq!(p.counts(), (1, 1));
        let list = p.list();
        assert_eq!(list[0].kind, "app-down");
        assert_eq!(list[1].kind, "check");
        assert_eq!(list[1].subject.as_deref(), Some("health"));
        p.observe(&t(
            Some("web"),
            Aspect::State,
            Health::Ok,
            Severity::Critical,
        ));
        assert_eq!(p.counts(), (1, 0));
        let key = ProblemKey::threshold("vm", None, "disk-full", Some("/"));
        p.open(
            key.clone(),
            Problem {
                kind: "threshold".into(),
                rule: Some("disk-full".into()),
                severity: Severity::Critical,
                host: "vm".into(),
                app: None,
                subject: Some("/".into()),
                message: "vm: / 93 % used (limit 90 %)".into(),
                since_unix_ms: 5,
            },
        );
        assert_eq!(p.counts(), (1, 1));
        assert!(p.close(&key));
        assert!(!p.close(&key));
    }
}

//! Whether each status source (systemd's D-Bus, the Docker engine) answers, as the agent last
//! noticed it (a read, a watcher's failure or reconnection): a change is reported once.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct SourceTracker {
    /// Per source: `None` while it answers, the error while it does not.
    health: Mutex<HashMap<&'static str, Option<String>>>,
}

/// A source began or stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    pub source: &'static str,
    pub up: bool,
    pub error: Option<String>,
}

impl SourceTracker {
    /// Records what the agent just noticed of `source`; returns the change, if it is one. A
    /// source first seen answering is its starting point, not a change; first seen down is.
    pub fn note(&self, source: &'static str, error: Option<String>) -> Option<SourceChange> {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let before = health.insert(source, error.clone());
        let was_up = before.as_ref().is_none_or(Option::is_none);
        let up = error.is_none();
        (was_up != up).then_some(SourceChange { source, up, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_once() {
        let t = SourceTracker::default();
        assert_eq!(t.note("docker", None), None, "first sight, up");
        let down = t.note("docker", Some("refused".into())).expect("down");
        assert!(!down.up);
        assert_eq!(down.error.as_deref(), Some("refused"));
        assert_eq!(t.note("docker", Some("still refused".into())), None);
        assert!(t.note("docker", None).expect("up").up);
        assert_eq!(t.note("docker", None), None);
        assert!(
            !t.note("systemd", Some("no bus".into()))
                .expect("first sight, down")
                .up
        );
    }
}

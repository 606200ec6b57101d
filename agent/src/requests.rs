//! Changes asked for through the agent's action API: the transitions an action causes carry
//! `requested`, and an app stopped that way is `stopped_by_request` until it runs again.

use std::collections::HashMap;
use std::sync::Mutex;

use fleetdeck_proto::{AppAction, AppState};

#[derive(Debug, Default)]
pub struct Requests {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Actions under way, per app.
    in_flight: HashMap<String, usize>,
    /// Apps stopped through the API, with when (Unix ms) the stop was asked for.
    stopped: HashMap<String, u64>,
}

/// An action under way; it ends when this is dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    requests: &'a Requests,
    app: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut inner = self.requests.lock();
        if let Some(n) = inner.in_flight.get_mut(&self.app) {
            *n -= 1;
            if *n == 0 {
                inner.in_flight.remove(&self.app);
            }
        }
    }
}

impl Requests {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a single insert or remove.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `action` on `app` as under way (from before it is sent, so its first transition
    /// is already marked) until the returned guard drops.
    pub fn begin(&self, app: &str, action: AppAction, now_unix_ms: u64) -> InFlight<'_> {
        let mut inner = self.lock();
        *inner.in_flight.entry(app.to_owned()).or_default() += 1;
        match action {
            AppAction::Stop => {
                inner.stopped.insert(app.to_owned(), now_unix_ms);
            }
            AppAction::Start | AppAction::Restart | AppAction::Apply => {
                inner.stopped.remove(app);
            }
        }
        InFlight {
            requests: self,
            app: app.to_owned(),
        }
    }

    /// A stop that failed is not a stop by request.
    pub fn stop_failed(&self, app: &str) {
        self.lock().stopped.remove(app);
    }

    pub fn in_flight(&self, app: &str) -> bool {
        self.lock().in_flight.contains_key(app)
    }

    /// Whether `app`, now in `state` since `since_unix_ms`, was stopped through the API and has
    /// not run since (a run that began after the stop, however it was started, ends it).
    pub fn stopped_by_request(
        &self,
        app: &str,
        state: AppState,
        since_unix_ms: Option<u64>,
    ) -> bool {
        let mut inner = self.lock();
        let Some(&noted) = inner.stopped.get(app) else {
            return false;
        };
        let runs = matches!(
            state,
            AppState::Running | AppState::Starting | AppState::CrashLooping
        );
        if runs && since_unix_ms.is_some_and(|s| s > noted) {
            inner.stopped.remove(app);
            return false;
        }
        !runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_holds_until_a_later_run() {
        let r = Requests::default();
        {
            let _g = r.begin("web", AppAction::Stop, 100);
            assert!(r.in_flight("web"));
        }
        assert!(!r.in_flight("web"));
        assert!(r.stopped_by_request("web", AppState::Stopped, Some(101)));
        // Still running through its stop: not shown as stopped.
        assert!(!r.stopped_by_request("web", AppState::Running, Some(50)));
        assert!(r.stopped_by_request("web", AppState::Stopped, Some(101)));
        // Started from outside afterwards: over.
        assert!(!r.stopped_by_request("web", AppState::Running, Some(200)));
        assert!(!r.stopped_by_request("web", AppState::Stopped, Some(300)));
        drop(r.begin("web", AppAction::Stop, 400));
        drop(r.begin("web", AppAction::Start, 500));
        assert!(!r.stopped_by_request("web", AppState::Stopped, Some(450)));
    }
}

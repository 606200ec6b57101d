//! The command palette's entries and how a query picks them: every view, and every host and app
//! of every collector's fleet the window knows. Pure Rust, tested natively; the dialog is
//! `components::palette`.

use fleetdeck_proto::desktop::AppRef;

use crate::state::{Action, Route, UiState};

/// The most entries the palette lists at once.
pub const SHOWN: usize = 12;

/// One thing the palette can open.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What the list shows ("api on web-1").
    pub label: String,
    /// The kind, shown beside it ("app", "host", "view").
    pub kind: &'static str,
    /// The collector, when there are several (shown, and matched).
    pub detail: String,
    /// Lowercase text the query is matched against.
    haystack: String,
    pub action: Action,
}

impl Entry {
    fn new(label: String, kind: &'static str, detail: String, action: Action) -> Self {
        let haystack = format!("{label} {kind} {detail}").to_lowercase();
        Self {
            label,
            kind,
            detail,
            haystack,
            action,
        }
    }
}

/// The views, then each collector's hosts and apps (in the fleet's order).
pub fn entries(state: &UiState) -> Vec<Entry> {
    let view = |label: &str, route: Route| {
        Entry::new(
            label.to_owned(),
            "view",
            String::new(),
            Action::Navigate(route),
        )
    };
    let mut out = vec![
        view("Fleet", Route::Fleet),
        view("Logs", Route::Logs),
        view("Events", Route::Events),
        view("Alerts", Route::Alerts),
        view("Admin: keys and audit log", Route::Admin),
        view("Settings", Route::Settings),
    ];
    let many = state.fleets.len() > 1;
    for (collector, fleet) in &state.fleets {
        let detail = if many {
            collector.clone()
        } else {
            String::new()
        };
        for host in &fleet.hosts {
            let open = |app: Option<String>| {
                Action::OpenApp(AppRef {
                    collector: collector.clone(),
                    host: host.name.clone(),
                    app,
                })
            };
            out.push(Entry::new(
                host.name.clone(),
                "host",
                detail.clone(),
                open(None),
            ));
            for app in &host.apps {
                out.push(Entry::new(
                    format!("{} on {}", app.status.name, host.name),
                    "app",
                    detail.clone(),
                    open(Some(app.status.name.clone())),
                ));
            }
        }
    }
    out
}

/// The entries holding every word of the query (case-insensitive), those whose label starts
/// with the first word first; at most [`SHOWN`]. An empty query lists the first ones.
pub fn search<'a>(entries: &'a [Entry], query: &str) -> Vec<&'a Entry> {
    let query = query.to_lowercase();
    let words: Vec<&str> = query.split_whitespace().collect();
    let mut hits: Vec<(bool, usize, &Entry)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| words.iter().all(|w| e.haystack.contains(w)))
        .map(|(i, e)| {
            let prefix = words
                .first()
                .is_some_and(|w| e.label.to_lowercase().starts_with(w));
            (!prefix, i, e)
        })
        .collect();
    hits.sort_by_key(|&(not_prefix, i, _)| (not_prefix, i));
    hits.into_iter().take(SHOWN).map(|(_, _, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use fleetdeck_proto::AppState;

    use super::*;
    use crate::state::tests::{app, fleet};

    #[test]
    fn a_query_finds_apps_hosts_and_views_by_every_word() {
        let mut state = UiState::default();
        let running = |name| app(name, AppState::Running);
        state.fleets.insert(
            "prod".into(),
            Rc::new(fleet(&[("web-1", vec![running("api"), running("worker")])])),
        );
        state.fleets.insert(
            "staging".into(),
            Rc::new(fleet(&[("web-2", vec![running("api")])])),
        );
        let all = entries(&state);
        assert_eq!(all.len(), 6 + 2 + 3);

        let labels = |q: &str| -> Vec<String> {
            search(&all, q)
                .iter()
                .map(|e| format!("{} [{}]", e.label, e.detail))
                .collect()
        };
        assert_eq!(
            labels("api"),
            ["api on web-1 [prod]", "api on web-2 [staging]"]
        );
        assert_eq!(labels("API staging"), ["api on web-2 [staging]"]);
        assert_eq!(
            labels("web-1"),
            [
                "web-1 [prod]",
                "api on web-1 [prod]",
                "worker on web-1 [prod]"
            ]
        );
        assert_eq!(labels("alerts"), ["Alerts []"]);
        assert!(labels("nothing like this").is_empty());
        assert_eq!(search(&all, "").len(), all.len().min(SHOWN));

        let api = search(&all, "api staging")[0];
        assert_eq!(
            api.action,
            Action::OpenApp(AppRef {
                collector: "staging".into(),
                host: "web-2".into(),
                app: Some("api".into()),
            })
        );
    }
}

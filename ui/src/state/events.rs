//! The event view's list: one collector's events under one filter, newest first, each once.

use std::rc::Rc;

use fleetdeck_proto::desktop::EventFilter;
use fleetdeck_proto::FleetEvent;

/// Events kept in the event view (live ones push the oldest out).
pub const EVENTS_CAP: usize = 2_000;

/// The event view's list: newest first, for one collector and one filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsState {
    pub collector: Option<String>,
    /// The filter without paging (`before` is always `None` here).
    pub filter: EventFilter,
    /// Shared so that a reducer step (which copies the state) does not copy every event.
    pub events: Rc<Vec<FleetEvent>>,
    pub next_before: Option<i64>,
    pub loading: bool,
    /// At least one page arrived for this collector and filter.
    pub loaded: bool,
}

impl EventsState {
    /// Whether a live event belongs in the list under the current filter (the collector filters
    /// the same way: exact host and app, equal severity and kind).
    pub fn admits(&self, event: &FleetEvent) -> bool {
        let f = &self.filter;
        f.host.as_ref().is_none_or(|h| *h == event.host)
            && f.app.as_ref().is_none_or(|a| event.app.as_ref() == Some(a))
            && f.severity.is_none_or(|s| s == event.severity)
            && f.kind.is_none_or(|k| k == event.kind)
    }

    /// Adds events, keeping each id once and the list newest first.
    pub(super) fn merge(&mut self, events: Vec<FleetEvent>) {
        let list = Rc::make_mut(&mut self.events);
        for e in events {
            if !list.iter().any(|x| x.id == e.id) {
                list.push(e);
            }
        }
        list.sort_by_key(|e| std::cmp::Reverse(e.id));
        list.truncate(EVENTS_CAP);
    }
}

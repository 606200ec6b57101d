//! What a standby reads of the events its leader writes, for its live streams.
//!
//! An id is given when a row is inserted, not when it commits: the alerting task's threshold
//! events commit beside the writer's batches, so id 7 may become visible after id 8. Reading
//! `id > newest` alone would step over 7 for good. The tail remembers each id it stepped over
//! (a gap) and reads the gaps again until they fill or [`GAP_WAIT`] passes: an id still missing
//! then belonged to a transaction that rolled back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetdeck_proto::FleetEvent;

use super::query::{self, EventFilter};
use super::{Conn, StoreError};

/// How long an id stepped over is looked for: longer than any write transaction takes to commit.
pub const GAP_WAIT: Duration = Duration::from_secs(10);
/// New events read a tick at most.
const PAGE: usize = 1000;
/// Gaps remembered at most; past this many (a rolled-back batch of thousands), the oldest are
/// given up at once.
const MAX_GAPS: usize = 10_000;

#[derive(Debug)]
pub struct Tail {
    /// The newest id handed on.
    newest: i64,
    /// Ids stepped over, with when.
    gaps: BTreeMap<i64, Instant>,
}

impl Tail {
    /// A tail that hands on events after `newest` (the newest id when the standby started).
    pub fn after(newest: i64) -> Self {
        Self {
            newest,
            gaps: BTreeMap::new(),
        }
    }

    /// The events to hand on now: gaps that filled (oldest first), then new events in id order.
    pub fn read(&mut self, conn: &Conn, now: Instant) -> Result<Vec<FleetEvent>, StoreError> {
        let mut out = Vec::new();
        if let (Some((&low, _)), Some((&high, _))) =
            (self.gaps.first_key_value(), self.gaps.last_key_value())
        {
            let filter = EventFilter {
                after: Some(low - 1),
                before: Some(high + 1),
                limit: MAX_GAPS + PAGE,
                ..EventFilter::default()
            };
            for event in query::events(conn, &filter)?.events {
                if self.gaps.remove(&event.id).is_some() {
                    out.push(event);
                }
            }
        }
        let filter = EventFilter {
            after: Some(self.newest),
            limit: PAGE,
            ..EventFilter::default()
        };
        for event in query::events(conn, &filter)?.events {
            for missing in self.newest + 1..event.id {
                self.gaps.insert(missing, now);
            }
            self.newest = self.newest.max(event.id);
            out.push(event);
        }
        self.gaps
            .retain(|_, seen| now.saturating_duration_since(*seen) < GAP_WAIT);
        while self.gaps.len() > MAX_GAPS {
            self.gaps.pop_first();
        }
        Ok(out)
    }

    /// Ids stepped over and still looked for.
    pub fn gaps(&self) -> usize {
        self.gaps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::params;
    use crate::store::db::testing::postgres;

    fn insert(conn: &Conn, message: &str) {
        conn.execute(
            "INSERT INTO events (ts_ms, severity, source, kind, host, message)
             VALUES (1, 'info', 'collector', 'host-up', 'vm-1', ?1)",
            params![message],
        )
        .expect("insert an event");
    }

    fn messages(events: &[FleetEvent]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    /// Two sessions on one PostgreSQL schema: the first inserts an event and holds its
    /// transaction open while the second inserts and commits a later id.
    #[test]
    fn an_event_that_commits_after_a_later_id_is_still_handed_on_once() {
        let Some(schema) = postgres() else {
            eprintln!("skipped: needs the test bed's PostgreSQL (FLEETDECK_TEST_PG_URL)");
            return;
        };
        let slow = schema.session();
        let start = Instant::now();
        let mut tail = Tail::after(0);

        slow.execute_batch("BEGIN").expect("begin");
        insert(&slow, "committed late");
        insert(&schema.conn, "committed first");
        let first = tail.read(&schema.conn, start).expect("read");
        assert_eq!(messages(&first), ["committed first"]);
        assert_eq!(tail.gaps(), 1, "the open transaction's id is a gap");

        slow.execute_batch("COMMIT").expect("commit");
        let second = tail.read(&schema.conn, start).expect("read");
        assert_eq!(messages(&second), ["committed late"], "the gap filled");
        assert_eq!(tail.gaps(), 0);
        assert!(tail.read(&schema.conn, start).expect("read").is_empty());

        // An id whose transaction rolled back is looked for until GAP_WAIT, then given up.
        slow.execute_batch("BEGIN").expect("begin");
        insert(&slow, "rolled back");
        slow.execute_batch("ROLLBACK").expect("rollback");
        insert(&schema.conn, "after the rollback");
        let third = tail.read(&schema.conn, start).expect("read");
        assert_eq!(messages(&third), ["after the rollback"]);
        assert_eq!(tail.gaps(), 1);
        assert!(tail
            .read(&schema.conn, start + GAP_WAIT / 2)
            .expect("read")
            .is_empty());
        assert_eq!(tail.gaps(), 1, "still looked for within GAP_WAIT");
        assert!(tail
            .read(&schema.conn, start + GAP_WAIT)
            .expect("read")
            .is_empty());
        assert_eq!(tail.gaps(), 0, "given up after GAP_WAIT");
    }
}

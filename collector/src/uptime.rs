//! Uptime arithmetic: how long an app was up out of the time its state was known, over a window
//! of UTC days, from the state intervals the collector recorded. Pure functions of their inputs
//! (the caller passes `now`), so every case is a unit test with exact milliseconds.
//!
//! Rules, in the words of the collector issue ("time up / time known"):
//! - up is time in [`AppState::Running`]; known is time in any state but [`AppState::Unknown`]
//!   (while a host is down the collector records its apps as unknown, and that time must count
//!   neither for nor against the app);
//! - time no interval covers is unknown too;
//! - intervals may come in any order, reach outside the window (they are clipped), or overlap: where
//!   they overlap, the one that started later wins (it is the newer observation), and on equal
//!   starts the one later in the slice wins. Where the later one ends, the earlier one shows again
//!   if it still covers that time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use fleetdeck_proto::{DayUptime, Uptime};

use fleetdeck_proto::AppState;

/// Milliseconds in a UTC day (Unix time has no leap seconds, so every UTC day is this long).
pub const DAY_MS: u64 = 86_400_000;

/// One stretch of time an app spent in one state, as the collector recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub state: AppState,
    pub start_ms: u64,
    /// `None` while the interval is still open: it then ends at `now`.
    pub end_ms: Option<u64>,
}

/// The window of the last `days` UTC days: from UTC midnight of `today - days + 1` to `now_ms`,
/// so "30 days" is 29 whole days plus today so far, and the per-day series has `days` entries.
/// `days == 0` is treated as 1 (today only): an empty window answers no question anyone asks.
pub fn window(days: u32, now_ms: u64) -> (u64, u64) {
    let today = now_ms - now_ms % DAY_MS;
    let back = u64::from(days.max(1) - 1) * DAY_MS;
    (today.saturating_sub(back), now_ms)
}

/// Computes uptime over `[from_ms, to_ms)` from `intervals` (see the module doc for the rules);
/// open intervals end at `now_ms`. Intervals that end before they start are ignored. The per-day
/// series covers each UTC day overlapping the window (none when `from_ms >= to_ms`).
pub fn compute(intervals: &[Interval], from_ms: u64, to_ms: u64, now_ms: u64) -> Uptime {
    let first_day = from_ms - from_ms % DAY_MS;
    let mut days: Vec<DayUptime> = if from_ms < to_ms {
        (first_day..to_ms)
            .step_by(DAY_MS as usize)
            .map(|day_start_ms| DayUptime {
                day_start_ms,
                up_ms: 0,
                known_ms: 0,
                ratio: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (mut up_ms, mut known_ms) = (0, 0);
    let mut first_known_ms = None;

    for (state, mut start, end) in resolve(intervals, from_ms, to_ms, now_ms) {
        let known = state != AppState::Unknown;
        let up = state == AppState::Running;
        if !known {
            continue;
        }
        first_known_ms.get_or_insert(start);
        known_ms += end - start;
        if up {
            up_ms += end - start;
        }
        // Split the segment on UTC midnights into the per-day entries.
        while start < end {
            let index = ((start - first_day) / DAY_MS) as usize;
            let day_end = first_day + (index as u64 + 1) * DAY_MS;
            let chunk = end.min(day_end) - start;
            if let Some(day) = days.get_mut(index) {
                day.known_ms += chunk;
                if up {
                    day.up_ms += chunk;
                }
            }
            start += chunk;
        }
    }
    for day in &mut days {
        day.ratio = ratio(day.up_ms, day.known_ms);
    }
    Uptime {
        from_ms,
        to_ms,
        up_ms,
        known_ms,
        ratio: ratio(up_ms, known_ms),
        first_known_ms,
        days,
    }
}

fn ratio(up_ms: u64, known_ms: u64) -> Option<f64> {
    (known_ms > 0).then(|| up_ms as f64 / known_ms as f64)
}

/// Turns possibly overlapping intervals into disjoint `(state, start, end)` segments inside
/// `[from_ms, to_ms)`, in time order, applying "later start wins".
///
/// A sweep over the boundaries with a max-heap of the intervals covering the current point, keyed
/// by (original start, index): O(n log n), because a crash-looping app can leave thousands of
/// intervals in 30 days. Priority uses the original start, not the clipped one, so two intervals
/// that both began before the window still override each other in the order they began.
fn resolve(
    intervals: &[Interval],
    from_ms: u64,
    to_ms: u64,
    now_ms: u64,
) -> Vec<(AppState, u64, u64)> {
    struct Clipped {
        start: u64,
        end: u64,
        priority: (u64, usize),
        state: AppState,
    }
    let mut clipped: Vec<Clipped> = intervals
        .iter()
        .enumerate()
        .filter_map(|(index, iv)| {
            let start = iv.start_ms.max(from_ms);
            let end = iv.end_ms.unwrap_or(now_ms).min(to_ms);
            (start < end).then_some(Clipped {
                start,
                end,
                priority: (iv.start_ms, index),
                state: iv.state,
            })
        })
        .collect();
    clipped.sort_by_key(|c| c.start);

    let mut points: Vec<u64> = clipped.iter().flat_map(|c| [c.start, c.end]).collect();
    points.sort_unstable();
    points.dedup();

    let mut segments: Vec<(AppState, u64, u64)> = Vec::new();
    // Max-heap on priority; the `Reverse(end)` is only there to make the tuple `Ord`.
    let mut covering: BinaryHeap<((u64, usize), Reverse<u64>, usize)> = BinaryHeap::new();
    let mut next = 0;
    for pair in points.windows(2) {
        let (at, until) = (pair[0], pair[1]);
        while let Some(c) = clipped.get(next).filter(|c| c.start <= at) {
            covering.push((c.priority, Reverse(c.end), next));
            next += 1;
        }
        // Drop intervals that have ended; ones buried under a live top are dropped once they
        // surface, which is enough because only the top decides the state.
        while covering
            .peek()
            .is_some_and(|&(_, Reverse(end), _)| end <= at)
        {
            covering.pop();
        }
        if let Some(&(_, _, i)) = covering.peek() {
            let state = clipped[i].state;
            match segments.last_mut() {
                Some((last_state, _, last_end)) if *last_state == state && *last_end == at => {
                    *last_end = until;
                }
                _ => segments.push((state, at, until)),
            }
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppState::*;

    const H: u64 = 3_600_000;
    const D: u64 = DAY_MS;
    /// A UTC midnight: 2024-10-04T00:00:00Z.
    const D0: u64 = 20_000 * DAY_MS;

    fn iv(state: AppState, start_ms: u64, end_ms: u64) -> Interval {
        Interval {
            state,
            start_ms,
            end_ms: Some(end_ms),
        }
    }

    fn open(state: AppState, start_ms: u64) -> Interval {
        Interval {
            state,
            start_ms,
            end_ms: None,
        }
    }

    /// (up, known) totals and per-day pairs, the part of an `Uptime` the cases pin down.
    fn summary(u: &Uptime) -> ((u64, u64), Vec<(u64, u64)>) {
        (
            (u.up_ms, u.known_ms),
            u.days.iter().map(|d| (d.up_ms, d.known_ms)).collect(),
        )
    }

    #[test]
    fn window_cases() {
        for (days, now, want) in [
            (30, D0 + 12 * H, (D0 - 29 * D, D0 + 12 * H)),
            (1, D0 + 12 * H, (D0, D0 + 12 * H)),
            (0, D0 + 12 * H, (D0, D0 + 12 * H)),
            (7, D0 + D - 1, (D0 - 6 * D, D0 + D - 1)),
            (7, D0, (D0 - 6 * D, D0)),
            (2, 5, (0, 5)),
            (u32::MAX, D0, (0, D0)),
        ] {
            assert_eq!(window(days, now), want, "window({days}, {now})");
        }
    }

    #[test]
    fn thirty_days_with_one_hour_outage() {
        let (from, to) = (D0, D0 + 30 * D);
        let intervals = [
            iv(Running, D0 - D, D0 + 10 * D),
            iv(Failed, D0 + 10 * D, D0 + 10 * D + H),
            open(Running, D0 + 10 * D + H),
        ];
        let u = compute(&intervals, from, to, to);
        assert_eq!((u.up_ms, u.known_ms), (719 * H, 720 * H));
        let ratio = u.ratio.expect("something is known");
        assert!((ratio - (1.0 - 1.0 / 720.0)).abs() < 1e-12, "{ratio}");
        assert_eq!(u.days.len(), 30);
        for (i, day) in u.days.iter().enumerate() {
            assert_eq!(day.day_start_ms, D0 + i as u64 * D);
            let want_up = if i == 10 { 23 * H } else { 24 * H };
            assert_eq!((day.up_ms, day.known_ms), (want_up, 24 * H), "day {i}");
        }
        assert_eq!(u.days[10].ratio, Some(23.0 / 24.0));
        assert_eq!(u.days[9].ratio, Some(1.0));
    }

    #[test]
    fn the_window_function_feeds_compute() {
        // 30 days ending mid-day: 29 whole days and 12 hours of today, one 1-hour outage.
        let now = D0 + 12 * H;
        let (from, to) = window(30, now);
        let intervals = [
            open(Running, from + 3 * H),
            iv(Stopped, from + 2 * H, from + 3 * H),
            iv(Running, from - D, from + 2 * H),
        ];
        let u = compute(&intervals, from, to, now);
        assert_eq!((u.up_ms, u.known_ms), (29 * D + 11 * H, 29 * D + 12 * H));
        assert_eq!(u.days.len(), 30);
        assert_eq!((u.days[0].up_ms, u.days[0].known_ms), (23 * H, 24 * H));
        assert_eq!((u.days[29].up_ms, u.days[29].known_ms), (12 * H, 12 * H));
    }

    #[test]
    fn an_app_first_seen_inside_the_window_is_known_since_then() {
        let (from, to) = (D0, D0 + 30 * D);
        // Unknown for 29 days, then 3 hours: 2 h 54 min up, 6 min failed.
        let seen = to - 3 * H;
        let intervals = [
            iv(Running, seen, seen + H),
            iv(Failed, seen + H, seen + H + 6 * 60_000),
            open(Running, seen + H + 6 * 60_000),
        ];
        let u = compute(&intervals, from, to, to);
        assert_eq!(u.first_known_ms, Some(seen));
        assert_eq!(u.known_ms, 3 * H);
        let ratio = u.ratio.expect("known");
        assert!((ratio - 174.0 / 180.0).abs() < 1e-12, "{ratio}");
        // Known before the window: known from its start. Nothing known: none.
        let long = [open(Running, from - D)];
        assert_eq!(compute(&long, from, to, to).first_known_ms, Some(from));
        assert_eq!(compute(&[], from, to, to).first_known_ms, None);
        let unknown_first = [iv(Unknown, from, seen), open(Stopped, seen)];
        assert_eq!(
            compute(&unknown_first, from, to, to).first_known_ms,
            Some(seen)
        );
    }

    /// One line per case: intervals, window, now, then (up, known) and per-day (up, known).
    #[test]
    fn crafted_cases() {
        type Case = (
            &'static str,
            Vec<Interval>,
            (u64, u64, u64),
            (u64, u64),
            Vec<(u64, u64)>,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("empty", vec![], (D0, D0 + D, D0 + D), (0, 0), vec![(0, 0)]),
            ("all up", vec![iv(Running, D0, D0 + D)], (D0, D0 + D, D0 + D), (D, D), vec![(D, D)]),
            ("gap is unknown", vec![iv(Running, D0, D0 + 2 * H), iv(Running, D0 + 3 * H, D0 + 4 * H)], (D0, D0 + 5 * H, D0 + 5 * H), (3 * H, 3 * H), vec![(3 * H, 3 * H)]),
            ("unknown state counts neither way", vec![iv(Running, D0, D0 + H), iv(Unknown, D0 + H, D0 + 2 * H), iv(Stopped, D0 + 2 * H, D0 + 3 * H)], (D0, D0 + 3 * H, D0 + 3 * H), (H, 2 * H), vec![(H, 2 * H)]),
            ("every known state but running is down", vec![iv(Starting, D0, D0 + H), iv(Stopping, D0 + H, D0 + 2 * H), iv(Failed, D0 + 2 * H, D0 + 3 * H), iv(CrashLooping, D0 + 3 * H, D0 + 4 * H), iv(NotFound, D0 + 4 * H, D0 + 5 * H), iv(Stopped, D0 + 5 * H, D0 + 6 * H)], (D0, D0 + 6 * H, D0 + 6 * H), (0, 6 * H), vec![(0, 6 * H)]),
            ("open interval ends at now", vec![open(Running, D0 + H)], (D0, D0 + 5 * H, D0 + 5 * H), (4 * H, 4 * H), vec![(4 * H, 4 * H)]),
            ("open interval, window past now", vec![open(Running, D0 + H)], (D0, D0 + D, D0 + 5 * H), (4 * H, 4 * H), vec![(4 * H, 4 * H)]),
            ("open interval starting after now", vec![open(Running, D0 + 6 * H)], (D0, D0 + D, D0 + 5 * H), (0, 0), vec![(0, 0)]),
            ("open interval, now past the window", vec![open(Stopped, D0 + 20 * H)], (D0, D0 + D, D0 + 2 * D), (0, 4 * H), vec![(0, 4 * H)]),
            ("split at midnight", vec![iv(Running, D0 + 22 * H, D0 + 26 * H)], (D0, D0 + 2 * D, D0 + 2 * D), (4 * H, 4 * H), vec![(2 * H, 2 * H), (2 * H, 2 * H)]),
            ("ends exactly at midnight", vec![iv(Running, D0 + 23 * H, D0 + D)], (D0, D0 + 2 * D, D0 + 2 * D), (H, H), vec![(H, H), (0, 0)]),
            ("starts exactly at midnight", vec![iv(Running, D0 + D, D0 + D + H)], (D0, D0 + 2 * D, D0 + 2 * D), (H, H), vec![(0, 0), (H, H)]),
            ("spans three days", vec![iv(Stopped, D0 + 12 * H, D0 + 2 * D + 12 * H)], (D0, D0 + 3 * D, D0 + 3 * D), (0, 2 * D), vec![(0, 12 * H), (0, D), (0, 12 * H)]),
            ("clipped both sides", vec![iv(Running, D0 - 5 * D, D0 + 9 * D)], (D0, D0 + D + H, D0 + 9 * D), (D + H, D + H), vec![(D, D), (H, H)]),
            ("entirely before the window", vec![iv(Running, D0 - 2 * D, D0)], (D0, D0 + D, D0 + D), (0, 0), vec![(0, 0)]),
            ("entirely after the window", vec![iv(Running, D0 + D, D0 + 2 * D)], (D0, D0 + D, D0 + 2 * D), (0, 0), vec![(0, 0)]),
            ("partial first and last days", vec![iv(Running, D0, D0 + 3 * D)], (D0 + 6 * H, D0 + D + 6 * H, D0 + 3 * D), (D, D), vec![(18 * H, 18 * H), (6 * H, 6 * H)]),
            ("later start overrides, earlier resumes", vec![iv(Running, D0, D0 + 10 * H), iv(Stopped, D0 + 2 * H, D0 + 3 * H)], (D0, D0 + 10 * H, D0 + 10 * H), (9 * H, 10 * H), vec![(9 * H, 10 * H)]),
            ("later start overrides past the earlier end", vec![iv(Running, D0, D0 + 4 * H), iv(Failed, D0 + 3 * H, D0 + 6 * H)], (D0, D0 + 6 * H, D0 + 6 * H), (3 * H, 6 * H), vec![(3 * H, 6 * H)]),
            ("later unknown overrides known", vec![iv(Running, D0, D0 + 4 * H), iv(Unknown, D0 + H, D0 + 2 * H)], (D0, D0 + 4 * H, D0 + 4 * H), (3 * H, 3 * H), vec![(3 * H, 3 * H)]),
            ("equal starts: later in the slice wins", vec![iv(Running, D0, D0 + 2 * H), iv(Stopped, D0, D0 + H)], (D0, D0 + 2 * H, D0 + 2 * H), (H, 2 * H), vec![(H, 2 * H)]),
            ("priority by original start, before clipping", vec![iv(Running, D0 - 2 * H, D0 + 5 * H), iv(Stopped, D0 - H, D0 + H)], (D0, D0 + 5 * H, D0 + 5 * H), (4 * H, 5 * H), vec![(4 * H, 5 * H)]),
            ("nested three deep", vec![iv(Running, D0, D0 + 10 * H), iv(Stopped, D0 + H, D0 + 9 * H), iv(Running, D0 + 2 * H, D0 + 3 * H)], (D0, D0 + 10 * H, D0 + 10 * H), (3 * H, 10 * H), vec![(3 * H, 10 * H)]),
            ("end before start is ignored", vec![iv(Running, D0 + 2 * H, D0 + H)], (D0, D0 + D, D0 + D), (0, 0), vec![(0, 0)]),
            ("zero-length interval", vec![iv(Running, D0 + H, D0 + H)], (D0, D0 + D, D0 + D), (0, 0), vec![(0, 0)]),
            ("empty window", vec![iv(Running, D0, D0 + D)], (D0 + H, D0 + H, D0 + D), (0, 0), vec![]),
            ("inverted window", vec![iv(Running, D0, D0 + D)], (D0 + 2 * H, D0 + H, D0 + D), (0, 0), vec![]),
            ("millisecond precision", vec![iv(Running, D0 + 1, D0 + 1_000), iv(Stopped, D0 + 1_000, D0 + 1_007)], (D0, D0 + D, D0 + D), (999, 1_006), vec![(999, 1_006)]),
        ];
        for (name, intervals, (from, to, now), totals, days) in cases {
            let u = compute(&intervals, from, to, now);
            assert_eq!(summary(&u), (totals, days), "{name}");
            assert_eq!((u.from_ms, u.to_ms), (from, to), "{name}");
            assert_eq!(u.ratio, ratio(totals.0, totals.1), "{name}");
            // Order must not matter, except between equal starts (the documented tie-break).
            if name != "equal starts: later in the slice wins" {
                let reversed: Vec<Interval> = intervals.iter().rev().copied().collect();
                assert_eq!(
                    summary(&compute(&reversed, from, to, now)),
                    summary(&u),
                    "{name}, reversed"
                );
            }
        }
    }

    #[test]
    fn nothing_known_is_none_not_zero() {
        let u = compute(&[iv(Unknown, D0, D0 + D)], D0, D0 + D, D0 + D);
        assert_eq!((u.up_ms, u.known_ms, u.ratio), (0, 0, None));
        assert_eq!(u.days[0].ratio, None);
        let down = compute(&[iv(Failed, D0, D0 + D)], D0, D0 + D, D0 + D);
        assert_eq!(down.ratio, Some(0.0));
    }

    #[test]
    fn day_starts_are_utc_midnights() {
        let u = compute(&[], D0 + 5 * H, D0 + 3 * D + H, D0 + 3 * D + H);
        let starts: Vec<u64> = u.days.iter().map(|d| d.day_start_ms).collect();
        assert_eq!(starts, vec![D0, D0 + D, D0 + 2 * D, D0 + 3 * D]);
    }

    #[test]
    fn serializes_with_null_ratio() {
        let u = compute(&[iv(Running, D0, D0 + H)], D0, D0 + 2 * H, D0 + 2 * H);
        let json = serde_json::to_value(&u).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({
                "from_ms": D0, "to_ms": D0 + 2 * H, "up_ms": H, "known_ms": H, "ratio": 1.0,
                "first_known_ms": D0,
                "days": [{"day_start_ms": D0, "up_ms": H, "known_ms": H, "ratio": 1.0}],
            })
        );
        let empty = serde_json::to_value(compute(&[], D0, D0 + H, D0 + H)).expect("serializable");
        assert_eq!(empty["ratio"], serde_json::Value::Null);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn state() -> impl Strategy<Value = AppState> {
            prop_oneof![Just(Running), Just(Stopped), Just(Failed), Just(Unknown)]
        }

        proptest! {
            /// The totals equal the sum of the days, up never exceeds known, known never exceeds
            /// the window, and the answer does not depend on the order of intervals with distinct
            /// starts.
            #[test]
            fn totals_are_consistent(
                raw in prop::collection::vec((state(), 0..4 * D, 0..2 * D, any::<bool>()), 0..12),
                from in 0..2 * D,
                len in 0..3 * D,
                now in 0..5 * D,
            ) {
                let intervals: Vec<Interval> = raw
                    .iter()
                    .enumerate()
                    // Distinct starts, so reordering cannot change a tie-break.
                    .map(|(i, &(state, start, len, is_open))| {
                        let start_ms = D0 + start - start % 16 + i as u64;
                        Interval { state, start_ms, end_ms: (!is_open).then_some(start_ms + len) }
                    })
                    .collect();
                let (from, to, now) = (D0 + from, D0 + from + len, D0 + now);
                let u = compute(&intervals, from, to, now);
                prop_assert!(u.up_ms <= u.known_ms);
                prop_assert!(u.known_ms <= to - from);
                prop_assert_eq!(u.days.iter().map(|d| d.up_ms).sum::<u64>(), u.up_ms);
                prop_assert_eq!(u.days.iter().map(|d| d.known_ms).sum::<u64>(), u.known_ms);
                for d in &u.days {
                    prop_assert!(d.known_ms <= D);
                }
                let reversed: Vec<Interval> = intervals.iter().rev().copied().collect();
                prop_assert_eq!(summary(&compute(&reversed, from, to, now)), summary(&u));
            }
        }
    }
}

//! `disk.hours_to_full`: a least-squares line through a filesystem's used bytes over a window
//! (like Prometheus's `predict_linear`), kept in a small bounded window per filesystem.

use std::collections::VecDeque;

/// Points kept per filesystem at most: one per `window / POINTS`, so memory per filesystem is
/// fixed (about 2 KiB) whatever the poll interval.
const POINTS: u64 = 120;
/// The fit needs this many points...
const MIN_POINTS: usize = 5;
/// ...spanning at least `window / MIN_SPAN_DIVISOR` (30 min of the default 6 h).
const MIN_SPAN_DIVISOR: u64 = 12;

/// Used bytes over the recent past of one filesystem.
#[derive(Debug, Clone, Default)]
pub struct FillWindow {
    /// (taken_unix_ms, used_bytes), oldest first.
    points: VecDeque<(u64, f64)>,
}

impl FillWindow {
    /// Adds a sample (ignored when closer than the spacing to the last kept one, or older) and
    /// drops points older than `window_ms`.
    pub fn push(&mut self, at_ms: u64, used_bytes: u64, window_ms: u64) {
        let spacing = window_ms / POINTS;
        if let Some(&(last, _)) = self.points.back() {
            if at_ms < last.saturating_add(spacing.max(1)) {
                return;
            }
        }
        self.points.push_back((at_ms, used_bytes as f64));
        let oldest = at_ms.saturating_sub(window_ms);
        while self.points.front().is_some_and(|&(t, _)| t < oldest) {
            self.points.pop_front();
        }
    }

    /// Hours until used reaches `total_bytes` at the fitted rate, from the last point: `None`
    /// when there is too little data, infinity when the filesystem is not filling.
    pub fn hours_to_full(&self, total_bytes: u64, window_ms: u64) -> Option<f64> {
        let (&(first, _), &(last, _)) = (self.points.front()?, self.points.back()?);
        if self.points.len() < MIN_POINTS || last - first < window_ms / MIN_SPAN_DIVISOR {
            return None;
        }
        let n = self.points.len() as f64;
        let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
        for &(t, y) in &self.points {
            // Hours since the first point: small numbers keep the sums exact enough.
            let x = (t - first) as f64 / 3_600_000.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        let denominator = n * sxx - sx * sx;
        if denominator <= 0.0 {
            return None;
        }
        let slope = (n * sxy - sx * sy) / denominator; // bytes per hour
        if slope <= 0.0 || !slope.is_finite() {
            return Some(f64::INFINITY);
        }
        let intercept = (sy - slope * sx) / n;
        let x_last = (last - first) as f64 / 3_600_000.0;
        let now = intercept + slope * x_last;
        Some(((total_bytes as f64 - now) / slope).max(0.0))
    }

    pub fn last_ms(&self) -> Option<u64> {
        self.points.back().map(|p| p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn a_steady_fill_predicts_the_time_left() {
        let mut w = FillWindow::default();
        // 1 GB per hour into 100 GB, at 50 GB after 6 h: 50 h left.
        for minute in 0..=360u64 {
            w.push(
                minute * 60_000,
                44_000_000_000 + minute * 1_000_000_000 / 60,
                6 * H,
            );
        }
        let h = w
            .hours_to_full(100_000_000_000, 6 * H)
            .expect("enough data");
        assert!((h - 50.0).abs() < 0.01, "{h}");
        assert!(w.points.len() <= POINTS as usize + 1, "{}", w.points.len());
    }

    #[test]
    fn needs_span_and_points_and_a_rising_line() {
        let mut w = FillWindow::default();
        for minute in 0..20u64 {
            w.push(minute * 60_000, 1000 + minute, 6 * H);
        }
        assert_eq!(w.hours_to_full(2000, 6 * H), None, "20 min < 30 min");
        let mut flat = FillWindow::default();
        for minute in 0..60u64 {
            flat.push(minute * 60_000, 1000 - minute, 6 * H);
        }
        assert_eq!(flat.hours_to_full(2000, 6 * H), Some(f64::INFINITY));
    }
}

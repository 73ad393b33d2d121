//! One metric's raw samples of the last hour and its three sliding windows.
//!
//! Samples sit in a `VecDeque` sorted by time (late ones are inserted in place, usually at
//! the back). Each window keeps the index of its first sample and running sums of the
//! samples inside it, so the mean and standard deviation a z-score needs cost O(1) per
//! sample. The sums are of `value − shift` (the first value seen) to keep the variance
//! formula free of cancellation for large, slowly varying values, and they are recomputed
//! exactly by [`Series::recompute_sums`] once a minute so drift cannot accumulate. Reported
//! statistics never use the sums (see `stats`).

use std::collections::VecDeque;

use protocol::metrics::{Statistics, Window};

use crate::stats::statistics;

/// A raw sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub(crate) ts_ms: u64,
    pub(crate) value: f64,
}

/// Index of a window in [`Window::ALL`] order.
fn slot(window: Window) -> usize {
    match window {
        Window::OneMinute => 0,
        Window::FiveMinutes => 1,
        Window::OneHour => 2,
    }
}

/// The longest window: samples older than it are evicted.
const RETAINED: usize = 2;

#[derive(Debug, Clone)]
struct Running {
    length_ms: u64,
    /// Index of the window's first sample in `points`.
    start: usize,
    count: u64,
    sum: f64,
    sum_sq: f64,
}

impl Running {
    fn add(&mut self, delta: f64) {
        self.count += 1;
        self.sum += delta;
        self.sum_sq += delta * delta;
    }

    fn remove(&mut self, delta: f64) {
        self.count -= 1;
        if self.count == 0 {
            self.sum = 0.0;
            self.sum_sq = 0.0;
        } else {
            self.sum -= delta;
            self.sum_sq -= delta * delta;
        }
    }
}

/// The last hour of one metric.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    points: VecDeque<Point>,
    windows: [Running; 3],
    shift: f64,
    now_ms: u64,
}

impl Series {
    pub(crate) fn new(now_ms: u64) -> Self {
        let running = |window: Window| Running {
            length_ms: window.duration_ms(),
            start: 0,
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
        };
        Self {
            points: VecDeque::new(),
            windows: Window::ALL.map(running),
            shift: 0.0,
            now_ms,
        }
    }

    /// Slides the windows to `now_ms` (never backwards) and evicts samples older than an
    /// hour; returns whether any sample left any window.
    pub(crate) fn advance(&mut self, now_ms: u64) -> bool {
        self.now_ms = self.now_ms.max(now_ms);
        let mut changed = false;
        for running in &mut self.windows {
            let cutoff = self.now_ms.saturating_sub(running.length_ms);
            while let Some(point) = self.points.get(running.start) {
                if point.ts_ms > cutoff {
                    break;
                }
                running.remove(point.value - self.shift);
                running.start += 1;
                changed = true;
            }
        }
        let evicted = self.windows[RETAINED].start;
        if evicted > 0 {
            self.points.drain(..evicted);
            for running in &mut self.windows {
                running.start -= evicted;
            }
        }
        changed
    }

    /// Inserts a sample at its place in time; returns `false` (and changes nothing) for a
    /// sample an hour old or older.
    pub(crate) fn insert(&mut self, point: Point, now_ms: u64) -> bool {
        self.advance(now_ms);
        if point.ts_ms <= self.now_ms.saturating_sub(Window::OneHour.duration_ms()) {
            return false;
        }
        if self.points.is_empty() {
            self.shift = point.value;
        }
        let position = match self.points.back() {
            Some(last) if last.ts_ms > point.ts_ms => self
                .points
                .partition_point(|existing| existing.ts_ms <= point.ts_ms),
            _ => self.points.len(),
        };
        self.points.insert(position, point);
        let delta = point.value - self.shift;
        for running in &mut self.windows {
            if point.ts_ms > self.now_ms.saturating_sub(running.length_ms) {
                running.add(delta);
            } else {
                // Only possible when inserted at or before the window's first sample.
                running.start += 1;
            }
        }
        true
    }

    /// Returns `(count, mean, population stddev)` of `window` from the running sums.
    pub(crate) fn moments(&self, window: Window) -> (u64, f64, f64) {
        let running = &self.windows[slot(window)];
        if running.count == 0 {
            return (0, 0.0, 0.0);
        }
        let n = running.count as f64;
        let mean_delta = running.sum / n;
        let variance = (running.sum_sq / n - mean_delta * mean_delta).max(0.0);
        (running.count, self.shift + mean_delta, variance.sqrt())
    }

    /// Exact statistics of `window`'s samples.
    pub(crate) fn statistics(&self, window: Window) -> Statistics {
        let start = self.windows[slot(window)].start;
        let mut values: Vec<f64> = self
            .points
            .range(start..)
            .map(|point| point.value)
            .collect();
        statistics(&mut values)
    }

    /// Samples with a time in `[from_ms, until_ms)`, oldest first.
    pub(crate) fn points_between(
        &self,
        from_ms: u64,
        until_ms: u64,
    ) -> impl Iterator<Item = Point> + '_ {
        let first = self.points.partition_point(|point| point.ts_ms < from_ms);
        self.points
            .range(first..)
            .take_while(move |point| point.ts_ms < until_ms)
            .copied()
    }

    /// Reports whether exactly this sample (time and value bits) is held.
    pub(crate) fn contains(&self, point: Point) -> bool {
        self.points_between(point.ts_ms, point.ts_ms + 1)
            .any(|held| held.value.to_bits() == point.value.to_bits())
    }

    /// The oldest sample.
    #[cfg(test)]
    pub(crate) fn oldest(&self) -> Option<Point> {
        self.points.front().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// Recomputes the running sums exactly from the samples.
    pub(crate) fn recompute_sums(&mut self) {
        if let Some(first) = self.points.front() {
            self.shift = first.value;
        }
        for running in &mut self.windows {
            running.count = 0;
            running.sum = 0.0;
            running.sum_sq = 0.0;
            for point in self.points.range(running.start..) {
                running.add(point.value - self.shift);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn point(ts_ms: u64, value: f64) -> Point {
        Point { ts_ms, value }
    }

    #[test]
    fn windows_hold_the_samples_of_their_span_and_slide_with_time() {
        let mut series = Series::new(T0);
        // One sample a minute for 70 minutes, inserted as time passes.
        for minute in 0..70u64 {
            let now = T0 + minute * 60_000;
            assert!(series.insert(point(now, minute as f64), now));
        }
        let now = T0 + 69 * 60_000;
        assert_eq!(series.statistics(Window::OneMinute).count, 1);
        assert_eq!(series.statistics(Window::FiveMinutes).count, 5);
        assert_eq!(series.statistics(Window::OneHour).count, 60);
        assert_eq!(series.len(), 60, "older samples are evicted");
        assert_eq!(series.oldest().map(|p| p.value), Some(10.0));
        let (count, mean, _) = series.moments(Window::FiveMinutes);
        assert_eq!((count, mean), (5, 67.0));
        // Five minutes later with no new samples, the short windows are empty.
        assert!(series.advance(now + 5 * 60_000));
        assert_eq!(series.moments(Window::FiveMinutes).0, 0);
        assert_eq!(series.statistics(Window::OneHour).count, 55);
    }

    #[test]
    fn late_samples_are_placed_in_time_and_counted_in_their_windows() {
        let mut series = Series::new(T0);
        let now = T0 + 600_000;
        series.insert(point(now - 1_000, 5.0), now);
        series.insert(point(now - 400_000, 1.0), now); // outside 5m, inside 1h
        series.insert(point(now - 30_000, 3.0), now); // inside 1m
        series.insert(point(now - 3_700_000, 9.0), now); // too old
        assert!(!series.insert(point(now - 3_600_000, 9.0), now));
        let values: Vec<f64> = series
            .points_between(0, u64::MAX)
            .map(|p| p.value)
            .collect();
        assert_eq!(values, vec![1.0, 3.0, 5.0]);
        assert_eq!(series.moments(Window::OneMinute).0, 2);
        assert_eq!(series.moments(Window::FiveMinutes).0, 2);
        assert_eq!(series.moments(Window::OneHour).0, 3);
        assert!(series.contains(point(now - 30_000, 3.0)));
        assert!(!series.contains(point(now - 30_000, 3.5)));
    }

    #[test]
    fn running_moments_stay_exact_for_large_values() {
        let mut series = Series::new(T0);
        let values = [1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0, 1e9 + 4.0];
        for (i, value) in values.iter().enumerate() {
            series.insert(point(T0 + i as u64, *value), T0 + 10);
        }
        let (count, mean, stddev) = series.moments(Window::OneMinute);
        assert_eq!(count, 4);
        assert!((mean - (1e9 + 2.5)).abs() < 1e-6);
        assert!((stddev - 1.25f64.sqrt()).abs() < 1e-9, "{stddev}");
        series.recompute_sums();
        let (_, mean_again, stddev_again) = series.moments(Window::OneMinute);
        assert!((mean_again - mean).abs() < 1e-6 && (stddev_again - stddev).abs() < 1e-9);
    }
}

//! A fixed-bucket log-linear histogram of nanosecond values.
//!
//! Values below 128 have a bucket each; above that every power of two is split into 64 equal
//! buckets, so a bucket is at most 1/64 (1.6 %) of its value wide. The layout is fixed, so
//! histograms from several processes merge exactly by adding counts. Recording is one relaxed
//! atomic add, so every connection task records into one shared histogram.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two (2^6).
const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Largest recorded value, 2^40 ns (about 18 minutes); larger values are clamped.
const MAX_VALUE: u64 = (1 << 40) - 1;
/// Buckets needed to cover `MAX_VALUE`.
const BUCKETS: usize = bucket_index(MAX_VALUE) + 1;

const fn bucket_index(value: u64) -> usize {
    if value < 2 * SUB_BUCKETS {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BUCKET_BITS;
    let top = value >> shift;
    (SUB_BUCKETS * shift as u64 + top) as usize
}

/// Returns the highest value that falls into bucket `index`.
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return index;
    }
    let shift = index / SUB_BUCKETS - 1;
    let top = index % SUB_BUCKETS + SUB_BUCKETS;
    ((top + 1) << shift) - 1
}

/// A histogram many tasks record into.
#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Creates an empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one value in nanoseconds.
    pub fn record(&self, value_ns: u64) {
        let value = value_ns.min(MAX_VALUE);
        self.counts[bucket_index(value)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Returns the counts recorded so far.
    pub fn snapshot(&self) -> HistogramData {
        let buckets: Vec<(u32, u64)> = self
            .counts
            .iter()
            .enumerate()
            .filter_map(|(index, count)| {
                let count = count.load(Ordering::Relaxed);
                (count > 0).then_some((index as u32, count))
            })
            .collect();
        HistogramData {
            count: buckets.iter().map(|(_, count)| count).sum(),
            buckets,
            max_ns: self.max.load(Ordering::Relaxed),
            sum_ns: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts as plain data: sparse `(bucket, count)` pairs in bucket order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramData {
    /// Non-empty buckets, ascending.
    pub buckets: Vec<(u32, u64)>,
    /// Values recorded.
    pub count: u64,
    /// Largest value recorded.
    pub max_ns: u64,
    /// Sum of the values (saturating), for the mean.
    pub sum_ns: u64,
}

impl HistogramData {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &HistogramData) {
        let mut merged = Vec::with_capacity(self.buckets.len().max(other.buckets.len()));
        let (mut mine, mut theirs) = (self.buckets.iter().peekable(), other.buckets.iter());
        let mut next_theirs = theirs.next();
        loop {
            match (mine.peek(), next_theirs) {
                (Some(&&(a, count_a)), Some(&(b, count_b))) if a == b => {
                    merged.push((a, count_a + count_b));
                    mine.next();
                    next_theirs = theirs.next();
                }
                (Some(&&(a, count_a)), Some(&(b, _))) if a < b => {
                    merged.push((a, count_a));
                    mine.next();
                }
                (_, Some(&pair)) => {
                    merged.push(pair);
                    next_theirs = theirs.next();
                }
                (Some(&&pair), None) => {
                    merged.push(pair);
                    mine.next();
                }
                (None, None) => break,
            }
        }
        self.buckets = merged;
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// Returns the value at quantile `q` (0..=1): the top of the bucket holding it, capped at
    /// the maximum, so it overstates by at most one bucket width. 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(index, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return bucket_high(index as usize).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// Returns the mean in nanoseconds; 0 when empty.
    pub fn mean_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut previous_high = None;
        for index in 0..BUCKETS {
            let high = bucket_high(index);
            if let Some(previous) = previous_high {
                assert_eq!(
                    bucket_index(previous + 1),
                    index,
                    "bucket {index} starts after the last"
                );
            }
            assert_eq!(bucket_index(high), index);
            previous_high = Some(high);
        }
        for value in [1_000u64, 123_456, 9_999_999_999] {
            let high = bucket_high(bucket_index(value));
            assert!(high >= value && (high - value) as f64 <= value as f64 / 64.0);
        }
    }

    #[test]
    fn quantiles_follow_the_recorded_values() {
        let histogram = Histogram::new();
        for value in 1..=1000u64 {
            histogram.record(value * 1000);
        }
        let data = histogram.snapshot();
        assert_eq!(data.count, 1000);
        let p50 = data.quantile_ns(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "p50 {p50}");
        assert_eq!(data.quantile_ns(1.0), 1_000_000);
        assert!((data.mean_ns() - 500_500.0).abs() < 1.0);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (a, b, all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for value in 0..5000u64 {
            let value = value * value * 37;
            if value % 3 == 0 { &a } else { &b }.record(value);
            all.record(value);
        }
        let mut merged = a.snapshot();
        merged.merge(&b.snapshot());
        assert_eq!(merged, all.snapshot());
    }
}

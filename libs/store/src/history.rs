//! Metric history for the aggregator, membership of worker groups, and once-per-period
//! claims.
//!
//! # History layout
//!
//! Raw samples are kept for one hour and one-minute roll-ups for seven days, in fixed binary
//! records (see `codec`), so seven days of one metric fit well under 500 KB. With the default
//! key prefix `sb`:
//!
//! | key | type | content | expires |
//! | --- | --- | --- | --- |
//! | `sb:metric:<name>:raw:<minute>` | string | 10-byte records (`u16` ms into the minute, `f64` value), appended as samples arrive, rewritten whole once the minute is complete | minute end + 1 h + 1 min |
//! | `sb:metric:<name>:1m:<hour>` | string | 60 slots of 32 bytes, one per minute of the hour (`u32` count, `f64` min, max, avg, `f32` stddev; count 0 = no samples) | hour end + 7 days |
//! | `sb:metrics:summary` | hash | metric → the owner's summary (opaque bytes) | pruned by the owner |
//! | `sb:members:<group>` | sorted set | member id → expiry (Redis clock, ms) | |
//! | `sb:claim:<key>` | string | a claim, see [`Store::claim_once`] | its TTL |
//!
//! `<minute>` and `<hour>` are Unix milliseconds divided by 60,000 and 3,600,000. A minute
//! key is preallocated at its full size before its slots are written, so Redis never
//! over-allocates it; raw keys are appended to within their minute and then replaced by an
//! exact-size copy. All writes of one [`Store::write_history`] call run as one Lua script per
//! chunk of [`MAX_WRITES_PER_ROUND_TRIP`] writes: one round trip, atomic per chunk.
//!
//! Identical samples (same time and value bits) count once when read back: a handover between
//! aggregator replicas may append a sample twice, and reads remove such duplicates.

mod codec;
mod layout;
mod memory;
mod redis;

use std::time::Duration;

pub use layout::sort_and_dedup;
pub(crate) use layout::{
    HistoryKeys, KvOp, collect_raw, collect_rollups, lower_writes, raw_minutes, rollup_hours,
};
pub(crate) use memory::MemoryHistory;

use crate::{Backend, Store, StoreError};

/// How long raw samples are kept.
pub const RAW_RETENTION_MS: u64 = 3_600_000;
/// How long one-minute roll-ups are kept.
pub const ROLLUP_RETENTION_MS: u64 = 7 * 24 * 3_600_000;
/// One minute, the roll-up resolution.
pub const MINUTE_MS: u64 = 60_000;
/// One hour, the span of one roll-up key.
pub const HOUR_MS: u64 = 3_600_000;
/// Writes sent in one round trip (one Lua script run); bounds how long Redis is busy with
/// one chunk (a few milliseconds at most).
pub const MAX_WRITES_PER_ROUND_TRIP: usize = 2_048;

/// One raw sample of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawSample {
    /// When it was measured (Unix ms).
    pub ts_ms: u64,
    /// The value.
    pub value: f64,
}

/// One minute of a metric's samples, rolled up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinuteRollup {
    /// Start of the minute (Unix ms, a multiple of [`MINUTE_MS`]).
    pub minute_start_ms: u64,
    /// Samples in the minute (at least one).
    pub count: u32,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub avg: f64,
    /// Population standard deviation (stored as `f32`).
    pub stddev: f64,
}

impl MinuteRollup {
    /// Rolls up `values`, the samples of the minute starting at `minute_start_ms`; `None`
    /// when there are none.
    pub fn from_values(minute_start_ms: u64, values: &[f64]) -> Option<MinuteRollup> {
        if values.is_empty() {
            return None;
        }
        let count = values.len() as f64;
        let avg = values.iter().sum::<f64>() / count;
        let variance = values
            .iter()
            .map(|value| (value - avg) * (value - avg))
            .sum::<f64>()
            / count;
        Some(MinuteRollup {
            minute_start_ms: minute_start_ms - minute_start_ms % MINUTE_MS,
            count: u32::try_from(values.len()).unwrap_or(u32::MAX),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            avg,
            stddev: variance.sqrt(),
        })
    }
}

/// One change to a metric's history.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryWrite {
    /// Adds raw samples (of any minutes) to what is stored.
    AppendRaw {
        /// The metric.
        metric: String,
        /// New samples.
        samples: Vec<RawSample>,
    },
    /// Replaces the stored raw samples of one minute with exactly `samples`, which must all
    /// fall in that minute (others are ignored).
    ReplaceRawMinute {
        /// The metric.
        metric: String,
        /// Start of the minute (Unix ms).
        minute_start_ms: u64,
        /// Every sample of the minute.
        samples: Vec<RawSample>,
    },
    /// Stores (or replaces) one minute's roll-up.
    PutRollup {
        /// The metric.
        metric: String,
        /// The roll-up.
        rollup: MinuteRollup,
    },
    /// Stores the metric's summary entry, opaque to the store.
    PutSummary {
        /// The metric.
        metric: String,
        /// The entry.
        summary: Vec<u8>,
    },
    /// Deletes the metric's summary entry.
    RemoveSummary {
        /// The metric.
        metric: String,
    },
}

/// A metric's history over a range: roll-ups, then raw samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricHistory {
    /// One-minute roll-ups, oldest first.
    pub rollups: Vec<MinuteRollup>,
    /// Raw samples, oldest first, without duplicates.
    pub samples: Vec<RawSample>,
}

impl Store {
    /// Applies `writes` in order. On Redis they go in chunks of
    /// [`MAX_WRITES_PER_ROUND_TRIP`], each one atomic round trip; on failure, the chunks
    /// before the failing one are applied (every write is idempotent except appends, whose
    /// duplicates reads remove).
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn write_history(&self, writes: &[HistoryWrite]) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.history.apply(lower_writes(&memory_keys(), writes));
                Ok(())
            }
            Backend::Redis(redis) => redis::write(redis, writes).await,
        }
    }

    /// Returns the stored raw samples of each metric in `metrics` with a time in
    /// `(after_ms, until_ms]`, oldest first; one round trip for all of them.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn raw_samples(
        &self,
        metrics: &[String],
        after_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<Vec<RawSample>>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                Ok(memory
                    .history
                    .raw_samples(&memory_keys(), metrics, after_ms, until_ms))
            }
            Backend::Redis(redis) => redis::raw_samples(redis, metrics, after_ms, until_ms).await,
        }
    }

    /// Returns one metric's roll-ups for minutes starting in `[from_ms, raw_after_ms)` and its
    /// raw samples in `(raw_after_ms, until_ms]`, in one round trip.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn metric_history(
        &self,
        metric: &str,
        from_ms: u64,
        raw_after_ms: u64,
        until_ms: u64,
    ) -> Result<MetricHistory, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.history.metric_history(
                &memory_keys(),
                metric,
                from_ms,
                raw_after_ms,
                until_ms,
            )),
            Backend::Redis(redis) => {
                redis::metric_history(redis, metric, from_ms, raw_after_ms, until_ms).await
            }
        }
    }

    /// Returns every summary entry, sorted by metric.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn metric_summaries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut entries = match &*self.backend {
            Backend::Memory(memory) => memory.history.hash_entries(&memory_keys().summary()),
            Backend::Redis(redis) => redis::summaries(redis).await?,
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Returns the bytes one metric's history occupies: on Redis the sum of `MEMORY USAGE`
    /// over its raw and roll-up keys plus its summary entry; in memory the stored bytes.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn metric_history_bytes(&self, metric: &str, now_ms: u64) -> Result<u64, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.history.bytes_of(&memory_keys(), metric, now_ms)),
            Backend::Redis(redis) => redis::history_bytes(redis, metric, now_ms).await,
        }
    }

    /// Announces `member` as live in `group` for `ttl`; call again before it runs out.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn register_member(
        &self,
        group: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.history.register_member(group, member, ttl);
                Ok(())
            }
            Backend::Redis(redis) => redis::register_member(redis, group, member, ttl).await,
        }
    }

    /// Removes `member` from `group` at once (a clean shutdown).
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn remove_member(&self, group: &str, member: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.history.remove_member(group, member);
                Ok(())
            }
            Backend::Redis(redis) => redis::remove_member(redis, group, member).await,
        }
    }

    /// Returns the members of `group` whose registration has not expired, sorted.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn live_members(&self, group: &str) -> Result<Vec<String>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.history.live_members(group)),
            Backend::Redis(redis) => redis::live_members(redis, group).await,
        }
    }

    /// Claims `key` for `ttl`: returns `true` for the first caller, `false` for everyone
    /// else until the claim expires. Replicas use it so that something (an alert) happens
    /// once per period even when two of them see it.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.history.claim_once(key, ttl)),
            Backend::Redis(redis) => redis::claim_once(redis, key, ttl).await,
        }
    }
}

/// The memory backend has no prefix to share a database with; it uses the same layout.
fn memory_keys() -> HistoryKeys<'static> {
    HistoryKeys { prefix: "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_of_values_is_exact() {
        let rollup = MinuteRollup::from_values(120_500, &[1.0, 2.0, 3.0, 6.0]).unwrap();
        assert_eq!(rollup.minute_start_ms, 120_000);
        assert_eq!(rollup.count, 4);
        assert_eq!((rollup.min, rollup.max, rollup.avg), (1.0, 6.0, 3.0));
        assert!((rollup.stddev - 3.5f64.sqrt()).abs() < 1e-12);
        assert!(MinuteRollup::from_values(0, &[]).is_none());
    }
}

//! Wall-clock tick arithmetic. A stream's tick is `unix_ms / interval_ms`: every replica
//! computes the same tick for the same instant, so "tick 42 of `nodes`" names one interval
//! cluster-wide and can be claimed once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn unix_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Whole milliseconds of `interval`, at least 1.
pub(crate) fn interval_ms(interval: Duration) -> u64 {
    u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The tick `at_ms` falls in.
pub(crate) fn tick_at(at_ms: u64, interval: Duration) -> u64 {
    at_ms / interval_ms(interval)
}

/// How long from `at_ms` until the next tick starts.
pub(crate) fn until_next_tick(at_ms: u64, interval: Duration) -> Duration {
    let length = interval_ms(interval);
    let next_start = (at_ms / length + 1).saturating_mul(length);
    Duration::from_millis(next_start - at_ms)
}

/// The store's name for a stream's ticks: ticks of different lengths are different
/// numbers, so a changed interval starts a new series instead of colliding with the old one.
pub(crate) fn tick_series(room: &str, interval: Duration) -> String {
    format!("{room}:{}", interval_ms(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_aligned_to_the_epoch() {
        let five = Duration::from_secs(5);
        assert_eq!(tick_at(0, five), 0);
        assert_eq!(tick_at(4_999, five), 0);
        assert_eq!(tick_at(5_000, five), 1);
        assert_eq!(until_next_tick(4_000, five), Duration::from_secs(1));
        assert_eq!(until_next_tick(5_000, five), five);
        assert_eq!(tick_series("nodes", five), "nodes:5000");
    }
}

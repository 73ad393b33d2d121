//! Fixed rate-limit windows, shared by both backends so they count alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The window a hit falls into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateWindow {
    /// Number of whole windows since the Unix epoch. Wall-clock time, so every gateway of
    /// the cluster puts a hit into the same window (up to clock skew).
    pub(crate) index: u64,
    /// How long the window's counter must be kept: it is created during its window, so two
    /// window lengths always outlast the window's end.
    pub(crate) expire_after: Duration,
}

/// Returns the current window of length `window` (at least 1 ms).
pub(crate) fn rate_window(window: Duration) -> RateWindow {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since_epoch| u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    RateWindow {
        index: now_ms / window_ms,
        expire_after: Duration::from_millis(window_ms.saturating_mul(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_window_counts_as_one_millisecond() {
        let window = rate_window(Duration::ZERO);
        assert_eq!(window.expire_after, Duration::from_millis(2));
        assert!(window.index > 0);
    }
}

//! Reconnection delays: exponential backoff with full jitter.
//!
//! "Full jitter" (AWS architecture blog, "Exponential Backoff and Jitter") draws each delay
//! uniformly from `[0, min(max_delay, initial_delay · 2^(attempt-1))]`. Spreading the whole
//! window, not just a fringe of it, is what keeps thousands of clients of a restarted gateway
//! from reconnecting in waves.

use std::time::Duration;

use rand::Rng;

/// How a [`crate::Client`] reconnects after losing its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    /// 1 s doubling to 30 s, retrying forever (seed 003).
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Returns a policy whose delay window starts at `initial_delay` and doubles up to
    /// `max_delay`, retrying forever.
    pub fn exponential(initial_delay: Duration, max_delay: Duration) -> Self {
        Self {
            initial_delay,
            max_delay: max_delay.max(initial_delay),
            max_attempts: None,
        }
    }

    /// Returns a policy that never reconnects: the first lost connection is final.
    pub fn never() -> Self {
        Self::default().max_attempts(0)
    }

    /// Gives up after `attempts` failed attempts in a row (0: never reconnect).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Retries forever (the default).
    #[must_use]
    pub fn unlimited(mut self) -> Self {
        self.max_attempts = None;
        self
    }

    /// Returns the maximum number of attempts in a row, if limited.
    pub fn attempts_limit(&self) -> Option<u32> {
        self.max_attempts
    }

    /// Reports whether attempt number `attempt` (1-based) may still be made.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|limit| attempt <= limit)
    }

    /// Returns the upper bound of the delay window before attempt `attempt` (1-based):
    /// `min(max_delay, initial_delay · 2^(attempt-1))`.
    pub fn window(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Draws the delay before attempt `attempt` uniformly from `[0, window(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let window = self.window(attempt);
        if window.is_zero() {
            return Duration::ZERO;
        }
        rng.random_range(Duration::ZERO..=window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_window_doubles_from_one_second_to_thirty() {
        let policy = ReconnectPolicy::default();
        let windows: Vec<u64> = (1..=7).map(|a| policy.window(a).as_secs()).collect();
        assert_eq!(windows, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy.window(1_000), Duration::from_secs(30));
    }

    #[test]
    fn delays_fill_the_whole_window() {
        let policy = ReconnectPolicy::default();
        let mut rng = rand::rng();
        let delays: Vec<Duration> = (0..2_000).map(|_| policy.delay(4, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        // Full jitter: both ends of the window are reached, not just a fringe around 8 s.
        assert!(delays.iter().any(|d| *d < Duration::from_secs(1)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(7)));
    }

    #[test]
    fn attempt_limit_counts_from_one() {
        let policy = ReconnectPolicy::default().max_attempts(3);
        assert!(policy.allows(1) && policy.allows(3));
        assert!(!policy.allows(4));
        assert!(!ReconnectPolicy::never().allows(1));
        assert!(ReconnectPolicy::default().allows(u32::MAX));
    }
}

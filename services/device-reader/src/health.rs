//! Counting a device's failures (seed 003): every failed reading is published with
//! `error_count` (consecutive failures) and `recoverable: true`; at
//! `failures_before_unavailable` the device becomes unavailable (`recoverable: false`) and is
//! retried with backoff; the next good reading resets the count and the device is connected.

use std::time::Duration;

use protocol::device::DeviceState;

use crate::backoff::Backoff;

/// What one failed reading means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Consecutive failures, this one included.
    pub error_count: u32,
    /// `false` once the device is unavailable.
    pub recoverable: bool,
    /// When unavailable: wait this long before the next attempt.
    pub retry_in: Option<Duration>,
}

/// One device's reading health.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    threshold: u32,
    error_count: u32,
    unavailable: bool,
    connected: bool,
    backoff: Backoff,
    last_error: Option<String>,
}

impl Health {
    pub(crate) fn new(threshold: u32, retry_min: Duration, retry_max: Duration) -> Health {
        Health {
            threshold: threshold.max(1),
            error_count: 0,
            unavailable: false,
            connected: false,
            backoff: Backoff::new(retry_min, retry_max),
            last_error: None,
        }
    }

    /// A good reading: the count resets and the device is connected.
    pub(crate) fn on_success(&mut self) {
        self.error_count = 0;
        self.unavailable = false;
        self.connected = true;
        self.last_error = None;
        self.backoff.reset();
    }

    /// A failed reading.
    pub(crate) fn on_failure(&mut self, message: &str) -> Failure {
        self.error_count = self.error_count.saturating_add(1);
        self.last_error = Some(message.to_owned());
        if self.error_count >= self.threshold {
            self.unavailable = true;
        }
        Failure {
            error_count: self.error_count,
            recoverable: !self.unavailable,
            retry_in: self.unavailable.then(|| self.backoff.next_delay()),
        }
    }

    pub(crate) fn state(&self) -> DeviceState {
        if self.unavailable {
            DeviceState::Unavailable
        } else if self.connected {
            DeviceState::Connected
        } else {
            DeviceState::Starting
        }
    }

    pub(crate) fn error_count(&self) -> u32 {
        self.error_count
    }

    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_up_turn_unavailable_and_reset_on_success() {
        let mut health = Health::new(3, Duration::from_secs(1), Duration::from_secs(4));
        assert_eq!(health.state(), DeviceState::Starting);
        health.on_success();
        assert_eq!(health.state(), DeviceState::Connected);
        let failures: Vec<Failure> = (0..5).map(|_| health.on_failure("boom")).collect();
        let counts: Vec<u32> = failures.iter().map(|f| f.error_count).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5]);
        let recoverable: Vec<bool> = failures.iter().map(|f| f.recoverable).collect();
        assert_eq!(recoverable, [true, true, false, false, false]);
        let retries: Vec<Option<u64>> = failures
            .iter()
            .map(|f| f.retry_in.map(|d| d.as_secs()))
            .collect();
        assert_eq!(retries, [None, None, Some(1), Some(2), Some(4)]);
        assert_eq!(health.state(), DeviceState::Unavailable);
        assert_eq!(health.last_error(), Some("boom"));
        health.on_success();
        assert_eq!(health.state(), DeviceState::Connected);
        assert_eq!(health.error_count(), 0);
        assert_eq!(health.on_failure("again").error_count, 1);
        // The backoff starts over after a recovery.
        for _ in 0..2 {
            health.on_failure("again");
        }
        assert_eq!(
            health.on_failure("again").retry_in,
            Some(Duration::from_secs(2))
        );
    }
}

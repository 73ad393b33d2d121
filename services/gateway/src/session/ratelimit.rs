//! Per-connection message limit (seed 001: at most 100 messages per second per connection):
//! a token bucket, and the rule that turns throttling into a close.
//!
//! The rule (`proto/error-codes.md`, `rate_limited`): every message over the rate is dropped,
//! with at most one `error` per second. A client that *keeps* exceeding the rate is closed with
//! 4429: either its excess messages came with less than a second between any two of them for
//! `rate_limit_close_after` (a sustained flood, however many messages still get a token in
//! between), or more than `message_burst` of them came back to back with none accepted (a burst
//! of twice the bucket). A calm second, with nothing dropped, ends an over-limit period.

use std::time::{Duration, Instant};

/// A second with no dropped message ends an over-limit period; also the minimum spacing of
/// `rate_limited` error frames.
const CALM: Duration = Duration::from_secs(1);

/// What [`MessageLimit::check`] decided about one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    /// Dropped; `warn` when the client is due its (at most one per second) `rate_limited` error.
    Dropped {
        warn: bool,
    },
    /// The client keeps exceeding its rate: close with 4429.
    Flooding,
}

/// The limit of one connection's inbound messages.
#[derive(Debug)]
pub(crate) struct MessageLimit {
    bucket: TokenBucket,
    /// Messages dropped since the last accepted one.
    dropped_in_a_row: u32,
    /// When the current over-limit period began.
    over_limit_since: Option<Instant>,
    last_drop: Option<Instant>,
    last_warning: Option<Instant>,
}

impl MessageLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            bucket: TokenBucket::new(per_second, burst),
            dropped_in_a_row: 0,
            over_limit_since: None,
            last_drop: None,
            last_warning: None,
        }
    }

    /// Judges one message arriving now; `burst` and `close_after` are the configured
    /// `message_burst` and `rate_limit_close_after`.
    pub fn check(&mut self, burst: u32, close_after: Duration) -> Verdict {
        self.check_at(Instant::now(), burst, close_after)
    }

    fn check_at(&mut self, now: Instant, burst: u32, close_after: Duration) -> Verdict {
        if self.bucket.try_take_at(now) {
            // An accepted message ends a back-to-back run, but not an over-limit period:
            // a flood at many times the rate still gets a token now and then.
            self.dropped_in_a_row = 0;
            return Verdict::Accepted;
        }
        let calm_before = self
            .last_drop
            .is_none_or(|last| now.saturating_duration_since(last) >= CALM);
        let since = if calm_before {
            *self.over_limit_since.insert(now)
        } else {
            *self.over_limit_since.get_or_insert(now)
        };
        self.last_drop = Some(now);
        self.dropped_in_a_row = self.dropped_in_a_row.saturating_add(1);
        if self.dropped_in_a_row > burst || now.saturating_duration_since(since) >= close_after {
            return Verdict::Flooding;
        }
        let warn = self
            .last_warning
            .is_none_or(|last| now.saturating_duration_since(last) >= CALM);
        if warn {
            self.last_warning = Some(now);
        }
        Verdict::Dropped { warn }
    }
}

#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    refill_per_second: f64,
    last_refill: Instant,
}

impl TokenBucket {
    fn new(per_second: u32, burst: u32) -> Self {
        Self {
            capacity: f64::from(burst),
            tokens: f64::from(burst),
            refill_per_second: f64::from(per_second),
            last_refill: Instant::now(),
        }
    }

    fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill_per_second).min(self.capacity);
        self.last_refill = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_burst_then_refills_at_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, 100);
        bucket.last_refill = start;
        assert_eq!((0..150).filter(|_| bucket.try_take_at(start)).count(), 100);
        // 50 ms at 100/s refills 5 tokens.
        let later = start + Duration::from_millis(50);
        assert_eq!((0..10).filter(|_| bucket.try_take_at(later)).count(), 5);
    }

    const CLOSE_AFTER: Duration = Duration::from_secs(3);

    /// Sends `per_tick` messages every `tick_ms` for `duration`; returns when the limit said
    /// `Flooding`, and how many `rate_limited` warnings came before.
    fn flood(per_tick: u32, tick_ms: u64, duration: Duration) -> (Option<Duration>, u32) {
        let start = Instant::now();
        let mut limit = MessageLimit::new(100, 100);
        limit.bucket.last_refill = start;
        let mut warnings = 0;
        let mut at = Duration::ZERO;
        while at < duration {
            for _ in 0..per_tick {
                match limit.check_at(start + at, 100, CLOSE_AFTER) {
                    Verdict::Flooding => return (Some(at), warnings),
                    Verdict::Dropped { warn: true } => warnings += 1,
                    Verdict::Dropped { warn: false } | Verdict::Accepted => {}
                }
            }
            at += Duration::from_millis(tick_ms);
        }
        (None, warnings)
    }

    #[test]
    fn a_sustained_flood_is_closed_after_close_after_though_some_messages_pass() {
        // 14 per 10 ms = 14x the allowance: one in fourteen still gets a token.
        let (closed_at, warnings) = flood(14, 10, Duration::from_secs(10));
        let closed_at = closed_at.expect("the flood is closed");
        assert!(
            closed_at >= CLOSE_AFTER && closed_at < CLOSE_AFTER + Duration::from_millis(200),
            "{closed_at:?}"
        );
        assert_eq!(warnings, 3, "one warning per second until the close");
        // 1.2x keeps exceeding the allowance too, once the bucket is empty (after 5 s).
        let (closed_at, _) = flood(6, 50, Duration::from_secs(15));
        assert!(
            closed_at.is_some_and(|at| at > Duration::from_secs(7) && at < Duration::from_secs(9)),
            "{closed_at:?}"
        );
    }

    #[test]
    fn sending_at_the_allowance_is_never_closed() {
        assert_eq!(flood(1, 10, Duration::from_secs(10)), (None, 0));
    }

    #[test]
    fn a_back_to_back_burst_of_twice_the_bucket_is_closed_at_once() {
        let (closed_at, _) = flood(300, 10, Duration::from_secs(1));
        assert_eq!(closed_at, Some(Duration::ZERO));
    }

    #[test]
    fn a_calm_second_ends_an_over_limit_period() {
        let start = Instant::now();
        let mut limit = MessageLimit::new(100, 100);
        limit.bucket.last_refill = start;
        // Bursts of 150 every 1.5 s: 50 dropped each time, then calm; never closed.
        for round in 0..10u32 {
            let at = start + Duration::from_millis(1500) * round;
            for _ in 0..150 {
                assert_ne!(limit.check_at(at, 100, CLOSE_AFTER), Verdict::Flooding);
            }
        }
    }
}

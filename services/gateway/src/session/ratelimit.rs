//! Per-connection token bucket (seed 001: at most 100 messages per second per connection).

use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    refill_per_second: f64,
    last_refill: Instant,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            capacity: f64::from(burst),
            tokens: f64::from(burst),
            refill_per_second: f64::from(per_second),
            last_refill: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
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
}

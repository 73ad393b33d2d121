//! Per-connection sequence checking: loss, duplicates and order.
//!
//! Messages normally arrive in order, so the tracker keeps only the next expected sequence
//! number. At the first gap it switches to a bitmap of the expected range, which tells a
//! duplicate from a late arrival exactly; its size is `expected / 8` bytes, paid only by
//! connections that saw disorder.

/// Sequence state of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    expected: u64,
    next: u64,
    highest_plus_one: u64,
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
    invalid: u64,
    seen: Option<Vec<u64>>,
}

impl SeqTracker {
    /// Expects sequence numbers `0..expected`.
    pub(crate) fn new(expected: u64) -> Self {
        SeqTracker {
            expected,
            ..SeqTracker::default()
        }
    }

    /// Records one received sequence number.
    pub(crate) fn record(&mut self, seq: u64) {
        if seq >= self.expected {
            self.invalid += 1;
            return;
        }
        if self.seen.is_none() {
            if seq == self.next {
                self.next += 1;
                self.unique += 1;
                self.highest_plus_one = self.next;
                return;
            }
            if seq < self.next {
                self.duplicates += 1;
                return;
            }
            self.switch_to_bitmap();
        }
        let Some(seen) = self.seen.as_mut() else {
            return;
        };
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        seen[word] |= bit;
        self.unique += 1;
        if seq < self.highest_plus_one {
            self.out_of_order += 1;
        }
        self.highest_plus_one = self.highest_plus_one.max(seq + 1);
    }

    fn switch_to_bitmap(&mut self) {
        let mut seen = vec![0u64; self.expected.div_ceil(64) as usize];
        for seq in 0..self.next {
            seen[(seq / 64) as usize] |= 1 << (seq % 64);
        }
        self.seen = Some(seen);
    }

    /// Reports whether every expected message arrived.
    pub(crate) fn complete(&self) -> bool {
        self.unique >= self.expected
    }

    /// Returns what the tracker saw.
    pub(crate) fn counts(&self) -> SeqCounts {
        SeqCounts {
            expected: self.expected,
            unique: self.unique,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            invalid: self.invalid,
        }
    }
}

/// What a tracker saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeqCounts {
    pub(crate) expected: u64,
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
    pub(crate) invalid: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(expected: u64, seqs: &[u64]) -> SeqCounts {
        let mut tracker = SeqTracker::new(expected);
        for &seq in seqs {
            tracker.record(seq);
        }
        tracker.counts()
    }

    #[test]
    fn in_order_delivery_is_complete_without_a_bitmap() {
        let mut tracker = SeqTracker::new(3);
        for seq in 0..3 {
            tracker.record(seq);
        }
        assert!(tracker.complete() && tracker.seen.is_none());
    }

    #[test]
    fn duplicates_disorder_and_loss_are_told_apart() {
        let counts = track(6, &[0, 1, 1, 3, 2, 3, 5, 9]);
        assert_eq!(counts.unique, 5, "4 never arrived");
        assert_eq!(counts.duplicates, 2);
        assert_eq!(counts.out_of_order, 1, "2 arrived after 3");
        assert_eq!(counts.invalid, 1);
    }
}

//! Samples of metrics this replica does not own (yet), kept briefly so that a replica
//! taking a metric over has the samples its previous owner never stored: the ones since
//! its last flush when it crashed, or since it noticed the handover when it left cleanly.
//!
//! Overflow policy: bounded by age (`standby_retention`) and by count
//! (`standby_max_samples`); at the cap the oldest sample is dropped and counted.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::series::Point;

/// One sample held for a possible takeover.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) metric: Arc<str>,
    pub(crate) point: Point,
    pub(crate) labels: BTreeMap<String, String>,
    arrived_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Standby {
    samples: VecDeque<Held>,
    retention_ms: u64,
    max_samples: usize,
    dropped: u64,
}

impl Standby {
    pub(crate) fn new(retention_ms: u64, max_samples: usize) -> Self {
        Self {
            samples: VecDeque::new(),
            retention_ms,
            max_samples: max_samples.max(1),
            dropped: 0,
        }
    }

    pub(crate) fn push(
        &mut self,
        metric: Arc<str>,
        point: Point,
        labels: BTreeMap<String, String>,
        now_ms: u64,
    ) {
        if self.samples.len() >= self.max_samples {
            self.samples.pop_front();
            self.dropped += 1;
        }
        self.samples.push_back(Held {
            metric,
            point,
            labels,
            arrived_ms: now_ms,
        });
    }

    /// Forgets samples older than the retention.
    pub(crate) fn prune(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        while self
            .samples
            .front()
            .is_some_and(|held| held.arrived_ms <= cutoff)
        {
            self.samples.pop_front();
        }
    }

    /// Removes and returns the samples of `metrics`, per metric in arrival order.
    pub(crate) fn take(&mut self, metrics: &HashSet<Arc<str>>) -> HashMap<Arc<str>, Vec<Held>> {
        let mut taken: HashMap<Arc<str>, Vec<Held>> = HashMap::new();
        if metrics.is_empty() {
            return taken;
        }
        let mut kept = VecDeque::with_capacity(self.samples.len());
        for held in self.samples.drain(..) {
            if metrics.contains(&held.metric) {
                taken.entry(held.metric.clone()).or_default().push(held);
            } else {
                kept.push_back(held);
            }
        }
        self.samples = kept;
        taken
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Samples dropped at the cap so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(standby: &mut Standby, metric: &Arc<str>, ts_ms: u64, now_ms: u64) {
        standby.push(
            metric.clone(),
            Point { ts_ms, value: 1.0 },
            BTreeMap::new(),
            now_ms,
        );
    }

    #[test]
    fn samples_are_kept_for_the_retention_and_up_to_the_cap() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut standby = Standby::new(1_000, 3);
        push(&mut standby, &a, 1, 0);
        push(&mut standby, &b, 2, 500);
        push(&mut standby, &a, 3, 600);
        push(&mut standby, &a, 4, 700);
        assert_eq!((standby.len(), standby.dropped()), (3, 1));
        standby.prune(1_550);
        assert_eq!(standby.len(), 2);
        let taken = standby.take(&HashSet::from([a.clone()]));
        let times: Vec<u64> = taken[&a].iter().map(|held| held.point.ts_ms).collect();
        assert_eq!(times, vec![3, 4]);
        assert_eq!(standby.len(), 0);
    }
}

//! Membership changes and adoption: which metrics move when replicas come and go, and how
//! an adopted metric gets its windows back (stored samples, then the standby samples nobody
//! stored, replayed with their alerts).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use store::history::{HistoryWrite, RawSample};

use super::{Engine, Owned, Role, note_latest, process_owned};
use crate::detect::Candidate;
use crate::series::{Point, Series};

impl Engine {
    /// Applies a new list of live replicas: metrics this replica loses stop being
    /// processed (their unwritten samples are flushed with the next batch), metrics it
    /// gains are adopted after the settle time.
    pub(crate) fn apply_membership(&mut self, mut members: Vec<String>, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        members.sort();
        members.dedup();
        if members.is_empty() {
            // Nobody is registered (the store lost every entry): stay in charge of
            // everything rather than of nothing.
            members.push(self.replica_id.clone());
        }
        if members == self.members {
            return;
        }
        tracing::info!(replica_id = %self.replica_id, members = ?members, "aggregator membership changed");
        self.members = members;
        self.membership_changed_ms = now_ms;
        let settle_due = now_ms + self.settle_ms;
        let names: Vec<Arc<str>> = self.entries.keys().cloned().collect();
        for name in names {
            let mine = self.is_mine(&name);
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            match (&mut entry.role, mine) {
                (Role::Owned(_), true) | (Role::Standby, false) => {}
                (Role::Adopting { due_ms }, true) => *due_ms = (*due_ms).max(settle_due),
                (Role::Standby, true) => entry.role = Role::Adopting { due_ms: settle_due },
                (Role::Adopting { .. }, false) => entry.role = Role::Standby,
                (Role::Owned(owned), false) => {
                    let pending = std::mem::take(&mut owned.pending);
                    if !pending.is_empty() {
                        self.released.push(HistoryWrite::AppendRaw {
                            metric: name.to_string(),
                            samples: pending,
                        });
                    }
                    entry.role = Role::Standby;
                }
            }
        }
    }

    /// Metrics whose adoption is due: load their raw last hour and pass it to
    /// [`Engine::complete_adoptions`].
    pub(crate) fn due_adoptions(&self, now_ms: u64) -> Vec<Arc<str>> {
        let now_ms = self.now_ms.max(now_ms);
        self.entries
            .iter()
            .filter(
                |(_, entry)| matches!(entry.role, Role::Adopting { due_ms } if due_ms <= now_ms),
            )
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Builds the windows of adopted metrics from their stored samples, then replays the
    /// standby samples the store does not have, raising their alerts. Metrics that stopped
    /// being this replica's while loading are skipped.
    pub(crate) fn complete_adoptions(
        &mut self,
        loaded: Vec<(Arc<str>, Vec<RawSample>)>,
        now_ms: u64,
        alerts: &mut Vec<Candidate>,
    ) {
        let now_ms = self.clock(now_ms);
        let adopting: HashSet<Arc<str>> = loaded
            .iter()
            .filter(|(name, _)| {
                self.entries
                    .get(name)
                    .is_some_and(|entry| matches!(entry.role, Role::Adopting { .. }))
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut held = self.standby.take(&adopting);
        for (name, stored) in loaded {
            if !adopting.contains(&name) {
                continue;
            }
            let mut owned = Box::new(Owned {
                series: Series::new(now_ms),
                alerts: self.detector.state_for(&name),
                pending: Vec::new(),
                compacted_through: None,
                late_minutes: BTreeSet::new(),
                latest: None,
                summary_dirty: true,
                summary_written_ms: 0,
            });
            let stored_count = stored.len();
            for sample in stored {
                let point = Point {
                    ts_ms: sample.ts_ms,
                    value: sample.value,
                };
                owned.series.insert(point, now_ms);
                note_latest(&mut owned.latest, point);
            }
            let mut replayed = 0u64;
            for sample in held.remove(&name).unwrap_or_default() {
                if owned.series.contains(sample.point) {
                    continue;
                }
                let suppressed = process_owned(
                    &self.detector,
                    &mut owned,
                    &name,
                    sample.point,
                    &sample.labels,
                    now_ms,
                    alerts,
                );
                self.counters.suppressed_alerts += suppressed;
                replayed += 1;
            }
            self.counters.processed += replayed;
            tracing::debug!(metric = %name, stored = stored_count, replayed, "metric adopted");
            if let Some(entry) = self.entries.get_mut(&name) {
                entry.role = Role::Owned(owned);
            }
        }
    }
}

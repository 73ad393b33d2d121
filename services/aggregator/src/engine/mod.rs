//! The aggregator's state machine, free of I/O and clocks: every call takes `now_ms`, so
//! tests drive it with made-up time and the service with the wall clock.
//!
//! Each metric this replica knows is one [`Entry`]: `Owned` (windows, alert state, samples
//! not yet written), `Adopting` (just became ours; waits `handover_settle`, then its last
//! hour is loaded from the store), or `Standby` (another replica's; its samples only go to
//! the standby buffer). [`Engine::apply_membership`] moves metrics between roles when the
//! set of live replicas changes; [`Engine::complete_adoptions`] turns stored samples plus the
//! standby buffer into windows, replaying (with alerts) the samples nobody stored; and
//! [`Engine::flush`] (in `flush.rs`) slides the windows and lists what to write.

mod flush;
mod handover;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use protocol::metrics::{MetricSample, is_valid_metric_name};
use store::history::{MINUTE_MS, RAW_RETENTION_MS, RawSample};

use crate::config::AggregatorConfig;
use crate::detect::{AlertState, Candidate, Detector, Observation};
use crate::ownership::owner;
use crate::series::{Point, Series};
use crate::standby::Standby;

/// Running totals of what the engine did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Samples that entered an owned metric's windows (replays included).
    pub(crate) processed: u64,
    /// Samples held in the standby buffer.
    pub(crate) held: u64,
    /// Samples rejected: invalid name or non-finite value.
    pub(crate) invalid: u64,
    /// Samples rejected: older than the raw hour.
    pub(crate) late: u64,
    /// Samples rejected: further in the future than `max_clock_skew`.
    pub(crate) future: u64,
    /// Alerts held back by a cool-down.
    pub(crate) suppressed_alerts: u64,
}

struct Entry {
    /// The map key, shared with standby samples.
    name: Arc<str>,
    role: Role,
    last_seen_ms: u64,
}

enum Role {
    Owned(Box<Owned>),
    Adopting { due_ms: u64 },
    Standby,
}

struct Owned {
    series: Series,
    alerts: AlertState,
    /// Samples received since the last flush, to append to the store.
    pending: Vec<RawSample>,
    /// The last minute rolled up (and its raw key rewritten); `None` right after adoption.
    compacted_through: Option<u64>,
    /// Rolled-up minutes that received a late sample and need a new roll-up.
    late_minutes: BTreeSet<u64>,
    /// The newest sample ever seen, kept after it leaves the windows (for the summary).
    latest: Option<Point>,
    summary_dirty: bool,
    summary_written_ms: u64,
}

pub(crate) struct Engine {
    replica_id: String,
    detector: Detector,
    settle_ms: u64,
    max_skew_ms: u64,
    summary_interval_ms: u64,
    members: Vec<String>,
    membership_changed_ms: u64,
    entries: HashMap<Arc<str>, Entry>,
    standby: Standby,
    /// Writes of metrics this replica lost, still to be flushed.
    released: Vec<store::history::HistoryWrite>,
    counters: Counters,
    now_ms: u64,
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a sample at `ts_ms` is still accepted: its whole minute must lie within the raw
/// hour, so every minute held in memory can be rolled up from complete data.
fn within_raw_hour(ts_ms: u64, now_ms: u64) -> bool {
    ts_ms - ts_ms % MINUTE_MS > now_ms.saturating_sub(RAW_RETENTION_MS)
}

impl Engine {
    /// Creates the engine of replica `replica_id`, alone among the members until told
    /// otherwise, with membership considered changed at `now_ms`.
    pub(crate) fn new(replica_id: String, config: &AggregatorConfig, now_ms: u64) -> Self {
        Self {
            members: vec![replica_id.clone()],
            replica_id,
            detector: Detector::new(config, &crate::rules::RuleSet::configured(config).rules),
            settle_ms: millis(config.handover_settle),
            max_skew_ms: millis(config.max_clock_skew),
            summary_interval_ms: millis(config.summary_interval),
            membership_changed_ms: now_ms,
            entries: HashMap::new(),
            standby: Standby::new(millis(config.standby_retention), config.standby_max_samples),
            released: Vec::new(),
            counters: Counters::default(),
            now_ms,
        }
    }

    fn clock(&mut self, now_ms: u64) -> u64 {
        // Windows never slide backwards, even if the wall clock does.
        self.now_ms = self.now_ms.max(now_ms);
        self.now_ms
    }

    /// Applies a new set of threshold rules to every metric from its next sample on; rules
    /// kept unchanged keep their cool-downs.
    pub(crate) fn set_rules(&mut self, rules: &[protocol::metrics::rules::AlertRule]) {
        self.detector.set_rules(rules);
        for entry in self.entries.values_mut() {
            if let Role::Owned(owned) = &mut entry.role {
                self.detector.rebind(&mut owned.alerts, &entry.name);
            }
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    pub(crate) fn members(&self) -> &[String] {
        &self.members
    }

    pub(crate) fn standby_len(&self) -> usize {
        self.standby.len()
    }

    pub(crate) fn standby_dropped(&self) -> u64 {
        self.standby.dropped()
    }

    /// Names of the metrics whose windows this replica holds.
    pub(crate) fn owned_metrics(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .filter(|(_, entry)| matches!(entry.role, Role::Owned(_)))
            .map(|(name, _)| name.to_string())
            .collect()
    }

    fn is_mine(&self, metric: &str) -> bool {
        owner(metric, &self.members) == Some(self.replica_id.as_str())
    }

    /// The role of a metric this replica has not seen before.
    fn initial_role(&self, metric: &str, now_ms: u64) -> Role {
        if self.is_mine(metric) {
            // Load its history at once if membership has been stable long enough for any
            // earlier owner to have flushed; otherwise after the settle time.
            Role::Adopting {
                due_ms: now_ms.max(self.membership_changed_ms + self.settle_ms),
            }
        } else {
            Role::Standby
        }
    }

    /// Processes one sample; alerts it raises are pushed to `alerts`.
    pub(crate) fn ingest(
        &mut self,
        sample: MetricSample,
        now_ms: u64,
        alerts: &mut Vec<Candidate>,
    ) {
        let now_ms = self.clock(now_ms);
        if !sample.value.is_finite() || !is_valid_metric_name(&sample.metric) {
            self.counters.invalid += 1;
            return;
        }
        if sample.ts_ms > now_ms + self.max_skew_ms {
            self.counters.future += 1;
            return;
        }
        if !within_raw_hour(sample.ts_ms, now_ms) {
            self.counters.late += 1;
            return;
        }
        let point = Point {
            ts_ms: sample.ts_ms,
            value: sample.value,
        };
        if !self.entries.contains_key(sample.metric.as_str()) {
            let role = self.initial_role(&sample.metric, now_ms);
            let name: Arc<str> = sample.metric.as_str().into();
            self.entries.insert(
                name.clone(),
                Entry {
                    name,
                    role,
                    last_seen_ms: now_ms,
                },
            );
        }
        let Some(entry) = self.entries.get_mut(sample.metric.as_str()) else {
            return;
        };
        entry.last_seen_ms = now_ms;
        match &mut entry.role {
            Role::Owned(owned) => {
                let suppressed = process_owned(
                    &self.detector,
                    owned,
                    &entry.name,
                    point,
                    &sample.labels,
                    now_ms,
                    alerts,
                );
                self.counters.processed += 1;
                self.counters.suppressed_alerts += suppressed;
            }
            Role::Adopting { .. } | Role::Standby => {
                self.standby
                    .push(entry.name.clone(), point, sample.labels, now_ms);
                self.counters.held += 1;
            }
        }
    }

    /// Makes metrics known before their first sample (the store's index at start-up), so
    /// the ones this replica owns are adopted with their history.
    pub(crate) fn learn_metrics(&mut self, names: impl IntoIterator<Item = String>, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        for name in names {
            if is_valid_metric_name(&name) && !self.entries.contains_key(name.as_str()) {
                let role = self.initial_role(&name, now_ms);
                let name: Arc<str> = name.as_str().into();
                self.entries.insert(
                    name.clone(),
                    Entry {
                        name,
                        role,
                        last_seen_ms: now_ms,
                    },
                );
            }
        }
    }

    /// Returns the exact statistics of every window of an owned metric.
    #[cfg(test)]
    pub(crate) fn statistics(
        &self,
        metric: &str,
    ) -> Option<BTreeMap<protocol::metrics::Window, protocol::metrics::Statistics>> {
        match &self.entries.get(metric)?.role {
            Role::Owned(owned) => Some(
                protocol::metrics::Window::ALL
                    .into_iter()
                    .map(|window| (window, owned.series.statistics(window)))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Checks a sample of an owned metric for alerts, then adds it to the windows and to the
/// samples to write; returns how many alerts a cool-down held back.
fn process_owned(
    detector: &Detector,
    owned: &mut Owned,
    metric: &str,
    point: Point,
    labels: &BTreeMap<String, String>,
    now_ms: u64,
    alerts: &mut Vec<Candidate>,
) -> u64 {
    owned.series.advance(now_ms);
    let observation = Observation {
        metric,
        point,
        labels,
    };
    let suppressed = detector.check(
        &mut owned.alerts,
        &owned.series,
        observation,
        now_ms,
        alerts,
    );
    if owned.series.insert(point, now_ms) {
        owned.pending.push(RawSample {
            ts_ms: point.ts_ms,
            value: point.value,
        });
        let minute = point.ts_ms / MINUTE_MS;
        if owned.compacted_through.is_some_and(|last| minute <= last) {
            owned.late_minutes.insert(minute);
        }
        owned.summary_dirty = true;
        note_latest(&mut owned.latest, point);
    }
    suppressed
}

fn note_latest(latest: &mut Option<Point>, point: Point) {
    if latest.is_none_or(|held| point.ts_ms >= held.ts_ms) {
        *latest = Some(point);
    }
}

//! Prometheus metrics of one aggregator (`switchboard_aggregator_*`), served by the admin
//! server, and the [`Probe`] tests use to look inside a running replica.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::engine::Counters;

pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    samples: IntCounterVec,
    pub(crate) invalid_payloads: IntCounter,
    pub(crate) alerts: IntCounterVec,
    alerts_suppressed: IntCounter,
    pub(crate) store_write_failures: IntCounter,
    pub(crate) writes_dropped: IntCounter,
    pub(crate) owned_metrics: IntGauge,
    pub(crate) standby_samples: IntGauge,
    standby_dropped: IntCounter,
    pub(crate) bus_dropped: IntGauge,
    pub(crate) queries: IntCounterVec,
    /// The engine counters already added to the Prometheus counters.
    reported: Mutex<(Counters, u64)>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("metric name and help are valid");
    registry
        .register(Box::new(counter.clone()))
        .expect("each metric is registered once");
    counter
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric name, help and labels are valid");
    registry
        .register(Box::new(counter.clone()))
        .expect("each metric is registered once");
    counter
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("metric name and help are valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("each metric is registered once");
    gauge
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        Self {
            samples: counter_vec(
                &registry,
                "switchboard_aggregator_samples_total",
                "Metric samples by outcome: processed (in this replica's windows), held (standby), invalid, late, future.",
                &["outcome"],
            ),
            invalid_payloads: counter(
                &registry,
                "switchboard_aggregator_invalid_payloads_total",
                "Payloads on the ingest subject that were not metric samples.",
            ),
            alerts: counter_vec(
                &registry,
                "switchboard_aggregator_alerts_total",
                "Alerts published to the alerts room, by type.",
                &["type"],
            ),
            alerts_suppressed: counter(
                &registry,
                "switchboard_aggregator_alerts_suppressed_total",
                "Alerts held back by a cool-down (local or claimed by another replica).",
            ),
            store_write_failures: counter(
                &registry,
                "switchboard_aggregator_store_write_failures_total",
                "History flushes that failed; their writes are retried with the next flush.",
            ),
            writes_dropped: counter(
                &registry,
                "switchboard_aggregator_writes_dropped_total",
                "History writes given up after the store stayed unreachable for too long.",
            ),
            owned_metrics: gauge(
                &registry,
                "switchboard_aggregator_owned_metrics",
                "Metrics whose windows this replica holds.",
            ),
            standby_samples: gauge(
                &registry,
                "switchboard_aggregator_standby_samples",
                "Samples of other replicas' metrics held for a takeover.",
            ),
            standby_dropped: counter(
                &registry,
                "switchboard_aggregator_standby_dropped_total",
                "Standby samples dropped at the standby_max_samples cap.",
            ),
            bus_dropped: gauge(
                &registry,
                "switchboard_aggregator_bus_dropped_messages",
                "Messages the bus dropped because this replica read too slowly (cumulative).",
            ),
            queries: counter_vec(
                &registry,
                "switchboard_aggregator_queries_total",
                "Query API requests by method and outcome.",
                &["method", "outcome"],
            ),
            reported: Mutex::new((Counters::default(), 0)),
            registry,
        }
    }

    /// Adds what the engine counted since the last call.
    pub(crate) fn report(&self, counters: Counters, standby_dropped: u64) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let (before, dropped_before) = *reported;
        for (outcome, now, then) in [
            ("processed", counters.processed, before.processed),
            ("held", counters.held, before.held),
            ("invalid", counters.invalid, before.invalid),
            ("late", counters.late, before.late),
            ("future", counters.future, before.future),
        ] {
            self.samples
                .with_label_values(&[outcome])
                .inc_by(now.saturating_sub(then));
        }
        self.alerts_suppressed.inc_by(
            counters
                .suppressed_alerts
                .saturating_sub(before.suppressed_alerts),
        );
        self.standby_dropped
            .inc_by(standby_dropped.saturating_sub(dropped_before));
        *reported = (counters, standby_dropped);
    }

    pub(crate) fn suppressed_by_claim(&self) {
        self.alerts_suppressed.inc();
    }
}

/// A read-only view into a running aggregator replica, for tests and operators' tools.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    state: Arc<ProbeState>,
}

#[derive(Debug, Default)]
struct ProbeState {
    owned: Mutex<BTreeSet<String>>,
    members: Mutex<Vec<String>>,
    processed: AtomicU64,
    ticks: AtomicU64,
    alerts: AtomicU64,
}

impl Probe {
    /// Metrics whose windows the replica held at its last tick.
    pub fn owned_metrics(&self) -> BTreeSet<String> {
        self.state
            .owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The live replicas as the replica last saw them.
    pub fn members(&self) -> Vec<String> {
        self.state
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Samples that entered this replica's windows (replays after a takeover included).
    pub fn processed_samples(&self) -> u64 {
        self.state.processed.load(Ordering::Relaxed)
    }

    /// Ticks (flushes) completed.
    pub fn ticks(&self) -> u64 {
        self.state.ticks.load(Ordering::Relaxed)
    }

    /// Alerts published.
    pub fn alerts_published(&self) -> u64 {
        self.state.alerts.load(Ordering::Relaxed)
    }

    pub(crate) fn set_processed(&self, processed: u64) {
        self.state.processed.store(processed, Ordering::Relaxed);
    }

    pub(crate) fn alert_published(&self) {
        self.state.alerts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tick_done(&self, owned: BTreeSet<String>, members: Vec<String>) {
        *self
            .state
            .owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = owned;
        *self
            .state
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = members;
        self.state.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

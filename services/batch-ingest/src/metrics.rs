//! Batch-ingest's Prometheus metrics, on a registry owned by each instance (so several can
//! live in one test process).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    exponential_buckets,
};
use protocol::batch::ConnectionState;

/// Counters, gauges and histograms of one batch-ingest.
pub(crate) struct Metrics {
    pub registry: Registry,
    /// Valid deliveries, by path (`websocket`, `http`) and kind.
    pub received: IntCounterVec,
    /// Batches stored for the first time, by path and kind.
    pub stored: IntCounterVec,
    /// Deliveries of already-stored batches acknowledged without storing, by path, kind and
    /// how they were recognised (`record`: the hash record; `window`: JetStream's dedupe).
    pub duplicates: IntCounterVec,
    /// Deliveries refused as invalid, by path and reason.
    pub invalid: IntCounterVec,
    /// Deliveries not stored because a store step failed, by path and stage.
    pub store_failures: IntCounterVec,
    /// JetStream publish → ack time.
    pub store_seconds: HistogramVec,
    /// Receipt → ack (WebSocket) or → 200 (HTTP) time of acknowledged deliveries.
    pub ack_seconds: HistogramVec,
    /// 1 for each node's current connection state, 0 for the others.
    pub node_state: IntGaugeVec,
    /// Successful WebSocket connects, by node.
    pub node_connects: IntCounterVec,
    /// Connection ends by node and cause (`refused`, `closed`, `error`, `connect_failed`).
    pub node_disconnects: IntCounterVec,
    /// Batches being stored right now, by path (the in-flight queues).
    pub in_flight: IntGaugeVec,
    /// `batch_progress` events that could not be published.
    pub progress_failures: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// If two metrics share a name, a programming error every test catches.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric =
                IntCounterVec::new(Opts::new(name, help), labels).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric =
                IntGaugeVec::new(Opts::new(name, help), labels).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        // 50 µs to ~26 s: an in-memory store sits at the bottom, a JetStream ack on loopback
        // around a millisecond, a stalled NATS at the store timeout.
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let buckets = exponential_buckets(0.000_05, 2.0, 20).expect("bucket spec is valid");
            let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        Self {
            received: counter(
                "switchboard_batch_ingest_batches_received_total",
                "Valid batch deliveries by path and kind",
                &["path", "kind"],
            ),
            stored: counter(
                "switchboard_batch_ingest_batches_stored_total",
                "Batches stored in JetStream for the first time, by path and kind",
                &["path", "kind"],
            ),
            duplicates: counter(
                "switchboard_batch_ingest_duplicates_dropped_total",
                "Deliveries of already-stored batches acknowledged without storing",
                &["path", "kind", "by"],
            ),
            invalid: counter(
                "switchboard_batch_ingest_batches_invalid_total",
                "Deliveries refused as invalid, by path and reason",
                &["path", "reason"],
            ),
            store_failures: counter(
                "switchboard_batch_ingest_store_failures_total",
                "Deliveries left unacknowledged because a store step failed",
                &["path", "stage"],
            ),
            store_seconds: histogram(
                "switchboard_batch_ingest_store_latency_seconds",
                "JetStream publish to ack time",
                &["kind"],
            ),
            ack_seconds: histogram(
                "switchboard_batch_ingest_ack_latency_seconds",
                "Batch receipt to acknowledgement time",
                &["path"],
            ),
            node_state: gauge(
                "switchboard_batch_ingest_node_connection_state",
                "1 for the current WebSocket state of each ML node",
                &["node", "state"],
            ),
            node_connects: counter(
                "switchboard_batch_ingest_node_connects_total",
                "WebSocket connections established to ML nodes",
                &["node"],
            ),
            node_disconnects: counter(
                "switchboard_batch_ingest_node_disconnects_total",
                "WebSocket connection ends and failed attempts, by cause",
                &["node", "cause"],
            ),
            in_flight: gauge(
                "switchboard_batch_ingest_in_flight_batches",
                "Batches being stored right now, by path",
                &["path"],
            ),
            progress_failures: {
                let metric = IntCounter::new(
                    "switchboard_batch_ingest_progress_publish_failures_total",
                    "batch_progress events that could not be published",
                )
                .expect("metric name is valid");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("metric registered once");
                metric
            },
            registry,
        }
    }

    /// Sets the state-set gauge of `node` to `state`.
    pub fn set_node_state(&self, node: &str, state: ConnectionState) {
        for candidate in ConnectionState::ALL {
            self.node_state
                .with_label_values(&[node, candidate.as_str()])
                .set(i64::from(candidate == state));
        }
    }

    /// Drops the state series of a removed node.
    pub fn forget_node(&self, node: &str) {
        for state in ConnectionState::ALL {
            // An error only means the series did not exist.
            let _ = self.node_state.remove_label_values(&[node, state.as_str()]);
        }
    }
}

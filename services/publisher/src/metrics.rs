//! The publisher's Prometheus metrics, on a registry owned by each instance (so several
//! publishers can live in one test process). Served on the admin `/metrics`.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Counters and gauges of one publisher.
pub(crate) struct Metrics {
    pub registry: Registry,
    /// Node state reports recorded.
    pub reports: IntCounter,
    /// Node state reports not recorded, by reason (`undecodable`, `node_id_mismatch`, `registry_full`).
    pub reports_rejected: IntCounterVec,
    /// Room messages published, by room.
    pub room_messages: IntCounterVec,
    /// Metric samples sent to `sb.ingest.metric`.
    pub samples: IntCounter,
    /// Bus publishes that failed, by target (`room`, `samples`).
    pub publish_errors: IntCounterVec,
    /// Stream ticks not published, by room and reason (`standby`, `already_published`,
    /// `lease_lost`, `store_error`).
    pub ticks_skipped: IntCounterVec,
    /// Topology changes or alerts not published because this replica was not the leader.
    pub events_skipped: IntCounter,
    /// Topology changes dropped because the pending list was full.
    pub changes_dropped: IntGauge,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Fencing token of the lease this replica holds or held last.
    pub lease_epoch: IntGauge,
    /// Lease operations that failed on a store error.
    pub lease_errors: IntCounter,
    /// Known nodes, by state (`online`, `offline`).
    pub nodes: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// Panics if two metrics share a name, a programming error every test would catch.
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let register = |collector: Box<dyn prometheus::core::Collector>| {
            registry
                .register(collector)
                .expect("each publisher metric is registered once");
        };
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("metric name is valid");
            register(Box::new(metric.clone()));
            metric
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric =
                IntCounterVec::new(Opts::new(name, help), labels).expect("metric name is valid");
            register(Box::new(metric.clone()));
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("metric name is valid");
            register(Box::new(metric.clone()));
            metric
        };
        let nodes = IntGaugeVec::new(
            Opts::new("switchboard_publisher_nodes", "Known nodes by state."),
            &["state"],
        )
        .expect("metric name is valid");
        register(Box::new(nodes.clone()));
        Self {
            reports: counter(
                "switchboard_publisher_node_reports_total",
                "Node state reports recorded.",
            ),
            reports_rejected: counter_vec(
                "switchboard_publisher_node_reports_rejected_total",
                "Node state reports not recorded, by reason.",
                &["reason"],
            ),
            room_messages: counter_vec(
                "switchboard_publisher_room_messages_total",
                "Room messages published, by room.",
                &["room"],
            ),
            samples: counter(
                "switchboard_publisher_metric_samples_total",
                "Metric samples sent to the aggregator.",
            ),
            publish_errors: counter_vec(
                "switchboard_publisher_publish_errors_total",
                "Bus publishes that failed, by target.",
                &["target"],
            ),
            ticks_skipped: counter_vec(
                "switchboard_publisher_ticks_skipped_total",
                "Stream ticks not published, by room and reason.",
                &["room", "reason"],
            ),
            events_skipped: counter(
                "switchboard_publisher_events_skipped_total",
                "Topology changes and alerts not published while standing by.",
            ),
            changes_dropped: gauge(
                "switchboard_publisher_topology_changes_dropped",
                "Topology changes dropped because the pending list was full.",
            ),
            leader: gauge(
                "switchboard_publisher_leader",
                "1 while this replica holds the leader lease.",
            ),
            lease_epoch: gauge(
                "switchboard_publisher_lease_epoch",
                "Fencing token of the lease held last.",
            ),
            lease_errors: counter(
                "switchboard_publisher_lease_errors_total",
                "Lease operations that failed on a store error.",
            ),
            nodes,
            registry,
        }
    }
}

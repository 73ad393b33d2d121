//! The gateway's Prometheus metrics, registered on a registry owned by each gateway instance
//! (so several gateways can live in one test process).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    exponential_buckets,
};

/// Counters, gauges and histograms of one gateway.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Open WebSocket connections.
    pub connections_active: IntGauge,
    /// Accepted WebSocket connections.
    pub connections_opened: IntCounter,
    /// Connections closed, by reason.
    pub connections_closed: IntCounterVec,
    /// Frames received from clients, by message type.
    pub messages_in: IntCounterVec,
    /// Frames queued to clients, by kind (`room`, `control`, and the direct messages `user`,
    /// `connection`, `broadcast`).
    pub messages_out: IntCounterVec,
    /// Room messages dropped because a connection's queue was full.
    pub messages_dropped: IntCounter,
    /// Connections closed because their queue stayed full.
    pub slow_consumer_closes: IntCounter,
    /// Authentication failures, by reason.
    pub auth_failures: IntCounterVec,
    /// In-band `refresh` messages by outcome (`accepted`, or the refusal's error code).
    pub token_refreshes: IntCounterVec,
    /// Rejections by a rate limit, by limit (`messages`, `connections`).
    pub rate_limited: IntCounterVec,
    /// Client messages rejected as bad input, by error code.
    pub bad_input: IntCounterVec,
    /// Rooms with at least one local subscriber (and so a bus subscription).
    pub rooms_active: IntGauge,
    /// Publish time → socket write time of room messages.
    pub publish_to_write_seconds: Histogram,
    /// Store operations that failed (presence degraded, delivery unaffected).
    pub store_errors: IntCounter,
    /// Frames waiting in outbound queues (sampled by the heartbeat sweep).
    pub outbound_queued_messages: IntGauge,
    /// Room messages a conflated subscription replaced with a newer one (or discarded before
    /// an `error`) instead of delivering.
    pub messages_conflated: IntCounter,
    /// Conflated subscriptions (a connection's room at a minimum interval).
    pub conflated_subscriptions: IntGauge,
    /// Open seed 003 instrument streams (`/api/v1/ws/v2/power`).
    pub device_streams: IntGauge,
    /// TCP connections closed at accept: the connection cap and its probe headroom were full.
    pub http_connections_refused: IntCounter,
    /// Commands sent through `POST /api/ws/nodes/{node_id}/commands`, by outcome (`ok`,
    /// `failed`, `node_not_connected`, `command_timeout`, `busy`, `unavailable`).
    pub node_commands: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// Panics if two metrics share a name, which is a programming error caught by every test.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric =
                IntCounterVec::new(Opts::new(name, help), labels).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        // 100 µs to ~26 s: loopback deliveries sit at the low end, stalled clients at the top.
        let latency_buckets = exponential_buckets(0.0001, 2.0, 19).expect("bucket spec is valid");
        let publish_to_write_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_gateway_publish_to_write_seconds",
                "Time from publish to socket write of the oldest room message in each write",
            )
            .buckets(latency_buckets),
        )
        .expect("metric name is valid");
        registry
            .register(Box::new(publish_to_write_seconds.clone()))
            .expect("metric registered once");
        Self {
            connections_active: gauge(
                "switchboard_gateway_connections_active",
                "Open WebSocket connections",
            ),
            connections_opened: counter(
                "switchboard_gateway_connections_opened_total",
                "Accepted WebSocket connections",
            ),
            connections_closed: counter_vec(
                "switchboard_gateway_connections_closed_total",
                "Closed WebSocket connections by reason",
                &["reason"],
            ),
            messages_in: counter_vec(
                "switchboard_gateway_messages_received_total",
                "Client messages received by type",
                &["type"],
            ),
            messages_out: counter_vec(
                "switchboard_gateway_messages_sent_total",
                "Messages queued to clients by kind",
                &["kind"],
            ),
            messages_dropped: counter(
                "switchboard_gateway_messages_dropped_total",
                "Room messages dropped because a connection's outbound queue was full",
            ),
            slow_consumer_closes: counter(
                "switchboard_gateway_slow_consumer_closes_total",
                "Connections closed because their outbound queue stayed full",
            ),
            auth_failures: counter_vec(
                "switchboard_gateway_auth_failures_total",
                "Rejected tokens by reason",
                &["reason"],
            ),
            token_refreshes: counter_vec(
                "switchboard_gateway_token_refreshes_total",
                "In-band token refreshes by outcome (accepted, or the refusal's error code)",
                &["outcome"],
            ),
            rate_limited: counter_vec(
                "switchboard_gateway_rate_limited_total",
                "Rate-limit rejections by limit",
                &["limit"],
            ),
            node_commands: counter_vec(
                "switchboard_gateway_node_commands_total",
                "Node commands sent through the HTTP API, by outcome",
                &["outcome"],
            ),
            bad_input: counter_vec(
                "switchboard_gateway_bad_input_total",
                "Client input rejected, by error code",
                &["code"],
            ),
            rooms_active: gauge(
                "switchboard_gateway_rooms_active",
                "Rooms with local subscribers",
            ),
            publish_to_write_seconds,
            store_errors: counter(
                "switchboard_gateway_store_errors_total",
                "Failed store operations (presence and stats degraded, delivery unaffected)",
            ),
            outbound_queued_messages: gauge(
                "switchboard_gateway_outbound_queued_messages",
                "Frames waiting in connections' outbound queues, sampled each heartbeat sweep",
            ),
            messages_conflated: counter(
                "switchboard_gateway_messages_conflated_total",
                "Room messages replaced by a newer one in a conflated subscription instead of being delivered",
            ),
            conflated_subscriptions: gauge(
                "switchboard_gateway_conflated_subscriptions",
                "Subscriptions delivered at a per-connection minimum interval",
            ),
            device_streams: gauge(
                "switchboard_gateway_device_streams_active",
                "Open seed 003 instrument streams (/api/v1/ws/v2/power)",
            ),
            http_connections_refused: counter(
                "switchboard_gateway_http_connections_refused_total",
                "TCP connections closed at accept because the connection cap and its probe headroom were full",
            ),
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

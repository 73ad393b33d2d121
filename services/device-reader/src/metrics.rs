//! The device reader's Prometheus metrics, on a registry owned by each instance (so several
//! can live in one test process).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    exponential_buckets,
};

/// Counters, gauges and histograms of one device reader.
pub(crate) struct Metrics {
    pub registry: Registry,
    /// Module readings published, by device.
    pub readings: IntCounterVec,
    /// Failed module reads, by device and kind (`hardware`, `timeout`, `garbage`, `connection`).
    pub read_errors: IntCounterVec,
    /// Time to read all modules of a device once, by device.
    pub read_seconds: HistogramVec,
    /// Ticks not read, by reason (`standby`, `already_claimed`, `lease_lost`, `store_error`,
    /// `backoff`).
    pub ticks_skipped: IntCounterVec,
    /// Messages the bus refused, by kind (`reading`, `error`, `status`, `samples`).
    pub publish_errors: IntCounterVec,
    /// Metric samples sent to `sb.ingest.metric`.
    pub samples: IntCounter,
    /// Failed lease operations (store errors).
    pub lease_errors: IntCounter,
    /// Devices whose lease this replica holds.
    pub devices_held: IntGauge,
    /// Devices configured on this replica.
    pub devices_configured: IntGauge,
    /// Management requests by transport (`http`, `nats`), method and outcome.
    pub api_requests: IntCounterVec,
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
        let readings = counter(
            "switchboard_device_reader_readings_total",
            "Module readings published",
            &["device"],
        );
        let read_errors = counter(
            "switchboard_device_reader_read_errors_total",
            "Failed module reads",
            &["device", "kind"],
        );
        let ticks_skipped = counter(
            "switchboard_device_reader_ticks_skipped_total",
            "Reading ticks not read, by reason",
            &["reason"],
        );
        let publish_errors = counter(
            "switchboard_device_reader_publish_errors_total",
            "Messages the bus refused",
            &["kind"],
        );
        let api_requests = counter(
            "switchboard_device_reader_api_requests_total",
            "Management requests",
            &["transport", "method", "outcome"],
        );
        let read_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_device_reader_read_duration_seconds",
                "Time to read every module of a device once",
            )
            .buckets(exponential_buckets(0.000_1, 4.0, 10).expect("buckets are valid")),
            &["device"],
        )
        .expect("metric name is valid");
        registry
            .register(Box::new(read_seconds.clone()))
            .expect("metric registered once");
        let single = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        let samples = single(
            "switchboard_device_reader_metric_samples_total",
            "Metric samples sent to the aggregator",
        );
        let lease_errors = single(
            "switchboard_device_reader_lease_errors_total",
            "Failed device lease operations",
        );
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("metric name is valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric registered once");
            metric
        };
        let devices_held = gauge(
            "switchboard_device_reader_devices_held",
            "Devices whose lease this replica holds",
        );
        let devices_configured = gauge(
            "switchboard_device_reader_devices_configured",
            "Devices configured on this replica",
        );
        Metrics {
            registry,
            readings,
            read_errors,
            read_seconds,
            ticks_skipped,
            publish_errors,
            samples,
            lease_errors,
            devices_held,
            devices_configured,
            api_requests,
        }
    }
}

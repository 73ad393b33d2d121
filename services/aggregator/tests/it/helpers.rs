//! A bound replica on a shared in-memory bus and store, and sample builders.

use std::time::Duration;

use aggregator::{Aggregator, Config};
use bus::Bus;
use bytes::Bytes;
use protocol::Subjects;
use protocol::envelope::encode_bus;
use protocol::metrics::{MetricPayload, MetricSample};
use store::Store;

/// Test configuration: no settle time, summaries on every tick.
pub fn config(replica_id: &str) -> Config {
    let mut config = Config::default();
    config.aggregator.replica_id = Some(replica_id.to_owned());
    config.aggregator.handover_settle = Duration::ZERO;
    config.aggregator.summary_interval = Duration::ZERO;
    config.aggregator.flush_interval = Duration::from_millis(50);
    config
}

pub async fn replica(config: Config, bus: &Bus, store: &Store) -> Aggregator {
    Aggregator::bind(config, bus.clone(), store.clone())
        .await
        .expect("aggregator binds")
}

pub fn now_ms() -> u64 {
    protocol::time::now_unix_ms()
}

/// Deterministic noise in [0, 1).
pub fn noise(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 11;
    x as f64 / (1u64 << 53) as f64
}

/// `count` samples one second apart ending one second ago, around `level`.
pub fn steady(metric: &str, count: u64, level: f64) -> Vec<MetricSample> {
    let now = now_ms();
    (0..count)
        .map(|i| MetricSample::new(metric, level + noise(i), now - (count - i) * 1_000))
        .collect()
}

pub async fn publish(bus: &Bus, samples: Vec<MetricSample>) {
    let payload = encode_bus(&MetricPayload::Many(samples)).unwrap();
    bus.publish(&Subjects::default().ingest_metric(), Bytes::from(payload))
        .await
        .unwrap();
}

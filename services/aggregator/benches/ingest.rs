//! Ingest rate of one aggregator replica on one core.
//!
//! Runs the real path a bus message takes — MessagePack decode, validation, ownership,
//! windows, z-score and threshold checks — plus a flush (roll-ups, raw writes, summaries)
//! every wall-clock second, on a current-thread runtime. The store is in memory, or Redis
//! when `AGG_BENCH_REDIS_URL` is set. Pin it to one core:
//!
//! ```sh
//! cargo bench -p switchboard-aggregator --bench ingest --no-run
//! taskset -c 0 target/release/deps/ingest-<hash> [metrics] [seconds]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aggregator::{Aggregator, Config};
use bus::Bus;
use protocol::envelope::encode_bus;
use protocol::metrics::{MetricPayload, MetricSample};
use store::Store;

/// Samples per bus message, like a publisher batching one tick of many metrics.
const SAMPLES_PER_PAYLOAD: usize = 100;

fn noise(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 11;
    x as f64 / (1u64 << 53) as f64
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let metrics: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(metrics, Duration::from_secs(seconds)));
}

async fn run(metric_count: usize, duration: Duration) {
    let store = match std::env::var("AGG_BENCH_REDIS_URL") {
        Ok(url) => Store::connect_redis(&url, store::RedisOptions::default())
            .await
            .expect("redis reachable"),
        Err(_) => Store::memory(),
    };
    let mut config = Config::default();
    config.aggregator.replica_id = Some("bench".into());
    config.aggregator.handover_settle = Duration::ZERO;
    let mut aggregator = Aggregator::bind(config, Bus::memory(), store.clone())
        .await
        .expect("aggregator binds");
    let names: Vec<String> = (0..metric_count)
        .map(|i| format!("bench.node{}.m{}", i / 10, i % 10))
        .collect();

    // Every metric once, then a tick so all are owned before timing starts.
    let now = protocol::time::now_unix_ms();
    let first: Vec<MetricSample> = names
        .iter()
        .map(|name| MetricSample::new(name.as_str(), 1.0, now))
        .collect();
    aggregator
        .process_payload(&encode_bus(&MetricPayload::Many(first)).unwrap())
        .await;
    aggregator.tick().await;

    let mut sent = 0u64;
    let mut next_metric = 0usize;
    let started = Instant::now();
    let mut last_tick = started;
    let mut ticks = 0u32;
    let mut payload_time = Duration::ZERO;
    while started.elapsed() < duration {
        // Payloads are encoded outside the timed section; only ingestion is measured.
        let now = protocol::time::now_unix_ms();
        let samples: Vec<MetricSample> = (0..SAMPLES_PER_PAYLOAD)
            .map(|i| {
                let name = &names[(next_metric + i) % metric_count];
                MetricSample::new(name.as_str(), 50.0 + noise(sent + i as u64), now)
            })
            .collect();
        next_metric = (next_metric + SAMPLES_PER_PAYLOAD) % metric_count;
        let payload = encode_bus(&MetricPayload::Many(samples)).unwrap();
        let begin = Instant::now();
        aggregator.process_payload(&payload).await;
        if last_tick.elapsed() >= Duration::from_secs(1) {
            aggregator.tick().await;
            last_tick = Instant::now();
            ticks += 1;
        }
        payload_time += begin.elapsed();
        sent += SAMPLES_PER_PAYLOAD as u64;
    }
    let processed = aggregator.probe().processed_samples();
    println!(
        "store={} metrics={metric_count} samples={sent} processed={processed} ticks={ticks} \
         ingest+flush time={:.2}s → {:.0} samples/s on one core",
        store.backend_name(),
        payload_time.as_secs_f64(),
        sent as f64 / payload_time.as_secs_f64()
    );
}

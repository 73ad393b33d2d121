//! A measurement, not a test: readings per second one replica sustains across many mock
//! devices at 0.1 s, on the in-memory bus and store. Run with
//! `cargo test -p switchboard-device-reader --test it -- --ignored --nocapture readings_per_second`
//! (`DEVICES=n`, `MODULES=n` and `SECONDS=n` override the defaults; `NATS_URL` and
//! `REDIS_URL` run it on a real NATS and Redis instead of the in-memory bus and store;
//! `LEASE_RENEW_MS` sets the lease timing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus::Bus;
use device_reader::DeviceConfig;
use store::Store;
use tokio::time::Instant;

use crate::helpers::{config, spawn};

fn from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md, not a pass/fail test"]
async fn readings_per_second() {
    let devices = from_env("DEVICES", 500);
    let seconds = from_env("SECONDS", 10);
    let modules = from_env("MODULES", 1);
    let (bus, store) = match (std::env::var("NATS_URL"), std::env::var("REDIS_URL")) {
        (Ok(nats_url), Ok(redis_url)) => {
            let bus = Bus::connect_nats(&nats_url, bus::NatsOptions::default())
                .await
                .unwrap();
            let store_config = settings::StoreConfig {
                redis_url: Some(redis_url),
                key_prefix: format!("bench{}", std::process::id()),
                ..settings::StoreConfig::default()
            };
            (bus, Store::connect(&store_config).await.unwrap())
        }
        _ => (Bus::memory_with_capacity(1 << 16), Store::memory()),
    };
    let mut subscription = bus.subscribe("sb.room.devices.>").await.unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        while let Some(_message) = subscription.next().await {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let module_list: Vec<u16> = (1..=u16::try_from(modules).unwrap()).collect();
    let list = (0..devices)
        .map(|n| {
            let mut device = DeviceConfig::mock(
                &format!("mock-{n}"),
                module_list.clone(),
                Duration::from_millis(100),
            );
            device.drift = 0.5;
            device
        })
        .collect();
    let mut settings = config("dr-bench", list);
    settings.device_reader.max_devices = usize::try_from(devices).unwrap().max(1);
    // LEASE_RENEW_MS=n: renew every n ms (ttl 3 n) instead of the interval-derived timing,
    // which trades takeover time for fewer store operations.
    let renew_ms = from_env("LEASE_RENEW_MS", 0);
    if renew_ms > 0 {
        settings.device_reader.lease_renew_interval = Some(Duration::from_millis(renew_ms));
        settings.device_reader.lease_ttl = Some(Duration::from_millis(3 * renew_ms));
    }
    let reader = spawn(settings, &bus, &store).await;
    // Let every lease be taken and every reader settle on its ticks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start_count = received.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let count = received.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    let expected = devices * modules * 10;
    println!(
        "{} devices={devices} modules={modules} interval=100ms: {:.0} readings/s ({:.1}% of the {expected}/s configured), {} bus drops",
        bus.backend_name(),
        count as f64 / elapsed,
        100.0 * count as f64 / elapsed / expected as f64,
        bus.dropped_messages(),
    );
    reader.stop().await;
}

//! Readings reach the rooms at the configured rate, in seed 003's shape, with metric samples.

use protocol::device::EVENT_ERROR;
use std::time::Duration;

use bus::Bus;
use device_reader::DeviceConfig;
use protocol::device::DeviceReading;
use protocol::metrics::MetricPayload;
use store::Store;

use crate::helpers::{Collector, config, eventually, spawn};

#[tokio::test]
async fn readings_reach_each_module_room_at_the_configured_rate() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let mut samples = bus.subscribe("sb.ingest.metric").await.unwrap();
    let device = DeviceConfig::mock("opm-1", vec![1, 4], Duration::from_millis(100));
    let reader = spawn(config("dr-a", vec![device]), &bus, &store).await;

    eventually(Duration::from_secs(3), "first reading", || async {
        !collector.events("devices.opm-1.m4", "data").is_empty()
    })
    .await;
    collector.clear();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for room in ["devices.opm-1.m1", "devices.opm-1.m4"] {
        let readings = collector.events(room, "data");
        // 20 ticks in 2 s at 100 ms; allow a tick of slack either side for alignment.
        assert!(
            (18..=22).contains(&readings.len()),
            "{room}: {} readings in 2 s",
            readings.len()
        );
        let reading: DeviceReading = serde_json::from_value(readings[0].data.clone()).unwrap();
        assert_eq!(reading.device_id, "opm-1");
        assert_eq!(reading.unit, "dBm");
        assert_eq!(reading.wavelength_nm, 1310.0);
        assert!(reading.timestamp > 1.7e9, "unix seconds with a fraction");
        assert!((-30.0..-10.0).contains(&reading.ch1_power));
        // One reading per tick, ticks increasing.
        let seqs: Vec<u64> = readings.iter().filter_map(|seen| seen.seq).collect();
        assert_eq!(seqs.len(), readings.len());
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    }
    assert!(collector.events("devices.opm-1.m1", EVENT_ERROR).is_empty());
    let status = collector.statuses("opm-1");
    assert!(
        status.is_empty() || status.iter().all(|s| s["state"] == "connected"),
        "{status:?}"
    );

    let message = tokio::time::timeout(Duration::from_secs(2), samples.next())
        .await
        .unwrap()
        .unwrap();
    let samples = MetricPayload::decode_bus(&message.payload)
        .unwrap()
        .into_samples();
    let names: Vec<&str> = samples.iter().map(|s| s.metric.as_str()).collect();
    assert!(names.contains(&"device.ch1_power"), "{names:?}");
    assert!(names.contains(&"device.ch4_power"), "{names:?}");
    assert_eq!(samples[0].labels["device"], "opm-1");
    assert_eq!(samples[0].labels["unit"], "dBm");
    reader.stop().await;
}

#[tokio::test]
async fn status_goes_connected_and_a_drain_releases_the_lease() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let device = DeviceConfig::mock("opm-2", vec![1], Duration::from_millis(100));
    let reader = spawn(config("dr-a", vec![device]), &bus, &store).await;
    eventually(Duration::from_secs(3), "connected status", || async {
        collector
            .statuses("opm-2")
            .iter()
            .any(|status| status["state"] == "connected" && status["reader_id"] == "dr-a")
    })
    .await;
    reader.stop().await;
    // A drain is no operator stop: another replica would carry on, so no `stopped` is said.
    let last = collector.statuses("opm-2").pop().unwrap();
    assert_eq!(last["state"], "connected");
    assert_eq!(
        store.lease_holder("device-reader.opm-2").await.unwrap(),
        None,
        "the lease is released on drain"
    );
}

//! Exactly one replica reads a device; when it dies another continues within two intervals,
//! and no tick is published twice.

use std::collections::HashSet;
use std::time::Duration;

use bus::Bus;
use device_reader::DeviceConfig;
use store::Store;
use tokio::time::Instant;

use crate::helpers::{Collector, config, eventually, spawn};

#[tokio::test]
async fn a_dead_holder_is_replaced_within_two_intervals_without_duplicates() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let interval = Duration::from_millis(200);
    let devices = || {
        vec![
            DeviceConfig::mock("opm-t", vec![1], interval),
            DeviceConfig::mock("opm-u", vec![1], interval),
        ]
    };
    let a = spawn(config("dr-a", devices()), &bus, &store).await;
    let b = spawn(config("dr-b", devices()), &bus, &store).await;
    let room = "devices.opm-t.m1";
    eventually(Duration::from_secs(3), "readings", || async {
        collector.events(room, "data").len() >= 5
    })
    .await;
    let (holder, _) = store
        .lease_holder("device-reader.opm-t")
        .await
        .unwrap()
        .unwrap();
    let (victim, survivor) = if holder == "dr-a" { (a, b) } else { (b, a) };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let died_at = Instant::now();
    victim.crash().await;

    eventually(Duration::from_secs(3), "the survivor reads", || async {
        collector
            .events(room, "data")
            .iter()
            .any(|seen| seen.at > died_at)
    })
    .await;
    let first_after = collector
        .events(room, "data")
        .into_iter()
        .find(|seen| seen.at > died_at)
        .unwrap();
    // Takeover: lease TTL (300 ms) + one acquisition attempt (100 ms) = two intervals, plus
    // scheduling slack.
    let takeover = first_after.at - died_at;
    assert!(
        takeover <= interval * 2 + Duration::from_millis(150),
        "took over after {takeover:?}"
    );
    let statuses = collector.statuses("opm-t");
    assert_eq!(
        statuses.last().unwrap()["reader_id"],
        survivor.instance_id.as_str(),
        "{statuses:#?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    survivor.stop().await;

    for room in [room, "devices.opm-u.m1"] {
        let readings = collector.events(room, "data");
        let ticks: Vec<u64> = readings.iter().map(|seen| seen.seq.unwrap()).collect();
        let unique: HashSet<u64> = ticks.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ticks.len(),
            "{room}: a tick was published twice"
        );
    }
}

#[tokio::test]
async fn two_live_replicas_never_both_read_a_device() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let interval = Duration::from_millis(100);
    let device = || vec![DeviceConfig::mock("opm-v", vec![1], interval)];
    let a = spawn(config("dr-a", device()), &bus, &store).await;
    let b = spawn(config("dr-b", device()), &bus, &store).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A drain hands the device over at once (the lease is released).
    a.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.stop().await;
    let readings = collector.events("devices.opm-v.m1", "data");
    let ticks: Vec<u64> = readings.iter().map(|seen| seen.seq.unwrap()).collect();
    let unique: HashSet<u64> = ticks.iter().copied().collect();
    assert_eq!(unique.len(), ticks.len(), "a tick was published twice");
    // About 30 ticks in 3 s; a handover costs at most a couple.
    assert!(ticks.len() >= 25, "{} readings", ticks.len());
}

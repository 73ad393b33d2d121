//! The health in `metrics_update` of the services that announce their liveness in the store:
//! up while announced, down once silent, forgotten after a clean stop.

use std::time::Duration;

use bus::Bus;
use serde_json::Value;
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::helpers::{RoomFeed, TestPublisher, fast_config};

const WAIT: Duration = Duration::from_secs(5);
/// The announcing instances' TTL: silence shows within it.
const TTL: Duration = Duration::from_millis(600);

fn service<'a>(received: &'a crate::helpers::Received, name: &str) -> &'a Value {
    &received.envelope.data["services"][name]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_goes_silent_turns_from_up_to_down_and_a_clean_stop_is_forgotten() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut metrics = RoomFeed::subscribe(&bus, "metrics").await;
    let _publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;

    // An aggregator that will crash (its announcer is aborted: no withdrawal) and a device
    // reader that will stop cleanly.
    let crashing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .keep_announced("aggregator", "agg-1", TTL, std::future::pending())
                .await;
        })
    };
    let reader_stop = CancellationToken::new();
    let reader = {
        let (store, stop) = (store.clone(), reader_stop.clone());
        tokio::spawn(async move {
            store
                .keep_announced("device_reader", "dr-1", TTL, stop.cancelled_owned())
                .await;
        })
    };

    let up = metrics
        .next_matching(WAIT, |received| {
            service(received, "aggregator")["status"] == "up"
                && service(received, "device_reader")["status"] == "up"
        })
        .await;
    assert_eq!(service(&up, "aggregator")["detail"], "1 of 1 instances up");
    assert_eq!(
        service(&up, "publisher")["detail"],
        "1 of 1 instances up, leader pub-a"
    );
    assert_eq!(service(&up, "batch_ingest")["status"], "unknown");
    assert_eq!(service(&up, "batch_ingest")["detail"], "no instance seen");

    crashing.abort();
    reader_stop.cancel();
    reader.await.expect("the announcer stops when told");

    let silent = metrics
        .next_matching(WAIT, |received| {
            service(received, "aggregator")["status"] == "down"
        })
        .await;
    let aggregator = service(&silent, "aggregator");
    assert_eq!(aggregator["instances_up"], 0);
    assert_eq!(aggregator["instances"], 1);
    assert!(
        aggregator["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("0 of 1 instances up, last seen")),
        "{aggregator}"
    );
    assert_eq!(silent.envelope.data["system_health"], "degraded");
    // A clean stop withdraws the instance: nothing is down, nothing is known.
    assert_eq!(service(&silent, "device_reader")["status"], "unknown");
}

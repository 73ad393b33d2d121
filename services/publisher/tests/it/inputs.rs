//! Bad input on the ingest subjects, and bad configuration.

use std::time::Duration;

use bus::Bus;
use bytes::Bytes;
use protocol::envelope::encode_bus;
use publisher::{Publisher, StartError};
use serde_json::json;
use store::Store;

use crate::helpers::{RoomFeed, TestPublisher, fast_config, report, send_report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_misaddressed_reports_are_counted_and_dropped() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut metrics_feed = RoomFeed::subscribe(&bus, "metrics").await;
    let publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    bus.publish(
        "sb.ingest.node.n-1",
        Bytes::from_static(b"\xc1 not msgpack"),
    )
    .await
    .unwrap();
    let impostor = encode_bus(&report("n-2", "edge", 1, json!({}))).unwrap();
    bus.publish("sb.ingest.node.n-1", Bytes::from(impostor))
        .await
        .unwrap();
    send_report(&bus, &report("n-3", "edge", 1, json!({}))).await;

    let metrics = metrics_feed
        .next_matching(Duration::from_secs(5), |r| {
            r.envelope.data["rejected_reports"] == 2 && r.envelope.data["active_nodes"] == 1
        })
        .await;
    assert_eq!(metrics.envelope.data["offline_nodes"], 0);
    publisher.shutdown().await.expect("clean drain");
}

#[tokio::test]
async fn bind_lists_every_configuration_problem() {
    let mut config = fast_config();
    config.publisher.nodes_interval = Duration::ZERO;
    config.publisher.lease_renew_interval = config.publisher.lease_ttl;
    let outcome = Publisher::bind(config, Bus::memory(), Store::memory()).await;
    match outcome {
        Err(StartError::Config(problems)) => assert_eq!(problems.len(), 2, "{problems:?}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("invalid configuration accepted"),
    }
}

//! What the streams publish, from real node reports.

use std::time::Duration;

use bus::Bus;
use protocol::streams::{
    MetricsUpdate, NodeStatusUpdate, ResourceUpdate, TaskProgressUpdate, TopologyChange,
};
use serde_json::json;
use store::Store;

use crate::helpers::{
    INTERVAL, Received, RoomFeed, TestPublisher, fast_config, next_samples, report, send_report,
};

const WAIT: Duration = Duration::from_secs(5);

fn event_is(received: &Received, event: &str) -> bool {
    received.envelope.event == event
}

fn data<T: serde::de::DeserializeOwned>(received: &Received) -> T {
    serde_json::from_value(received.envelope.data.clone()).expect("payload has its stream's shape")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_reporting_nodes_are_three_active_nodes_in_node_status_update() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut nodes_feed = RoomFeed::subscribe(&bus, "nodes").await;
    let publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    for (id, layer) in [("n-1", "edge"), ("n-2", "edge"), ("n-3", "core")] {
        send_report(&bus, &report(id, layer, 7, json!({}))).await;
    }

    let received = nodes_feed
        .next_matching(WAIT, |r| {
            event_is(r, "node_status_update") && r.envelope.data["active_nodes"] == 3
        })
        .await;
    let update: NodeStatusUpdate = data(&received);
    assert_eq!((update.offline_nodes, update.total_nodes), (0, 3));
    assert_eq!(update.total_updates, 21);
    assert_eq!(update.layers["edge"].active, 2);
    let first = &update.nodes[0];
    assert_eq!(
        (
            first.node_id.as_str(),
            first.layer.as_str(),
            first.online,
            first.update_count
        ),
        ("n-1", "edge", true, 7)
    );
    humantime::parse_rfc3339(&first.last_seen).expect("last_seen is RFC 3339");
    assert_eq!(received.envelope.seq, Some(update.tick), "seq is the tick");
    assert_eq!(
        received.epoch,
        Some(update.lease_epoch),
        "header carries the epoch"
    );
    assert!(update.lease_epoch >= 1);
    publisher.shutdown().await.expect("clean drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_reporting_goes_offline_within_the_timeout_with_a_topology_change_and_an_alert()
 {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut topology = RoomFeed::subscribe(&bus, "topology").await;
    let mut alerts = RoomFeed::subscribe(&bus, "alerts").await;
    let mut nodes_feed = RoomFeed::subscribe(&bus, "nodes").await;
    let config = fast_config();
    let node_timeout = config.publisher.node_timeout;
    let publisher = TestPublisher::start(config, "pub-a", &bus, &store).await;
    // n-1 and n-2 keep reporting; n-3 reports three times, then falls silent.
    let keep_alive_bus = bus.clone();
    let keep_alive = tokio::spawn(async move {
        for round in 0.. {
            for id in ["n-1", "n-2"] {
                send_report(&keep_alive_bus, &report(id, "edge", round, json!({}))).await;
            }
            if round < 3 {
                send_report(&keep_alive_bus, &report("n-3", "core", round, json!({}))).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    nodes_feed
        .next_matching(WAIT, |r| r.envelope.data["active_nodes"] == 3)
        .await;
    let quiet_since = tokio::time::Instant::now();

    let change = topology
        .next_matching(WAIT, |r| {
            r.envelope.data["changes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["change"] == "offline"))
        })
        .await;
    let went_offline_after = quiet_since.elapsed();
    let change: TopologyChange = data(&change);
    assert_eq!(change.changes[0].node_id, "n-3");
    assert_eq!(change.active_nodes, 2);
    assert_eq!(change.layers["edge"], ["n-1", "n-2"]);
    assert!(
        went_offline_after < node_timeout + Duration::from_millis(400),
        "offline after {went_offline_after:?}"
    );
    let alert = alerts
        .next_matching(WAIT, |r| r.envelope.data["type"] == "node_offline")
        .await;
    assert_eq!(alert.envelope.event, "alert");
    assert_eq!(alert.envelope.priority.as_deref(), Some("warning"));
    assert_eq!(alert.envelope.data["node_id"], "n-3");
    let status = nodes_feed
        .next_matching(WAIT, |r| r.envelope.data["offline_nodes"] == 1)
        .await;
    let status: NodeStatusUpdate = data(&status);
    assert_eq!(status.active_nodes, 2);
    assert!(status.nodes.iter().any(|n| n.node_id == "n-3"
        && !n.online
        && n.state == protocol::streams::NodeRunState::Offline));

    keep_alive.abort();
    publisher.shutdown().await.expect("clean drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_resources_and_metrics_come_from_what_nodes_report() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut tasks_feed = RoomFeed::subscribe(&bus, "tasks").await;
    let mut resources_feed = RoomFeed::subscribe(&bus, "resources").await;
    let mut metrics_feed = RoomFeed::subscribe(&bus, "metrics").await;
    let mut samples = bus.subscribe("sb.ingest.metric").await.unwrap();
    let publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    send_report(
        &bus,
        &report(
            "n-1",
            "edge",
            1,
            json!({"cpu_percent": 20.0, "memory_used_percent": 40.0, "load_1m": 0.5,
                   "tasks": [{"task_id": "t-1", "status": "running", "progress": 25.0}]}),
        ),
    )
    .await;
    send_report(
        &bus,
        &report(
            "n-2",
            "core",
            1,
            json!({"cpu_percent": 60.0, "tasks": {"pending": 3, "completed": 2}}),
        ),
    )
    .await;

    let tasks = tasks_feed
        .next_matching(WAIT, |r| r.envelope.data["pending"] == 3)
        .await;
    let tasks: TaskProgressUpdate = data(&tasks);
    assert_eq!(
        (tasks.pending, tasks.running, tasks.completed, tasks.failed),
        (3, 1, 2, 0)
    );
    assert_eq!(tasks.tasks[0].task_id, "t-1");
    assert_eq!(tasks.tasks[0].progress, Some(25.0));

    let resources = resources_feed
        .next_matching(WAIT, |r| r.envelope.data["nodes_reporting"] == 2)
        .await;
    let resources: ResourceUpdate = data(&resources);
    assert_eq!(resources.average.cpu_percent, Some(40.0));
    assert_eq!(resources.average.memory_used_percent, Some(40.0));
    assert_eq!(resources.max.cpu_percent, Some(60.0));
    assert_eq!(resources.top[0].node_id, "n-2");

    let metrics = metrics_feed
        .next_matching(WAIT, |r| r.envelope.data["active_nodes"] == 2)
        .await;
    let metrics: MetricsUpdate = data(&metrics);
    assert_eq!(metrics.services["bus"].status, "up");
    assert_eq!(metrics.services["store"].status, "up");
    assert_eq!(metrics.services["nodes"].status, "up");
    // No gateway runs in this test, and the health report says so.
    assert_eq!(metrics.services["gateways"].status, "down");
    assert_eq!(metrics.system_health, "degraded");

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(seen.iter().any(|m: &String| m == "nodes.active")
        && seen.iter().any(|m| m == "node.cpu_percent"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "samples seen: {seen:?}"
        );
        for sample in next_samples(&mut samples, WAIT).await {
            if sample.metric == "node.cpu_percent" && sample.labels["node_id"] == "n-2" {
                assert_eq!(sample.value, 60.0);
            }
            seen.push(sample.metric);
        }
    }
    publisher.shutdown().await.expect("clean drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_task_data_the_tasks_stream_shows_honest_zeros_on_every_tick() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut tasks_feed = RoomFeed::subscribe(&bus, "tasks").await;
    let publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    let first = tasks_feed.next_matching(WAIT, |_| true).await;
    let second = tasks_feed.next_matching(WAIT, |_| true).await;
    for received in [&first, &second] {
        let update: TaskProgressUpdate = data(received);
        assert_eq!(
            (
                update.pending,
                update.running,
                update.completed,
                update.failed
            ),
            (0, 0, 0, 0)
        );
        assert!(update.tasks.is_empty());
        assert_eq!(received.envelope.event, "task_progress_update");
    }
    let (first, second) = (first.envelope.seq.unwrap(), second.envelope.seq.unwrap());
    assert!(second > first, "ticks advance: {first} then {second}");
    // Consecutive ticks are one interval apart on the wall clock.
    let gap_ms = (second - first) * u64::try_from(INTERVAL.as_millis()).unwrap();
    assert!(
        gap_ms <= 2 * u64::try_from(INTERVAL.as_millis()).unwrap(),
        "{gap_ms}"
    );
    publisher.shutdown().await.expect("clean drain");
}

//! One replica: alerts, history in the store, restart.

use std::time::Duration;

use bus::Bus;
use protocol::RoomEnvelope;
use protocol::envelope::decode_bus;
use protocol::metrics::{MetricAlert, MetricSample, StatisticsReply, StatisticsRequest, Window};
use store::Store;
use store::history::RAW_RETENTION_MS;

use crate::helpers::{config, now_ms, publish, replica, steady};

#[tokio::test]
async fn a_spike_is_published_as_an_anomaly_alert_in_the_alerts_room() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut alerts = bus.subscribe("sb.room.alerts").await.unwrap();
    let mut aggregator = replica(config("a"), &bus, &store).await;

    // The baseline is per label set, so the steady samples come from the same node.
    let samples = steady("latency_ms", 60, 20.0)
        .into_iter()
        .map(|sample| sample.with_label("node_id", "n-1"))
        .collect();
    publish(&bus, samples).await;
    assert!(aggregator.process_next().await);
    aggregator.tick().await; // adopts the new metric and replays its samples
    publish(
        &bus,
        vec![MetricSample::new("latency_ms", 95.0, now_ms()).with_label("node_id", "n-1")],
    )
    .await;
    assert!(aggregator.process_next().await);

    let message = tokio::time::timeout(Duration::from_secs(1), alerts.next())
        .await
        .expect("an alert is published")
        .unwrap();
    let envelope: RoomEnvelope = decode_bus(&message.payload).unwrap();
    assert_eq!(envelope.event, "alert");
    assert_eq!(envelope.priority.as_deref(), Some("critical"));
    let alert: MetricAlert = serde_json::from_value(envelope.data).unwrap();
    assert_eq!(alert.metric, "latency_ms");
    assert_eq!(alert.labels["node_id"], "n-1");
    assert!(alert.z_score.unwrap() > 3.5);
    assert_eq!(aggregator.probe().alerts_published(), 1);
}

#[tokio::test]
async fn a_tick_writes_history_that_a_restarted_replica_rebuilds_its_windows_from() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut first = replica(config("a"), &bus, &store).await;
    let samples = steady("disk.used", 120, 70.0);
    publish(&bus, samples.clone()).await;
    assert!(first.process_next().await);
    first.tick().await;
    first.tick().await;
    let now = now_ms();
    let stored = store
        .raw_samples(&["disk.used".into()], now - RAW_RETENTION_MS, now)
        .await
        .unwrap();
    assert_eq!(stored[0].len(), 120);
    drop(first);

    // A new replica learns the metric from the store's summary, adopts it on its first
    // tick, and its windows are complete: the next outlier is an anomaly at once.
    let mut alerts = bus.subscribe("sb.room.alerts").await.unwrap();
    let mut second = replica(config("a"), &bus, &store).await;
    second.tick().await;
    assert!(second.probe().owned_metrics().contains("disk.used"));
    publish(&bus, vec![MetricSample::new("disk.used", 500.0, now_ms())]).await;
    assert!(second.process_next().await);
    let message = tokio::time::timeout(Duration::from_secs(1), alerts.next())
        .await
        .expect("the rebuilt windows flag the outlier")
        .unwrap();
    let envelope: RoomEnvelope = decode_bus(&message.payload).unwrap();
    assert_eq!(envelope.data["type"], "anomaly_detected");
}

#[tokio::test]
async fn statistics_queries_are_answered_from_the_store_by_a_serving_replica() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let aggregator = replica(config("a"), &bus, &store).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(aggregator.serve(shutdown.clone()));
    let samples = steady("queue.depth", 90, 3.0);
    publish(&bus, samples.clone()).await;

    let request = protocol::envelope::encode_bus(&StatisticsRequest {
        metric: "queue.depth".into(),
        window: Some(Window::OneMinute),
    })
    .unwrap();
    let mut reply = None;
    for _ in 0..100 {
        let answer = bus
            .request(
                "sb.api.aggregator.statistics",
                bus::Headers::new(),
                request.clone().into(),
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        let answer: protocol::metrics::ApiReply<StatisticsReply> =
            decode_bus(&answer.payload).unwrap();
        let answer = answer.into_result().unwrap();
        if answer.windows[&Window::OneMinute].count > 0 {
            reply = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = reply.expect("the samples reach the store");
    let mut inside: Vec<f64> = samples
        .iter()
        .filter(|sample| sample.ts_ms > reply.as_of_ms - 60_000)
        .map(|sample| sample.value)
        .collect();
    inside.sort_by(f64::total_cmp);
    let stats = reply.windows[&Window::OneMinute];
    assert_eq!(stats.count as usize, inside.len());
    assert_eq!(stats.min, inside.first().copied());
    assert_eq!(stats.max, inside.last().copied());
    shutdown.cancel();
    serving.await.unwrap().unwrap();
    assert!(
        store
            .live_members(aggregator::MEMBER_GROUP)
            .await
            .unwrap()
            .is_empty()
    );
}

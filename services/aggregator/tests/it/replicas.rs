//! Two replicas on one bus and store.

use std::collections::BTreeSet;
use std::time::Duration;

use bus::Bus;
use protocol::metrics::MetricSample;
use store::Store;

use crate::helpers::{config, now_ms, publish, replica};

/// The membership refresh is due every third of the liveness TTL (2 s by default).
const REFRESH: Duration = Duration::from_millis(2_001);

// Paused time: membership refreshes and registrations run on the Tokio clock, samples on
// the wall clock.
#[tokio::test(start_paused = true)]
async fn two_replicas_process_disjoint_metrics_and_the_survivor_takes_all_over() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut a = replica(config("agg-a"), &bus, &store).await;
    let mut b = replica(config("agg-b"), &bus, &store).await;
    // a registered before b existed: its next membership refresh sees both.
    tokio::time::advance(REFRESH).await;
    a.tick().await;
    assert_eq!(a.probe().members(), vec!["agg-a", "agg-b"]);
    assert_eq!(b.probe().members(), vec!["agg-a", "agg-b"]);

    let now = now_ms();
    let metrics: Vec<String> = (0..30).map(|i| format!("node.{i}.cpu")).collect();
    let samples: Vec<MetricSample> = metrics
        .iter()
        .flat_map(|metric| {
            (0..10u64).map(move |i| MetricSample::new(metric.as_str(), i as f64, now - i * 100))
        })
        .collect();
    publish(&bus, samples).await;
    for replica in [&mut a, &mut b] {
        assert!(replica.process_next().await);
        replica.tick().await;
    }
    let (owned_a, owned_b) = (a.probe().owned_metrics(), b.probe().owned_metrics());
    assert!(owned_a.is_disjoint(&owned_b), "{owned_a:?} / {owned_b:?}");
    let all: BTreeSet<String> = owned_a.union(&owned_b).cloned().collect();
    assert_eq!(all, metrics.iter().cloned().collect());
    assert_eq!(
        a.probe().processed_samples() + b.probe().processed_samples(),
        300
    );

    // b leaves cleanly; a takes every metric over with its stored samples.
    let b_owned = owned_b.len() as u64;
    drop(b);
    store
        .remove_member(aggregator::MEMBER_GROUP, "agg-b")
        .await
        .unwrap();
    tokio::time::advance(REFRESH).await;
    a.tick().await;
    assert_eq!(a.probe().owned_metrics().len(), 30);
    assert_eq!(a.probe().processed_samples(), 300 - b_owned * 10);
}

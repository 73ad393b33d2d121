//! Two replicas: one publishes; killing it hands over within two intervals without
//! publishing any tick twice; a drained leader hands over at once.

use std::time::Duration;

use bus::Bus;
use serde_json::json;
use store::Store;
use tokio::time::Instant;

use crate::helpers::{
    INTERVAL, Received, RoomFeed, TestPublisher, eventually, fast_config, report, send_report,
};

const LEASE: &str = "publisher";

async fn holder(store: &Store) -> Option<String> {
    store
        .lease_holder(LEASE)
        .await
        .expect("memory store answers")
        .map(|(holder, _)| holder)
}

/// Collects `nodes` messages for `span`.
async fn collect(feed: &mut RoomFeed, span: Duration) -> Vec<(Received, Instant)> {
    let deadline = Instant::now() + span;
    let mut received = Vec::new();
    while let Some(message) = feed
        .next_within(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        received.push((message, Instant::now()));
    }
    received
}

fn ticks(messages: &[(Received, Instant)]) -> Vec<u64> {
    messages
        .iter()
        .map(|(m, _)| m.envelope.seq.expect("periodic messages carry seq"))
        .collect()
}

fn assert_strictly_increasing(ticks: &[u64]) {
    assert!(
        ticks.windows(2).all(|pair| pair[0] < pair[1]),
        "a tick was repeated or went back: {ticks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_lease_holder_publishes() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut feed = RoomFeed::subscribe(&bus, "nodes").await;
    let a = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    let b = TestPublisher::start(fast_config(), "pub-b", &bus, &store).await;
    send_report(&bus, &report("n-1", "edge", 1, json!({}))).await;

    let messages = collect(&mut feed, INTERVAL * 6).await;
    assert!(messages.len() >= 4, "{} messages", messages.len());
    assert_strictly_increasing(&ticks(&messages));
    let epochs: Vec<_> = messages.iter().map(|(m, _)| m.epoch).collect();
    assert!(
        epochs.iter().all(|e| *e == epochs[0]),
        "one leader: {epochs:?}"
    );
    // Both replicas see the node, but only the holder's view reaches the room.
    assert!(
        messages
            .iter()
            .skip(1)
            .all(|(m, _)| m.envelope.data["total_nodes"] == 1)
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_within_two_intervals_and_no_tick_is_published_twice() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut feed = RoomFeed::subscribe(&bus, "nodes").await;
    let mut replicas = vec![
        TestPublisher::start(fast_config(), "pub-a", &bus, &store).await,
        TestPublisher::start(fast_config(), "pub-b", &bus, &store).await,
    ];
    let mut before = collect(&mut feed, INTERVAL * 3).await;
    let leader = holder(&store).await.expect("someone leads");
    let index = replicas
        .iter()
        .position(|r| r.instance_id == leader)
        .expect("the leader is one of ours");
    let old_epoch = before.last().expect("the leader published").0.epoch;

    replicas.remove(index).kill();
    let killed_at = Instant::now();
    let after = collect(&mut feed, INTERVAL * 5).await;

    let first_new = after
        .iter()
        .find(|(m, _)| m.epoch != old_epoch)
        .expect("the standby took over");
    let takeover = first_new.1.duration_since(killed_at);
    assert!(takeover < INTERVAL * 2, "took over after {takeover:?}");
    assert!(first_new.0.epoch > old_epoch, "fencing token grew");
    before.extend(after);
    let all = ticks(&before);
    assert_strictly_increasing(&all);
    assert_ne!(
        holder(&store).await,
        Some(leader),
        "the dead leader's lease expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_leader_releases_its_lease_so_the_standby_takes_over_at_once() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut config = fast_config();
    // A TTL far longer than the test: only the release can explain a quick takeover.
    config.publisher.lease_ttl = Duration::from_secs(30);
    let a = TestPublisher::start(config.clone(), "pub-a", &bus, &store).await;
    eventually(Duration::from_secs(5), || async {
        holder(&store).await.as_deref() == Some("pub-a")
    })
    .await;
    let b = TestPublisher::start(config, "pub-b", &bus, &store).await;

    a.shutdown().await.expect("clean drain");
    let released_at = Instant::now();
    eventually(Duration::from_secs(5), || async {
        holder(&store).await.as_deref() == Some("pub-b")
    })
    .await;
    assert!(released_at.elapsed() < Duration::from_secs(2));
    b.shutdown().await.unwrap();
}

//! Failover on a three-node NATS cluster ([`NatsCluster`]): a bus given every node's URL
//! loses the server it is attached to (SIGKILL) and carries on through another one.
//!
//! Each test prints its figures (`cargo test -p switchboard-bus --all-features --test
//! contract cluster -- --nocapture` shows them).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bus::test_util::NatsCluster;
use bus::{
    Bus, DurablePublishError, Headers, NatsOptions, StreamError, StreamSpec, StreamState,
    Subscription,
};
use bytes::Bytes;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::fixture::{WAIT, unique_subject};

/// Interval between two sequence-numbered publishes: 500 messages a second.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(2);
/// How long the publisher runs before the kill, and at least after the subscriber is back.
const STEADY: Duration = Duration::from_secs(1);
/// The subscriber must be attached to another node within this time after the kill.
const MAX_RECONNECT: Duration = Duration::from_secs(5);

async fn connect(urls: &str, name: &str) -> Bus {
    let options = NatsOptions {
        name: Some(name.to_owned()),
        ..NatsOptions::default()
    };
    Bus::connect_nats(urls, options)
        .await
        .expect("the test cluster accepts connections")
}

/// Publishes on `publisher` until a message reaches `subscription`: interest has then
/// travelled over the routes to the publisher's node. Drains the probes.
async fn wait_for_route(publisher: &Bus, subscription: &mut Subscription, subject: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        publisher
            .publish(subject, Bytes::from_static(b"probe"))
            .await
            .expect("probe publish");
        if let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(100), subscription.next()).await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no probe crossed the cluster within {WAIT:?}"
        );
    }
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_millis(100), subscription.next()).await
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_fails_over_to_another_node_and_keeps_receiving() {
    let mut cluster = NatsCluster::start().await;
    let subscriber = connect(&cluster.urls(), "failover-subscriber").await;
    let attached = subscriber
        .connected_server()
        .expect("a connected bus names its server");
    let doomed = cluster
        .node_with_port(attached.port)
        .expect("the subscriber is attached to a node of the cluster");
    assert_eq!(attached.name, cluster.node_name(doomed));
    assert_eq!(
        cluster.node_serving_client("failover-subscriber").await,
        Some(doomed),
        "the node's /connz lists the subscriber's connection"
    );
    // The publisher sits on another node, given only that node's URL, so it is untouched.
    let publisher_node = (doomed + 1) % cluster.node_count();
    let publisher = connect(&cluster.url(publisher_node), "failover-publisher").await;

    let subject = unique_subject("failover");
    let mut subscription = subscriber.subscribe(&subject).await.expect("subscribe");
    subscriber.flush().await.expect("flush after subscribe");
    wait_for_route(&publisher, &mut subscription, &subject).await;

    // Receiver: every sequence number with the time it arrived.
    let received: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let receiver = tokio::spawn({
        let received = Arc::clone(&received);
        async move {
            while let Some(message) = subscription.next().await {
                let Ok(text) = std::str::from_utf8(&message.payload) else {
                    continue;
                };
                if let Ok(seq) = text.parse::<u64>() {
                    received.lock().await.push((seq, Instant::now()));
                }
            }
        }
    });

    // Publisher: sequence numbers 0.. at a steady rate, with the time each was sent.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let publisher = publisher.clone();
        let stop = Arc::clone(&stop);
        let subject = subject.clone();
        async move {
            let mut sent = Vec::new();
            let mut ticks = tokio::time::interval(PUBLISH_INTERVAL);
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let seq = sent.len() as u64;
                publisher
                    .publish(&subject, Bytes::from(seq.to_string()))
                    .await
                    .expect("the publisher's node stays up");
                sent.push(Instant::now());
            }
            sent
        }
    });

    tokio::time::sleep(STEADY).await;
    let killed_at = Instant::now();
    cluster.kill(doomed).await;
    let reconnect_deadline = killed_at + MAX_RECONNECT;
    let reattached = loop {
        if subscriber.is_connected()
            && let Some(server) = subscriber.connected_server()
            && server.port != attached.port
        {
            break server;
        }
        assert!(
            Instant::now() < reconnect_deadline,
            "the subscriber did not reattach within {MAX_RECONNECT:?} of the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let reconnected_at = Instant::now();
    tokio::time::sleep(STEADY).await;
    stop.store(true, Ordering::Relaxed);
    let sent = sender.await.expect("the publisher task ends");
    publisher.flush().await.expect("flush the publisher");
    // Let the tail arrive: everything after the failover must, so wait for the last one.
    let last = sent.len() as u64 - 1;
    let deadline = Instant::now() + WAIT;
    while !received.lock().await.iter().any(|(seq, _)| *seq == last) {
        assert!(
            Instant::now() < deadline,
            "the last message ({last}) never arrived after the failover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receiver.abort();

    let received = received.lock().await.clone();
    let mut seen = HashSet::new();
    let duplicates = received
        .iter()
        .filter(|(seq, _)| !seen.insert(*seq))
        .count();
    let lost: Vec<u64> = (0..sent.len() as u64)
        .filter(|seq| !seen.contains(seq))
        .collect();
    let in_order = received.windows(2).all(|pair| pair[0].0 < pair[1].0);
    // The longest silence at the subscriber, and the publish times of what was lost.
    let max_gap = received
        .windows(2)
        .map(|pair| pair[1].1 - pair[0].1)
        .max()
        .unwrap_or_default();
    let lost_window = match (lost.first(), lost.last()) {
        (Some(&first), Some(&last)) => Some((
            sent[first as usize].saturating_duration_since(killed_at),
            sent[last as usize].saturating_duration_since(killed_at),
        )),
        _ => None,
    };
    let first_after_kill = received
        .iter()
        .find(|(_, at)| *at > killed_at)
        .map(|(_, at)| *at - killed_at);
    println!(
        "core failover: killed {} ({}), reattached to {} after {:?}; first delivery after the \
         kill at +{:?}; published {}, received {}, lost {} (published between +{:?} of the \
         kill), duplicated {duplicates}, in order {in_order}, longest delivery gap {:?}",
        attached.name,
        attached.address,
        reattached.name,
        reconnected_at - killed_at,
        first_after_kill,
        sent.len(),
        received.len(),
        lost.len(),
        lost_window,
        max_gap,
    );

    assert_eq!(duplicates, 0, "core NATS never delivers a message twice");
    assert!(in_order, "messages from one publisher arrive in order");
    // Loss is confined to the failover: nothing sent before the kill (minus what was still
    // in flight to the dead node) nor after the subscriber was back (plus the time its
    // interest takes to reach the publisher's node) is missing.
    let window_start = killed_at - Duration::from_millis(50);
    let window_end = reconnected_at + Duration::from_secs(1);
    for &seq in &lost {
        let at = sent[seq as usize];
        assert!(
            at >= window_start && at <= window_end,
            "message {seq} sent at +{:?} of the kill was lost outside the failover window \
             (reattached at +{:?})",
            at.saturating_duration_since(killed_at),
            reconnected_at - killed_at,
        );
    }
    assert!(max_gap < MAX_RECONNECT, "delivery paused for {max_gap:?}");

    // The killed node comes back with its ports and store, rejoins the cluster, and serves
    // clients again: a subscriber attached only to it hears the same publisher.
    let restarted_at = Instant::now();
    cluster.restart(doomed).await;
    let rejoined = connect(&cluster.url(doomed), "rejoined-subscriber").await;
    let mut late = rejoined.subscribe(&subject).await.expect("subscribe");
    rejoined.flush().await.expect("flush after subscribe");
    wait_for_route(&publisher, &mut late, &subject).await;
    println!(
        "core failover: {} restarted and delivering through its routes after {:?}",
        cluster.node_name(doomed),
        restarted_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_stream_keeps_every_acknowledged_message_when_a_node_dies() {
    let mut cluster = NatsCluster::start().await;
    let options = || NatsOptions {
        stream_replicas: 3,
        ..NatsOptions::default()
    };
    let setup = Bus::connect_nats(&cluster.urls(), options())
        .await
        .expect("the test cluster accepts connections");
    let spec = StreamSpec {
        name: "CLUSTER_FAILOVER".to_owned(),
        subjects: vec!["cluster.failover.>".to_owned()],
        duplicate_window: Duration::from_secs(60),
        max_age: Duration::ZERO,
        storage: bus::StorageKind::File,
    };
    setup
        .ensure_stream(&spec)
        .await
        .expect("create an R3 stream");
    let leader = setup
        .stream_leader(&spec.name)
        .await
        .expect("stream info")
        .expect("a replicated stream has a leader");
    // The worst case: the node that dies leads the stream and carries the client's
    // connection. The client picks a server of the list at random, so connect until it
    // lands on the leader.
    let mut bus = None;
    for _ in 0..50 {
        let candidate = Bus::connect_nats(&cluster.urls(), options())
            .await
            .expect("the test cluster accepts connections");
        if candidate
            .connected_server()
            .is_some_and(|server| server.name == leader)
        {
            bus = Some(candidate);
            break;
        }
    }
    let bus = bus.expect("one of 50 connections lands on the stream leader");
    drop(setup);

    const BEFORE: u64 = 200;
    const AFTER: u64 = 200;
    for seq in 0..BEFORE {
        publish_until_acked(&bus, seq).await;
    }
    // A reader that is consuming when the node dies, and goes on through the failover.
    let mut live = bus
        .stream_consumer(&spec.name, "live_reader")
        .await
        .expect("open a consumer before the kill");
    let mut live_read = LiveRead::default();
    live_read.until(&mut live, BEFORE).await;
    let attached = bus.connected_server().expect("connected");
    let doomed = cluster
        .node_with_port(attached.port)
        .expect("a cluster node");
    let killed_at = Instant::now();
    cluster.kill(doomed).await;

    // Publishing goes on through the failover: a publish that gets no ack is repeated with
    // the same id, which the stream deduplicates.
    let mut retries = publish_until_acked(&bus, BEFORE).await;
    let first_ack = killed_at.elapsed();
    for seq in BEFORE + 1..BEFORE + AFTER {
        retries += publish_until_acked(&bus, seq).await;
    }
    let through = killed_at.elapsed();
    let new_leader = bus
        .stream_leader(&spec.name)
        .await
        .expect("stream info after the kill");

    live_read.until(&mut live, BEFORE + AFTER).await;
    let live_caught_up = killed_at.elapsed();
    let state = bus.stream_state(&spec.name).await.expect("stream state");
    // Right after a failover, JetStream may not answer a consumer creation in time (its
    // metadata leader can be the node that died): that is a connection error, retried.
    let mut consumer_retries = 0;
    let deadline = Instant::now() + WAIT * 2;
    let mut consumer = loop {
        match bus.stream_consumer(&spec.name, "failover_reader").await {
            Ok(consumer) => break consumer,
            Err(StreamError::Connection { .. }) if Instant::now() < deadline => {
                consumer_retries += 1;
            }
            Err(error) => panic!("open a consumer after the kill: {error}"),
        }
    };
    let mut read = Vec::new();
    while read.len() < (BEFORE + AFTER) as usize {
        let message = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the stream delivers within the wait")
            .expect("the consumer stays open")
            .expect("a stream message");
        let seq: u64 = std::str::from_utf8(&message.payload)
            .ok()
            .and_then(|text| text.parse().ok())
            .expect("a sequence-number payload");
        read.push(seq);
        message.ack().await.expect("ack");
    }
    println!(
        "jetstream failover: killed {} (stream leader and the client's node), first ack after \
         the kill at +{first_ack:?}, {AFTER} publishes acked within {through:?} \
         ({retries} attempts unconfirmed and repeated), new leader {new_leader:?}, stream holds {} \
         messages (seq {}..={}), read back {} (consumer creation retried \
         {consumer_retries} times)",
        attached.name,
        state.messages,
        state.first_sequence,
        state.last_sequence,
        read.len(),
    );
    println!(
        "jetstream failover: the consumer reading through the kill got {} distinct messages \
         in order {}, {} redelivered, {} transient errors, all read {live_caught_up:?} after \
         the kill",
        live_read.seen.len(),
        live_read.in_order,
        live_read.redelivered,
        live_read.errors,
    );
    assert!(new_leader.is_some_and(|name| name != leader));
    assert_eq!(
        live_read.seen.len() as u64,
        BEFORE + AFTER,
        "the live consumer read everything"
    );
    assert!(live_read.in_order, "first deliveries come in stream order");
    assert_eq!(state.messages, BEFORE + AFTER, "no loss and no duplicate");
    assert_eq!(read, (0..BEFORE + AFTER).collect::<Vec<_>>());

    // The old leader comes back as a follower, and the stream answers through it.
    cluster.restart(doomed).await;
    let through_restarted = Bus::connect_nats(&cluster.url(doomed), options())
        .await
        .expect("the restarted node accepts connections");
    let mut after_restart = StreamState::default();
    let deadline = Instant::now() + WAIT;
    while after_restart.messages != BEFORE + AFTER && Instant::now() < deadline {
        if let Ok(state) = through_restarted.stream_state(&spec.name).await {
            after_restart = state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after_restart.messages, BEFORE + AFTER, "after the restart");
}

/// What a consumer read: distinct sequence numbers, redeliveries (at least once: an ack
/// lost in the failover brings a message again), and errors it reported and survived.
#[derive(Default)]
struct LiveRead {
    seen: HashSet<u64>,
    last_new: Option<u64>,
    in_order: bool,
    redelivered: u32,
    errors: u32,
}

impl LiveRead {
    /// Reads and acks until `count` distinct messages were seen; fails after 30 s.
    async fn until(&mut self, consumer: &mut bus::StreamConsumer, count: u64) {
        if self.seen.is_empty() {
            self.in_order = true;
        }
        let deadline = Instant::now() + WAIT * 3;
        while (self.seen.len() as u64) < count {
            let next = tokio::time::timeout_at(deadline, consumer.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("the consumer stalled at {} of {count}", self.seen.len())
                })
                .expect("the consumer stays open");
            let message = match next {
                Ok(message) => message,
                Err(_) => {
                    self.errors += 1;
                    continue;
                }
            };
            let seq: u64 = std::str::from_utf8(&message.payload)
                .ok()
                .and_then(|text| text.parse().ok())
                .expect("a sequence-number payload");
            if self.seen.insert(seq) {
                if self.last_new.is_some_and(|last| seq <= last) {
                    self.in_order = false;
                }
                self.last_new = Some(seq);
            } else {
                self.redelivered += 1;
            }
            // An ack lost in the failover only means a redelivery, which is counted.
            let _ = message.ack().await;
        }
    }
}

/// Publishes `seq` with message id `m<seq>` until the stream acknowledges it; returns how
/// many attempts went unconfirmed. Any other error fails the test: while the stream elects
/// a new leader, the bus must say "unconfirmed" (retry), never "no stream".
async fn publish_until_acked(bus: &Bus, seq: u64) -> u32 {
    let deadline = Instant::now() + WAIT * 2;
    let mut retries = 0;
    loop {
        match bus
            .publish_durable(
                &format!("cluster.failover.{}", seq % 4),
                &format!("m{seq}"),
                Headers::new(),
                Bytes::from(seq.to_string()),
            )
            .await
        {
            Ok(_) => return retries,
            Err(DurablePublishError::Unconfirmed { .. }) if Instant::now() < deadline => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("publish {seq} failed: {error}"),
        }
    }
}

//! Publisher instances on a shared in-memory bus and store, node reports, and a reader of
//! room messages straight from the bus.

use std::future::Future;
use std::time::Duration;

use bus::{Bus, Message, Subscription};
use bytes::Bytes;
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::MetricSample;
use protocol::streams::HEADER_LEASE_EPOCH;
use protocol::{NodeState, RoomEnvelope, Subjects};
use publisher::{Config, Publisher, RunError};
use serde_json::Value;
use store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Stream interval used by most tests: short, yet long enough for a loaded machine.
pub const INTERVAL: Duration = Duration::from_millis(400);

/// A configuration with short intervals and a short lease, so tests run in seconds.
pub fn fast_config() -> Config {
    let mut config = Config::default();
    let publisher = &mut config.publisher;
    publisher.nodes_interval = INTERVAL;
    publisher.tasks_interval = INTERVAL;
    publisher.metrics_interval = INTERVAL;
    publisher.resources_interval = INTERVAL;
    publisher.node_timeout = Duration::from_millis(900);
    publisher.node_forget_after = Duration::from_secs(60);
    publisher.sweep_interval = Duration::from_millis(50);
    publisher.lease_ttl = Duration::from_millis(400);
    publisher.lease_renew_interval = Duration::from_millis(100);
    publisher.shutdown_grace = Duration::from_secs(2);
    config
}

/// A publisher serving in this process.
pub struct TestPublisher {
    pub instance_id: String,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), RunError>>>,
}

impl TestPublisher {
    /// Binds and serves a publisher named `instance_id` on `bus` and `store`.
    pub async fn start(mut config: Config, instance_id: &str, bus: &Bus, store: &Store) -> Self {
        config.publisher.instance_id = Some(instance_id.to_owned());
        let publisher = Publisher::bind(config, bus.clone(), store.clone())
            .await
            .expect("test publisher binds");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(publisher.serve(shutdown.clone()));
        Self {
            instance_id: instance_id.to_owned(),
            shutdown,
            handle: Some(handle),
        }
    }

    /// Drains the publisher (as on SIGTERM) and returns how `serve` ended.
    pub async fn shutdown(mut self) -> Result<(), RunError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("serve is running");
        handle.await.expect("serve does not panic")
    }

    /// Stops it abruptly: every task aborted, nothing released (a crash).
    pub fn kill(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

impl Drop for TestPublisher {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// A node report with `current_data`.
pub fn report(node_id: &str, layer: &str, update_count: u64, current_data: Value) -> NodeState {
    NodeState {
        node_id: node_id.to_owned(),
        layer: layer.to_owned(),
        update_count,
        current_data,
        ..NodeState::default()
    }
}

/// Publishes `state` on its node's ingest subject, as a gateway would.
pub async fn send_report(bus: &Bus, state: &NodeState) {
    let subject = Subjects::default().ingest_node(&state.node_id);
    let payload = Bytes::from(encode_bus(state).expect("node state encodes"));
    bus.publish(&subject, payload)
        .await
        .expect("report is published");
}

/// A room message as read from the bus, with the lease epoch header.
#[derive(Debug, Clone)]
pub struct Received {
    pub envelope: RoomEnvelope,
    pub epoch: Option<u64>,
}

/// Reads room messages from `sb.room.<room>` on the bus.
pub struct RoomFeed {
    subscription: Subscription,
}

impl RoomFeed {
    pub async fn subscribe(bus: &Bus, room: &str) -> Self {
        let subject = format!("sb.room.{room}");
        Self {
            subscription: bus.subscribe(&subject).await.expect("room subscription"),
        }
    }

    /// Returns the next message, or `None` if none comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let message = tokio::time::timeout(wait, self.subscription.next())
            .await
            .ok()??;
        Some(decode_room(&message))
    }

    /// Returns the first message for which `wanted` holds, waiting at most `wait` in all.
    pub async fn next_matching(
        &mut self,
        wait: Duration,
        wanted: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(received) if wanted(&received) => return received,
                Some(_) => {}
                None => panic!("no matching room message within {wait:?}"),
            }
        }
    }
}

fn decode_room(message: &Message) -> Received {
    let envelope: RoomEnvelope = decode_bus(&message.payload).expect("room envelope decodes");
    let epoch = message
        .headers
        .get(HEADER_LEASE_EPOCH)
        .and_then(|value| value.parse().ok());
    Received { envelope, epoch }
}

/// Reads metric sample lists from `sb.ingest.metric`.
pub async fn next_samples(subscription: &mut Subscription, wait: Duration) -> Vec<MetricSample> {
    let message = tokio::time::timeout(wait, subscription.next())
        .await
        .expect("metric samples arrive in time")
        .expect("subscription open");
    decode_bus(&message.payload).expect("samples decode as a list")
}

/// Polls `check` until it holds, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

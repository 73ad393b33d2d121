//! The backend under test, and the small waiting helpers the suite uses.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus::test_util::NatsServer;
use bus::{Bus, Message, NatsOptions, Subscription};
use tokio::time::Instant;

/// How long any single wait in the suite may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The backend a behaviour runs against.
pub enum Fixture {
    /// One in-memory engine; every `bus()` is a clone of it.
    Memory(Bus),
    /// A real server; every `bus()` is a new connection, like separate service replicas.
    Nats(NatsServer),
}

impl Fixture {
    pub fn memory() -> Fixture {
        Fixture::Memory(Bus::memory())
    }

    pub async fn nats() -> Fixture {
        Fixture::Nats(NatsServer::start().await)
    }

    /// Returns a handle to the bus under test.
    pub async fn bus(&self) -> Bus {
        match self {
            Fixture::Memory(bus) => bus.clone(),
            Fixture::Nats(server) => connect(server, NatsOptions::default()).await,
        }
    }

    /// Returns `(slow, other)`: subscriptions made on `slow` buffer only `capacity` messages.
    ///
    /// In memory the capacity is per engine, so both handles share one small-buffer engine;
    /// on NATS it is per connection, so `other` keeps the default.
    pub async fn slow_consumer_buses(&self, capacity: usize) -> (Bus, Bus) {
        match self {
            Fixture::Memory(_) => {
                let bus = Bus::memory_with_capacity(capacity);
                (bus.clone(), bus)
            }
            Fixture::Nats(server) => {
                let options = NatsOptions {
                    subscription_capacity: capacity,
                    ..NatsOptions::default()
                };
                (
                    connect(server, options).await,
                    connect(server, NatsOptions::default()).await,
                )
            }
        }
    }
}

pub async fn connect(server: &NatsServer, options: NatsOptions) -> Bus {
    Bus::connect_nats(&server.url(), options)
        .await
        .expect("test nats-server accepts connections")
}

/// Returns a subject no other test uses.
pub fn unique_subject(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("contract.{test}.{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Subscribes and waits until the subscription is live on the server, so a publish from
/// another connection cannot overtake it.
pub async fn subscribe_ready(bus: &Bus, subject: &str) -> Subscription {
    let subscription = bus.subscribe(subject).await.expect("subscribe");
    bus.flush().await.expect("flush after subscribe");
    subscription
}

/// Returns the next message, failing the test if none comes within [`WAIT`].
pub async fn next_message(subscription: &mut Subscription) -> Message {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap_or_else(|_| panic!("no message on {} within {WAIT:?}", subscription.subject()))
        .expect("subscription stream ended")
}

/// Polls `condition` until it holds, failing the test after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

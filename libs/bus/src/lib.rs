//! Switchboard's message bus: publish/subscribe, queue groups and request/reply over NATS,
//! or over the in-memory engine that powers the single-process (embedded) product.
//!
//! [`Bus`] is the one entry point: [`Bus::memory`] builds an in-memory engine,
//! [`Bus::connect_nats`] connects to a NATS server. Both backends pass the same contract
//! suite (`tests/contract`), so code written against [`Bus`] behaves the same on a laptop and
//! in a cluster: `*`/`>` wildcards, one delivery per queue group, `NoResponders` for requests
//! nobody listens to, and the slow-consumer policy — every [`Subscription`] has a bounded
//! buffer, and a message that does not fit is dropped for that subscriber and counted in
//! [`Bus::dropped_messages`], so a publisher is never held up by a slow reader.
//!
//! Durable streams (JetStream on NATS, an append-only log per stream in memory) sit next to
//! the core operations: [`Bus::ensure_stream`], [`Bus::publish_durable`] (waits for the
//! store's ack; deduplicates by message id within the stream's window),
//! [`Bus::stream_state`] and [`Bus::stream_consumer`].
//!
//! With the `test-util` feature, `test_util::NatsServer` starts a real `nats-server -js` on a
//! free loopback port for tests, and `test_util::NatsCluster` a three-node cluster of them
//! (routes, replicated JetStream) whose nodes can be killed and restarted one by one.
#![warn(missing_docs)]

mod error;
mod jetstream;
mod memory;
mod message;
mod nats;
mod subscription;
#[cfg(feature = "test-util")]
pub mod test_util;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use error::{ConnectError, PublishError, RequestError, SubscribeError};
pub use jetstream::{
    ConsumeError, DurablePublishError, PublishAck, StorageKind, StreamConsumer, StreamError,
    StreamMessage, StreamSpec, StreamState,
};
pub use message::{Headers, Message};
use message::{Unpublishable, check_publishable, check_subscribable};
pub use nats::{ConnectedServer, NatsOptions};
pub use subscription::Subscription;

/// Default buffer size of each in-memory subscription, in messages; the same as the NATS
/// client's default, so both backends start dropping at the same point.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 65_536;

/// A handle to the message bus. Cheap to clone; clones share one engine or connection.
///
/// On NATS, publishing only queues the message for the connection's writer. Dropping the
/// last handle of a connection can lose what is still queued, so call [`Bus::flush`] before
/// letting go of a bus you published on (shutdown does this as its "flush bus publishers"
/// step).
#[derive(Clone)]
pub struct Bus {
    backend: Backend,
    /// Durable streams (JetStream, or the in-memory log), next to the core backend.
    streams: jetstream::Streams,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<memory::Engine>),
    Nats(nats::Connection),
}

impl Bus {
    /// Returns a new in-memory bus whose subscriptions buffer
    /// [`DEFAULT_SUBSCRIPTION_CAPACITY`] messages each.
    pub fn memory() -> Bus {
        Self::memory_with_capacity(DEFAULT_SUBSCRIPTION_CAPACITY)
    }

    /// Returns a new in-memory bus whose subscriptions buffer `capacity` messages each
    /// (at least one). Buffers fill lazily, so a large capacity costs nothing until used.
    pub fn memory_with_capacity(capacity: usize) -> Bus {
        Bus {
            backend: Backend::Memory(Arc::new(memory::Engine::new(capacity))),
            streams: jetstream::Streams::memory(),
        }
    }

    /// Connects the bus a `[bus]` section describes: NATS at `nats_url`, or the embedded
    /// in-memory bus when it is unset. `client_name` names this connection in NATS.
    ///
    /// # Errors
    /// [`ConnectError`] as for [`Bus::connect_nats`].
    pub async fn connect(
        config: &settings::BusConfig,
        client_name: &str,
    ) -> Result<Bus, ConnectError> {
        match &config.nats_url {
            None => Ok(Bus::memory()),
            Some(url) => {
                let options = NatsOptions {
                    name: Some(client_name.to_owned()),
                    connect_timeout: config.connect_timeout,
                    request_timeout: config.request_timeout,
                    stream_replicas: config.stream_replicas,
                    ..NatsOptions::default()
                };
                Bus::connect_nats(url, options).await
            }
        }
    }

    /// Connects to the NATS server at `url` (`nats://host:port`), or to one of several servers
    /// of a cluster given as a comma-separated list (`nats://n1:4222,nats://n2:4222`).
    ///
    /// Until the first connection succeeds, every server of the list is tried in turn, again
    /// and again, for up to `options.connect_timeout`. After that, the client reconnects on
    /// its own for as long as the bus lives — to any server of the list or one the cluster
    /// announced, so losing the server it is connected to costs a failover, not the
    /// connection — and restores its subscriptions; [`Bus::is_connected`] reports the gaps
    /// and [`Bus::connected_server`] says where it is attached. Core messages published to
    /// a subscription's subject while it is reconnecting are not delivered to it (at most
    /// once); what this connection publishes meanwhile is queued and sent after reconnecting.
    ///
    /// # Errors
    ///
    /// [`ConnectError::InvalidUrl`] naming the first malformed entry of the list;
    /// [`ConnectError::Unreachable`]/[`ConnectError::Timeout`] when no server of the list
    /// completed the handshake within `options.connect_timeout`; authentication and TLS
    /// errors at once.
    pub async fn connect_nats(url: &str, options: NatsOptions) -> Result<Bus, ConnectError> {
        let request_timeout = options.request_timeout;
        let stream_replicas = options.stream_replicas;
        let connection = nats::Connection::connect(url, options).await?;
        Ok(Bus {
            streams: jetstream::Streams::nats(
                connection.client(),
                request_timeout,
                stream_replicas,
            ),
            backend: Backend::Nats(connection),
        })
    }

    /// Publishes `payload` to `subject`.
    ///
    /// # Errors
    ///
    /// [`PublishError::InvalidSubject`] for an empty, malformed or wildcard subject (checked
    /// the same way on every backend); [`PublishError::PayloadTooLarge`] or [`PublishError::Connection`] from NATS.
    pub async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), PublishError> {
        self.publish_with_headers(subject, Headers::new(), payload)
            .await
    }

    /// Publishes `payload` with `headers` to `subject`.
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`], plus [`PublishError::InvalidHeader`] for a header name or value
    /// that NATS cannot carry.
    pub async fn publish_with_headers(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        check_publishable(subject, &headers).map_err(|problem| match problem {
            Unpublishable::Subject => PublishError::InvalidSubject {
                subject: subject.to_owned(),
            },
            Unpublishable::Header(name) => PublishError::InvalidHeader { name },
        })?;
        match &self.backend {
            Backend::Memory(engine) => {
                engine.publish(subject, None, headers, payload);
                Ok(())
            }
            Backend::Nats(connection) => connection.publish(subject, headers, payload).await,
        }
    }

    /// Ends every subscription on exactly `subject` (tests of what a service does when the
    /// bus ends a subscription, which NATS does when the connection closes for good).
    /// In-memory bus only: returns how many ended, always 0 on NATS.
    #[cfg(feature = "test-util")]
    pub fn end_subscriptions(&self, subject: &str) -> usize {
        match &self.backend {
            Backend::Memory(engine) => engine.end_subscriptions(subject),
            Backend::Nats(_) => 0,
        }
    }

    /// Subscribes to `subject`, which may contain `*` (one token) and `>` (the rest).
    ///
    /// # Errors
    ///
    /// [`SubscribeError::InvalidSubject`] for a malformed pattern;
    /// [`SubscribeError::Connection`] from NATS.
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, SubscribeError> {
        self.subscribe_in(subject, None).await
    }

    /// Subscribes to `subject` as a member of `queue_group`: each message goes to exactly one
    /// member of the group (plus every plain subscriber).
    ///
    /// # Errors
    ///
    /// As [`Bus::subscribe`], plus [`SubscribeError::InvalidQueueGroup`] for an empty name or
    /// one containing whitespace.
    pub async fn queue_subscribe(
        &self,
        subject: &str,
        queue_group: &str,
    ) -> Result<Subscription, SubscribeError> {
        self.subscribe_in(subject, Some(queue_group)).await
    }

    async fn subscribe_in(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Result<Subscription, SubscribeError> {
        check_subscribable(subject, queue_group)?;
        match &self.backend {
            Backend::Memory(engine) => {
                let receiver = engine.subscribe(subject, queue_group);
                Ok(Subscription::from_memory(subject, receiver))
            }
            Backend::Nats(connection) => connection.subscribe(subject, queue_group).await,
        }
    }

    /// Publishes a request to `subject` and waits up to `timeout` for the first reply.
    ///
    /// # Errors
    ///
    /// [`RequestError::NoResponders`] at once when nothing is subscribed to `subject`;
    /// [`RequestError::Timeout`] when a subscriber exists but no reply came in time;
    /// invalid subject/header and connection errors as for [`Bus::publish_with_headers`].
    pub async fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, RequestError> {
        check_publishable(subject, &headers).map_err(|problem| match problem {
            Unpublishable::Subject => RequestError::InvalidSubject {
                subject: subject.to_owned(),
            },
            Unpublishable::Header(name) => RequestError::InvalidHeader { name },
        })?;
        match &self.backend {
            Backend::Memory(engine) => engine.request(subject, headers, payload, timeout).await,
            Backend::Nats(connection) => {
                connection.request(subject, headers, payload, timeout).await
            }
        }
    }

    /// Answers `request` by publishing to its reply subject.
    ///
    /// # Errors
    ///
    /// [`PublishError::NoReplySubject`] when `request` was not sent as a request; otherwise
    /// as [`Bus::publish_with_headers`].
    pub async fn respond(
        &self,
        request: &Message,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let reply = request
            .reply
            .as_deref()
            .ok_or(PublishError::NoReplySubject)?;
        self.publish_with_headers(reply, headers, payload).await
    }

    /// Waits until the server has processed everything this handle sent before: publishes,
    /// subscribes and unsubscribes. After `subscribe` + `flush`, a message published from any
    /// other connection reaches the subscription. Memory applies everything at once, so it
    /// returns immediately there; NATS needs one round trip through the server.
    ///
    /// # Errors
    ///
    /// [`PublishError::Connection`] if NATS does not confirm within
    /// [`NatsOptions::request_timeout`] or the connection is closed.
    pub async fn flush(&self) -> Result<(), PublishError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Nats(connection) => connection.flush().await,
        }
    }

    /// Creates the durable stream `spec` describes, or updates an existing one of that name to
    /// its subjects, duplicate window and maximum age, and returns its state. Idempotent.
    ///
    /// # Errors
    ///
    /// [`StreamError::InvalidSpec`] for a bad name, no or malformed subjects, or a duplicate
    /// window longer than the maximum age; [`StreamError::Rejected`] when JetStream refuses
    /// (a storage change, subjects held by another stream); [`StreamError::Connection`] when
    /// it is unreachable.
    pub async fn ensure_stream(&self, spec: &StreamSpec) -> Result<StreamState, StreamError> {
        self.streams.ensure_stream(spec).await
    }

    /// Returns the message count and sequence range of the stream `name`.
    ///
    /// # Errors
    ///
    /// [`StreamError::NotFound`] when there is no such stream; [`StreamError::Connection`]
    /// when JetStream is unreachable.
    pub async fn stream_state(&self, name: &str) -> Result<StreamState, StreamError> {
        self.streams.stream_state(name).await
    }

    /// Returns the name of the NATS server that leads the replicas of stream `name` (the one
    /// that orders and acknowledges its writes); `None` for the in-memory bus and a server
    /// outside a cluster. For diagnostics and failover tests.
    ///
    /// # Errors
    ///
    /// As [`Bus::stream_state`].
    pub async fn stream_leader(&self, name: &str) -> Result<Option<String>, StreamError> {
        self.streams.stream_leader(name).await
    }

    /// Publishes `payload` to the stream holding `subject` with `Nats-Msg-Id: msg_id` and
    /// waits until the stream has stored it. A message with the same `msg_id` within the
    /// stream's duplicate window is not stored again; the ack then says `duplicate`.
    ///
    /// # Errors
    ///
    /// [`DurablePublishError::InvalidSubject`]/[`DurablePublishError::InvalidHeader`] for a
    /// malformed subject, header or empty `msg_id`; [`DurablePublishError::NoStream`] when no
    /// stream stores `subject`; [`DurablePublishError::Unconfirmed`] when no ack came in time
    /// (NATS: [`NatsOptions::request_timeout`]) — the message may still have been stored, so
    /// publish it again with the same `msg_id`.
    pub async fn publish_durable(
        &self,
        subject: &str,
        msg_id: &str,
        headers: Headers,
        payload: Bytes,
    ) -> Result<PublishAck, DurablePublishError> {
        self.streams
            .publish_durable(subject, msg_id, headers, payload)
            .await
    }

    /// Opens the durable consumer `durable_name` on `stream` (creating it the first time):
    /// it delivers the stream from its first message, skipping what this durable name has
    /// acknowledged before. Every consumer needs its own name.
    ///
    /// # Errors
    ///
    /// [`StreamError::NotFound`] when there is no such stream; [`StreamError::InvalidSpec`]
    /// for a malformed durable name; [`StreamError::Connection`]/[`StreamError::Rejected`]
    /// from JetStream.
    pub async fn stream_consumer(
        &self,
        stream: &str,
        durable_name: &str,
    ) -> Result<StreamConsumer, StreamError> {
        self.streams.consumer(stream, durable_name).await
    }

    /// Reports whether the bus can deliver right now: always for memory; for NATS, whether
    /// the client is connected (it is not while reconnecting).
    pub fn is_connected(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => true,
            Backend::Nats(connection) => connection.is_connected(),
        }
    }

    /// Returns the NATS server this bus is connected to (the last one while reconnecting);
    /// `None` for the in-memory bus.
    pub fn connected_server(&self) -> Option<ConnectedServer> {
        match &self.backend {
            Backend::Memory(_) => None,
            Backend::Nats(connection) => connection.connected_server(),
        }
    }

    /// Returns `"memory"` or `"nats"`, for logs and readiness reports.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Nats(_) => "nats",
        }
    }

    /// Returns how many messages were dropped because a subscription's buffer was full,
    /// across all subscriptions of this bus (of this connection, for NATS).
    ///
    /// Exact for memory. For NATS it counts the client's slow-consumer events: a lower bound,
    /// because the client discards events when its own event queue is full.
    pub fn dropped_messages(&self) -> u64 {
        match &self.backend {
            Backend::Memory(engine) => engine.dropped_messages(),
            Backend::Nats(connection) => connection.dropped_messages(),
        }
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

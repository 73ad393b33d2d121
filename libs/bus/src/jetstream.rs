//! Durable streams: JetStream on NATS, an append-only log per stream in memory.
//!
//! Both backends keep the same contract (the tests in `jetstream/tests.rs` run against each):
//!
//! - [`Bus::ensure_stream`](crate::Bus::ensure_stream) creates a stream, or updates an existing
//!   one to the given subjects, duplicate window and maximum age.
//! - [`Bus::publish_durable`](crate::Bus::publish_durable) returns only once the stream has
//!   stored the message, with its sequence. A message whose `msg_id` (`Nats-Msg-Id`) the
//!   stream saw within its duplicate window is not stored again: the ack says `duplicate` and
//!   carries the first copy's sequence (the server's answer on NATS).
//! - [`Bus::stream_consumer`](crate::Bus::stream_consumer) reads a stream from its first
//!   message through a durable consumer; each message is acknowledged explicitly, and a
//!   consumer created again under the same durable name resumes after the acknowledged ones.
//!   Messages an earlier instance received but did not acknowledge come again: at once in
//!   memory, after the ack wait (30 s) on NATS.
//!
//! The memory backend lives as long as the [`Bus`](crate::Bus) and its clones; it forgets
//! everything when the process exits, like the rest of the embedded engine.

mod memory;
mod nats;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;

use crate::Headers;
use crate::error::BoxError;

pub(crate) use memory::MemoryStreams;

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageKind {
    /// On disk: survives a server restart. The default.
    #[default]
    File,
    /// In the server's memory: faster, lost when the server restarts.
    Memory,
}

/// What [`Bus::ensure_stream`](crate::Bus::ensure_stream) creates or updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name: no whitespace, `.`, `*` or `>` (for example `SB_BATCHES`).
    pub name: String,
    /// Concrete subjects or wildcard patterns the stream stores.
    pub subjects: Vec<String>,
    /// How long a `msg_id` is remembered; a second message with the same id within this
    /// window is acknowledged as a duplicate and not stored. Zero leaves the server default
    /// (two minutes on NATS).
    pub duplicate_window: Duration,
    /// Messages older than this are removed; zero keeps them forever. Must not be shorter
    /// than `duplicate_window` when set.
    pub max_age: Duration,
    /// Disk or memory (NATS only; the memory backend always keeps messages in memory).
    pub storage: StorageKind,
}

/// The stream's confirmation that it holds a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    /// The stream that stored the message.
    pub stream: String,
    /// The message's sequence in the stream (the first copy's, for a duplicate).
    pub sequence: u64,
    /// The stream had already stored a message with this `msg_id` within its window.
    pub duplicate: bool,
}

/// A stream's size and sequence range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamState {
    /// Messages in the stream.
    pub messages: u64,
    /// Sequence of the oldest message still stored (0 when the stream never held any).
    pub first_sequence: u64,
    /// Sequence of the newest message ever stored (0 when none).
    pub last_sequence: u64,
}

/// A message read from a stream; call [`StreamMessage::ack`] once it is handled.
#[derive(Debug)]
pub struct StreamMessage {
    /// The subject it was published to.
    pub subject: String,
    /// Its headers (`Nats-Msg-Id` included when it was published with one).
    pub headers: Headers,
    /// Its body.
    pub payload: Bytes,
    /// Its sequence in the stream.
    pub sequence: u64,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    Memory(memory::MemoryAcker),
    Nats(Box<async_nats::jetstream::Message>),
}

impl StreamMessage {
    /// Acknowledges the message, so the consumer's durable name never delivers it again.
    ///
    /// # Errors
    /// [`ConsumeError::Connection`] when NATS did not take the ack.
    pub async fn ack(&self) -> Result<(), ConsumeError> {
        match &self.acker {
            Acker::Memory(acker) => {
                acker.ack(self.sequence);
                Ok(())
            }
            Acker::Nats(message) => message
                .ack()
                .await
                .map_err(|source| ConsumeError::Connection { source }),
        }
    }
}

/// Messages of one stream for one durable consumer, oldest first.
pub struct StreamConsumer {
    inner: ConsumerInner,
}

enum ConsumerInner {
    Memory(memory::Consumer),
    Nats(nats::Consumer),
}

impl StreamConsumer {
    /// Waits for the next message. `None` when the stream was deleted (memory) or the
    /// connection closed for good (NATS).
    pub async fn next(&mut self) -> Option<Result<StreamMessage, ConsumeError>> {
        match &mut self.inner {
            ConsumerInner::Memory(consumer) => consumer.next().await.map(Ok),
            ConsumerInner::Nats(consumer) => consumer.next().await,
        }
    }
}

impl std::fmt::Debug for StreamConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConsumer").finish_non_exhaustive()
    }
}

/// Why a stream could not be created, read or inspected.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The spec breaks a rule (bad name, no subjects, window longer than the maximum age).
    #[error("invalid stream spec: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// No stream has this name.
    #[error("stream {stream} not found")]
    NotFound {
        /// The name asked for.
        stream: String,
    },
    /// The server refused the request (for example a storage change, or subjects another
    /// stream already holds).
    #[error("jetstream refused the request")]
    Rejected {
        /// The server's answer.
        #[source]
        source: BoxError,
    },
    /// JetStream is unreachable or did not answer in time.
    #[error("jetstream unavailable")]
    Connection {
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

/// Why [`Bus::publish_durable`](crate::Bus::publish_durable) got no confirmation. Whatever
/// the variant, the message may still have been stored (the ack can be lost after the write):
/// publish again with the same `msg_id` and the duplicate window sorts it out.
#[derive(Debug, thiserror::Error)]
pub enum DurablePublishError {
    /// The subject is empty, malformed or a wildcard.
    #[error("invalid publish subject {subject:?}")]
    InvalidSubject {
        /// The rejected subject.
        subject: String,
    },
    /// A header name or value (the `msg_id` included) would break the wire framing.
    #[error("invalid header {name:?}")]
    InvalidHeader {
        /// The offending header.
        name: String,
    },
    /// No stream stores this subject.
    #[error("no stream stores subject {subject:?}")]
    NoStream {
        /// The subject.
        subject: String,
    },
    /// The message exceeds the server's maximum payload.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// The stream refused the message (for example it is full).
    #[error("stream refused the message")]
    Rejected {
        /// The server's answer.
        #[source]
        source: BoxError,
    },
    /// No ack arrived in time, the connection is down, or the stream exists but has no
    /// leader at the moment (a cluster electing a new one after losing a node): send the
    /// message again with the same id.
    #[error("no ack from jetstream")]
    Unconfirmed {
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

/// Why a consumer could not deliver or acknowledge a message.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The connection failed, or the server refused the pull or the ack.
    #[error("jetstream consumer failed")]
    Connection {
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

/// The durable-stream side of one bus: the in-memory log, or a JetStream context.
#[derive(Clone)]
pub(crate) enum Streams {
    Memory(std::sync::Arc<MemoryStreams>),
    /// Behind an `Arc`: the context is large and every `Bus` clone carries it. The number is
    /// how many replicas every stream this bus creates or updates gets.
    Nats(std::sync::Arc<async_nats::jetstream::Context>, usize),
}

impl Streams {
    pub(crate) fn memory() -> Self {
        Streams::Memory(std::sync::Arc::new(MemoryStreams::default()))
    }

    /// Builds the JetStream context of `client`. Must run inside a Tokio runtime: the
    /// context spawns its ack handler there.
    pub(crate) fn nats(client: &async_nats::Client, timeout: Duration, replicas: usize) -> Self {
        Streams::Nats(
            std::sync::Arc::new(
                async_nats::jetstream::ContextBuilder::new()
                    .timeout(timeout)
                    .build(client.clone()),
            ),
            replicas.max(1),
        )
    }

    pub(crate) async fn ensure_stream(
        &self,
        spec: &StreamSpec,
    ) -> Result<StreamState, StreamError> {
        check_spec(spec)?;
        match self {
            Streams::Memory(streams) => Ok(streams.ensure(spec)),
            Streams::Nats(context, replicas) => nats::ensure_stream(context, spec, *replicas).await,
        }
    }

    pub(crate) async fn stream_state(&self, stream: &str) -> Result<StreamState, StreamError> {
        match self {
            Streams::Memory(streams) => streams.state(stream),
            Streams::Nats(context, _) => nats::stream_state(context, stream).await,
        }
    }

    pub(crate) async fn stream_leader(&self, stream: &str) -> Result<Option<String>, StreamError> {
        match self {
            Streams::Memory(streams) => streams.state(stream).map(|_| None),
            Streams::Nats(context, _) => nats::stream_leader(context, stream).await,
        }
    }

    pub(crate) async fn publish_durable(
        &self,
        subject: &str,
        msg_id: &str,
        mut headers: Headers,
        payload: Bytes,
    ) -> Result<PublishAck, DurablePublishError> {
        headers.insert(protocol::envelope::HEADER_MSG_ID, msg_id);
        crate::message::check_publishable(subject, &headers).map_err(|problem| match problem {
            crate::message::Unpublishable::Subject => DurablePublishError::InvalidSubject {
                subject: subject.to_owned(),
            },
            crate::message::Unpublishable::Header(name) => {
                DurablePublishError::InvalidHeader { name }
            }
        })?;
        if msg_id.is_empty() {
            return Err(DurablePublishError::InvalidHeader {
                name: protocol::envelope::HEADER_MSG_ID.to_owned(),
            });
        }
        match self {
            Streams::Memory(streams) => streams.publish(subject, msg_id, headers, payload),
            Streams::Nats(context, _) => nats::publish(context, subject, headers, payload).await,
        }
    }

    pub(crate) async fn consumer(
        &self,
        stream: &str,
        durable_name: &str,
    ) -> Result<StreamConsumer, StreamError> {
        if !is_valid_name(durable_name) {
            return Err(StreamError::InvalidSpec {
                reason: format!(
                    "durable name {durable_name:?} is empty or has whitespace, '.', '*' or '>'"
                ),
            });
        }
        let inner = match self {
            Streams::Memory(streams) => {
                ConsumerInner::Memory(memory::Consumer::open(streams, stream, durable_name)?)
            }
            Streams::Nats(context, _) => {
                ConsumerInner::Nats(nats::Consumer::open(context, stream, durable_name).await?)
            }
        };
        Ok(StreamConsumer { inner })
    }
}

/// JetStream's name rule, applied on both backends.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && c != '.' && c != '*' && c != '>')
}

fn check_spec(spec: &StreamSpec) -> Result<(), StreamError> {
    let invalid = |reason: String| Err(StreamError::InvalidSpec { reason });
    if !is_valid_name(&spec.name) {
        return invalid(format!(
            "stream name {:?} is empty or has whitespace, '.', '*' or '>'",
            spec.name
        ));
    }
    if spec.subjects.is_empty() {
        return invalid("a stream needs at least one subject".to_owned());
    }
    if let Some(bad) = spec
        .subjects
        .iter()
        .find(|subject| crate::message::check_subscribable(subject, None).is_err())
    {
        return invalid(format!("subject {bad:?} is malformed"));
    }
    if !spec.max_age.is_zero() && spec.duplicate_window > spec.max_age {
        return invalid("duplicate_window must not exceed max_age".to_owned());
    }
    Ok(())
}

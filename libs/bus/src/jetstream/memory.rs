//! The in-memory durable streams of the embedded engine: an append-only log per stream with
//! a duplicate window keyed by message id, and durable consumers that remember their acks.
//!
//! One `std` mutex guards every stream; it is held only for map and queue operations, never
//! across an `.await`. Consumers wait on a per-stream [`Notify`] that publishes wake.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use protocol::pattern;
use tokio::sync::Notify;
// Tokio's clock, so paused-time tests can move the window; the same as `std`'s otherwise.
use tokio::time::Instant;

use super::{
    Acker, DurablePublishError, PublishAck, StreamError, StreamMessage, StreamSpec, StreamState,
};
use crate::Headers;

/// NATS's default duplicate window, used when a spec leaves it at zero.
const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Default)]
pub(crate) struct MemoryStreams {
    streams: Mutex<HashMap<String, Stream>>,
}

struct Stream {
    spec: StreamSpec,
    messages: VecDeque<Stored>,
    last_sequence: u64,
    /// Message id → (sequence, publish time), for ids published within the window.
    recent_ids: HashMap<String, (u64, Instant)>,
    /// The same ids in publish order, so expiry pops from the front.
    recent_order: VecDeque<(Instant, String)>,
    consumers: HashMap<String, AckState>,
    appended: Arc<Notify>,
}

struct Stored {
    sequence: u64,
    subject: String,
    headers: Headers,
    payload: Bytes,
    stored_at: Instant,
}

/// What a durable consumer has acknowledged: everything up to `floor`, plus `above`.
#[derive(Default)]
struct AckState {
    floor: u64,
    above: BTreeSet<u64>,
}

impl AckState {
    fn ack(&mut self, sequence: u64) {
        if sequence <= self.floor {
            return;
        }
        self.above.insert(sequence);
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }

    fn is_acked(&self, sequence: u64) -> bool {
        sequence <= self.floor || self.above.contains(&sequence)
    }
}

impl Stream {
    fn new(spec: StreamSpec) -> Self {
        Self {
            spec,
            messages: VecDeque::new(),
            last_sequence: 0,
            recent_ids: HashMap::new(),
            recent_order: VecDeque::new(),
            consumers: HashMap::new(),
            appended: Arc::new(Notify::new()),
        }
    }

    fn state(&self) -> StreamState {
        StreamState {
            messages: self.messages.len() as u64,
            first_sequence: self.messages.front().map_or(
                self.last_sequence + u64::from(self.last_sequence > 0),
                |m| m.sequence,
            ),
            last_sequence: self.last_sequence,
        }
    }

    fn duplicate_window(&self) -> Duration {
        if self.spec.duplicate_window.is_zero() {
            DEFAULT_DUPLICATE_WINDOW
        } else {
            self.spec.duplicate_window
        }
    }

    /// Forgets ids older than the window and messages older than the maximum age.
    fn expire(&mut self, now: Instant) {
        let window = self.duplicate_window();
        while let Some((at, _)) = self.recent_order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, id)) = self.recent_order.pop_front() {
                // Only remove the entry this record stands for; an id is recorded once.
                self.recent_ids.remove(&id);
            }
        }
        if self.spec.max_age.is_zero() {
            return;
        }
        while self
            .messages
            .front()
            .is_some_and(|m| now.duration_since(m.stored_at) >= self.spec.max_age)
        {
            self.messages.pop_front();
        }
    }
}

impl MemoryStreams {
    // No code panics while holding the lock, so a poisoned lock still holds consistent maps.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Stream>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ensure(&self, spec: &StreamSpec) -> StreamState {
        let mut streams = self.lock();
        let stream = streams
            .entry(spec.name.clone())
            .or_insert_with(|| Stream::new(spec.clone()));
        stream.spec = spec.clone();
        stream.expire(Instant::now());
        stream.state()
    }

    pub(crate) fn state(&self, name: &str) -> Result<StreamState, StreamError> {
        let mut streams = self.lock();
        let stream = streams.get_mut(name).ok_or_else(|| StreamError::NotFound {
            stream: name.to_owned(),
        })?;
        stream.expire(Instant::now());
        Ok(stream.state())
    }

    pub(crate) fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        headers: Headers,
        payload: Bytes,
    ) -> Result<PublishAck, DurablePublishError> {
        let mut streams = self.lock();
        let stream = streams
            .values_mut()
            .find(|stream| {
                stream
                    .spec
                    .subjects
                    .iter()
                    .any(|pattern| pattern::matches(pattern, subject))
            })
            .ok_or_else(|| DurablePublishError::NoStream {
                subject: subject.to_owned(),
            })?;
        let now = Instant::now();
        stream.expire(now);
        if let Some((sequence, _)) = stream.recent_ids.get(msg_id) {
            return Ok(PublishAck {
                stream: stream.spec.name.clone(),
                sequence: *sequence,
                duplicate: true,
            });
        }
        stream.last_sequence += 1;
        let sequence = stream.last_sequence;
        stream.recent_ids.insert(msg_id.to_owned(), (sequence, now));
        stream.recent_order.push_back((now, msg_id.to_owned()));
        stream.messages.push_back(Stored {
            sequence,
            subject: subject.to_owned(),
            headers,
            payload,
            stored_at: now,
        });
        stream.appended.notify_waiters();
        Ok(PublishAck {
            stream: stream.spec.name.clone(),
            sequence,
            duplicate: false,
        })
    }

    fn ack(&self, stream: &str, durable_name: &str, sequence: u64) {
        if let Some(stream) = self.lock().get_mut(stream) {
            stream
                .consumers
                .entry(durable_name.to_owned())
                .or_default()
                .ack(sequence);
        }
    }
}

/// A durable consumer over one in-memory stream.
pub(crate) struct Consumer {
    streams: Arc<MemoryStreams>,
    stream: String,
    durable_name: String,
    /// The next sequence to look at; starts after the durable name's acknowledged prefix.
    cursor: u64,
}

impl Consumer {
    pub(crate) fn open(
        streams: &Arc<MemoryStreams>,
        stream: &str,
        durable_name: &str,
    ) -> Result<Self, StreamError> {
        let mut all = streams.lock();
        let found = all.get_mut(stream).ok_or_else(|| StreamError::NotFound {
            stream: stream.to_owned(),
        })?;
        let floor = found
            .consumers
            .entry(durable_name.to_owned())
            .or_default()
            .floor;
        Ok(Self {
            streams: Arc::clone(streams),
            stream: stream.to_owned(),
            durable_name: durable_name.to_owned(),
            cursor: floor + 1,
        })
    }

    pub(crate) async fn next(&mut self) -> Option<StreamMessage> {
        loop {
            let appended = {
                let mut all = self.streams.lock();
                let stream = all.get_mut(&self.stream)?;
                stream.expire(Instant::now());
                let acks = stream
                    .consumers
                    .entry(self.durable_name.clone())
                    .or_default();
                let found = stream
                    .messages
                    .iter()
                    .find(|m| m.sequence >= self.cursor && !acks.is_acked(m.sequence));
                if let Some(message) = found {
                    self.cursor = message.sequence + 1;
                    return Some(StreamMessage {
                        subject: message.subject.clone(),
                        headers: message.headers.clone(),
                        payload: message.payload.clone(),
                        sequence: message.sequence,
                        acker: Acker::Memory(MemoryAcker {
                            streams: Arc::clone(&self.streams),
                            stream: self.stream.clone(),
                            durable_name: self.durable_name.clone(),
                        }),
                    });
                }
                // Everything up to the newest message is delivered, acknowledged or expired.
                self.cursor = stream.last_sequence + 1;
                Arc::clone(&stream.appended)
            };
            // Register interest, then look once more: a publish between the check above and
            // this registration would otherwise be missed until the next one.
            let notified = appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_message_at_or_after_cursor() {
                continue;
            }
            notified.await;
        }
    }

    fn has_message_at_or_after_cursor(&self) -> bool {
        self.streams
            .lock()
            .get(&self.stream)
            .is_none_or(|stream| stream.last_sequence >= self.cursor)
    }
}

/// Acknowledges messages of one in-memory durable consumer.
pub(crate) struct MemoryAcker {
    streams: Arc<MemoryStreams>,
    stream: String,
    durable_name: String,
}

impl MemoryAcker {
    pub(crate) fn ack(&self, sequence: u64) {
        self.streams.ack(&self.stream, &self.durable_name, sequence);
    }
}

impl fmt::Debug for MemoryAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAcker")
            .field("stream", &self.stream)
            .field("durable_name", &self.durable_name)
            .finish()
    }
}

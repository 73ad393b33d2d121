//! One connection as the rest of the gateway sees it: identity, codec, and a bounded
//! outbound queue that fan-out, heartbeats and commands push into without ever blocking.
//!
//! Overflow policy (realtime fan-out): when the queue is full the new message is dropped and
//! counted; when it *stays* full for `slow_consumer_grace` the connection is closed with
//! `slow_consumer` (4508). The queue is a mutex-guarded `VecDeque` plus a `Notify` instead of an
//! mpsc channel because an idle connection then costs no queue allocation at all, and the
//! writer swaps buffers so steady-state delivery allocates nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use protocol::{Codec, ErrorCode};
use tokio::sync::Notify;

/// Limits every connection's queue shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub slow_consumer_grace: Duration,
}

/// A frame waiting to be written.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub message: Message,
    pub bytes: usize,
    /// Publish time of a room message in Unix ms (0 for control frames); feeds the
    /// publish→write latency histogram.
    pub published_at_ms: u64,
}

/// What [`Conn::push_all`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PushedCounts {
    pub queued: u64,
    pub dropped: u64,
    /// The queue stayed full past the grace period and this push closed the connection.
    pub slow_consumer: bool,
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    Queued,
    /// The queue was full; the frame was dropped.
    Dropped,
    /// The queue stayed full past the grace period and this push closed the connection.
    SlowConsumer,
    /// The connection is already closing; the frame was discarded.
    Closing,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Outgoing>,
    bytes: usize,
    full_since: Option<Instant>,
}

/// Who holds a connection, as the store records it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owner {
    pub user_id: String,
    pub role: &'static str,
    pub node_id: Option<String>,
    pub connected_at_ms: u64,
}

/// The shared handle of one connection.
pub(crate) struct Conn {
    /// Registry key, unique within this gateway.
    pub key: u64,
    /// Public connection id (sent in `connection_established`).
    pub connection_id: String,
    /// The codec negotiated by subprotocol.
    pub codec: Codec,
    /// Who holds it (for the store, and to re-register after a store outage).
    pub owner: Owner,
    limits: QueueLimits,
    queue: Mutex<QueueState>,
    wake: Notify,
    close_reason: OnceLock<ErrorCode>,
    /// Unix ms of the last inbound frame (any frame counts as liveness).
    last_inbound_ms: AtomicU64,
    /// Rooms this connection is subscribed to (for `heartbeat.active_streams`).
    pub room_count: AtomicU32,
    /// Ping round trips and message counts, on node agents' connections only (boxed, so
    /// other connections pay one pointer).
    pub meter: Option<Box<crate::node_links::Meter>>,
}

impl Conn {
    pub fn new(
        key: u64,
        connection_id: String,
        codec: Codec,
        owner: Owner,
        limits: QueueLimits,
    ) -> Self {
        Self {
            key,
            connection_id,
            codec,
            owner,
            limits,
            queue: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            close_reason: OnceLock::new(),
            last_inbound_ms: AtomicU64::new(protocol::time::now_unix_ms()),
            room_count: AtomicU32::new(0),
            meter: None,
        }
    }

    /// Measures this connection as a node agent's (see [`crate::node_links`]).
    pub fn metered(mut self) -> Self {
        self.meter = Some(Box::new(crate::node_links::Meter::new()));
        self
    }

    /// Returns the store's record of this connection on gateway `gateway_id`.
    pub fn record(&self, gateway_id: &str) -> store::ConnectionRecord {
        store::ConnectionRecord {
            connection_id: self.connection_id.clone(),
            gateway_id: gateway_id.to_owned(),
            user_id: self.owner.user_id.clone(),
            role: self.owner.role.to_owned(),
            node_id: self.owner.node_id.clone(),
            connected_at_ms: self.owner.connected_at_ms,
        }
    }

    /// Queues a frame without blocking; see the module docs for the overflow policy.
    pub fn push(&self, outgoing: Outgoing) -> PushOutcome {
        if self.close_reason.get().is_some() {
            return PushOutcome::Closing;
        }
        let counts = self.enqueue(std::iter::once(outgoing));
        if counts.slow_consumer {
            PushOutcome::SlowConsumer
        } else if counts.dropped > 0 {
            PushOutcome::Dropped
        } else {
            PushOutcome::Queued
        }
    }

    /// Queues clones of `frames`, in order, under one lock and with at most one wake-up;
    /// each frame that does not fit is handled as [`Conn::push`] handles it.
    pub fn push_all(&self, frames: &[Outgoing]) -> PushedCounts {
        self.enqueue(frames.iter().cloned())
    }

    /// Queues `frames` under one lock, dropping those that do not fit; closes the connection
    /// as a slow consumer once the queue has stayed full past the grace period. Wakes the
    /// writer only when the queue goes from empty to non-empty: it drains everything per
    /// wake-up.
    fn enqueue(&self, frames: impl Iterator<Item = Outgoing>) -> PushedCounts {
        let mut counts = PushedCounts::default();
        if self.close_reason.get().is_some() {
            return counts;
        }
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let was_empty = queue.items.is_empty();
        let mut full_since = None;
        for frame in frames {
            let full = queue.items.len() >= self.limits.max_messages
                || queue.bytes + frame.bytes > self.limits.max_bytes;
            if full {
                full_since = Some(*queue.full_since.get_or_insert_with(Instant::now));
                counts.dropped += 1;
                continue;
            }
            queue.full_since = None;
            queue.bytes += frame.bytes;
            queue.items.push_back(frame);
            counts.queued += 1;
        }
        let now_empty = queue.items.is_empty();
        drop(queue);
        if let Some(full_since) = full_since
            && full_since.elapsed() >= self.limits.slow_consumer_grace
        {
            // Only the push that closes the connection reports it, so concurrent pushes
            // (several rooms, conflated slots) count one slow consumer once.
            counts.slow_consumer = self.close(ErrorCode::SlowConsumer);
            return counts;
        }
        if was_empty && !now_empty {
            self.wake.notify_one();
        }
        counts
    }

    /// Moves every queued frame into `batch` (which must be empty), keeping both buffers'
    /// capacity so steady-state delivery does not allocate.
    pub fn take_queued(&self, batch: &mut VecDeque<Outgoing>) {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::swap(&mut queue.items, batch);
        queue.bytes = 0;
    }

    /// Returns how many frames are waiting.
    pub fn queued_len(&self) -> usize {
        self.queue
            .lock()
            .map(|queue| queue.items.len())
            .unwrap_or(0)
    }

    /// Asks the connection to close with `reason`; the first reason wins. Returns whether this
    /// call was the first (the one whose reason the connection closes with).
    pub fn close(&self, reason: ErrorCode) -> bool {
        let first = self.close_reason.set(reason).is_ok();
        if first {
            self.wake.notify_one();
        }
        first
    }

    /// Returns the close reason, once closing was requested.
    pub fn close_reason(&self) -> Option<ErrorCode> {
        self.close_reason.get().copied()
    }

    /// Waits until there is something to write or a close was requested.
    pub async fn wait_for_work(&self) {
        self.wake.notified().await;
    }

    /// Records inbound activity.
    pub fn touch(&self) {
        self.last_inbound_ms
            .store(protocol::time::now_unix_ms(), Ordering::Relaxed);
    }

    /// Returns the Unix ms of the last inbound frame.
    pub fn last_inbound_ms(&self) -> u64 {
        self.last_inbound_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(max_messages: usize, grace: Duration) -> Conn {
        let limits = QueueLimits {
            max_messages,
            max_bytes: 1 << 20,
            slow_consumer_grace: grace,
        };
        Conn::new(1, "c".into(), Codec::Json, Owner::default(), limits)
    }

    fn frame() -> Outgoing {
        Outgoing {
            message: Message::Text("x".into()),
            bytes: 1,
            published_at_ms: 0,
        }
    }

    #[test]
    fn full_queue_drops_then_closes_after_grace() {
        let conn = conn(2, Duration::ZERO);
        assert_eq!(conn.push(frame()), PushOutcome::Queued);
        assert_eq!(conn.push(frame()), PushOutcome::Queued);
        assert_eq!(conn.push(frame()), PushOutcome::SlowConsumer);
        assert_eq!(conn.close_reason(), Some(ErrorCode::SlowConsumer));
        assert_eq!(conn.push(frame()), PushOutcome::Closing);
    }

    #[test]
    fn full_queue_within_grace_only_drops() {
        let conn = conn(1, Duration::from_secs(60));
        assert_eq!(conn.push(frame()), PushOutcome::Queued);
        assert_eq!(conn.push(frame()), PushOutcome::Dropped);
        assert_eq!(conn.close_reason(), None);
        let mut batch = VecDeque::new();
        conn.take_queued(&mut batch);
        assert_eq!(batch.len(), 1);
        assert_eq!(conn.push(frame()), PushOutcome::Queued);
    }

    #[test]
    fn byte_limit_counts_as_full() {
        let limits = QueueLimits {
            max_messages: 100,
            max_bytes: 10,
            slow_consumer_grace: Duration::from_secs(60),
        };
        let conn = Conn::new(1, "c".into(), Codec::Json, Owner::default(), limits);
        let big = Outgoing {
            message: Message::Text("x".into()),
            bytes: 8,
            published_at_ms: 0,
        };
        assert_eq!(conn.push(big), PushOutcome::Queued);
        let big = Outgoing {
            message: Message::Text("x".into()),
            bytes: 8,
            published_at_ms: 0,
        };
        assert_eq!(conn.push(big), PushOutcome::Dropped);
    }

    #[test]
    fn push_all_queues_in_order_drops_overflow_and_closes_after_grace() {
        let patient = conn(3, Duration::from_secs(60));
        let frames: Vec<Outgoing> = (0..5)
            .map(|i| Outgoing {
                message: Message::Text(i.to_string().into()),
                bytes: 1,
                published_at_ms: 0,
            })
            .collect();
        let counts = patient.push_all(&frames[..2]);
        assert_eq!(
            (counts.queued, counts.dropped, counts.slow_consumer),
            (2, 0, false)
        );
        let counts = patient.push_all(&frames[2..]);
        assert_eq!(
            (counts.queued, counts.dropped, counts.slow_consumer),
            (1, 2, false)
        );
        let mut batch = VecDeque::new();
        patient.take_queued(&mut batch);
        let texts: Vec<String> = batch
            .iter()
            .map(|outgoing| match &outgoing.message {
                Message::Text(text) => text.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, ["0", "1", "2"]);

        let impatient = conn(1, Duration::ZERO);
        let counts = impatient.push_all(&frames);
        assert_eq!(
            (counts.queued, counts.dropped, counts.slow_consumer),
            (1, 4, true)
        );
        assert_eq!(impatient.close_reason(), Some(ErrorCode::SlowConsumer));
        assert_eq!(impatient.push_all(&frames), PushedCounts::default());
    }

    #[test]
    fn first_close_reason_wins() {
        let conn = conn(1, Duration::ZERO);
        conn.close(ErrorCode::HeartbeatTimeout);
        conn.close(ErrorCode::SlowConsumer);
        assert_eq!(conn.close_reason(), Some(ErrorCode::HeartbeatTimeout));
    }
}

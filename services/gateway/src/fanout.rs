//! Bus subscription → sessions. The gateway holds one bus subscription on `sb.room.<room>`
//! per room with at least one local subscriber, and drops it when the last one leaves.
//!
//! Each bus message is decoded once and encoded at most once per codec; the same bytes
//! (reference-counted) go to every member's queue. Pushing never blocks (see
//! `session::conn`), so one slow client never delays the bus reader or the other members.
//!
//! Members that asked for a minimum interval are kept apart from the others (see
//! `conflate`): the plain members' path costs one extra atomic load per batch, and a
//! conflated member costs the dispatch one reference swap per message.
//!
//! A subscription the bus ends is made again; a room whose subscription cannot be kept is
//! given up and its members closed `unavailable` (see `recover`).
//!
//! A member joining a room of `gateway.retained_rooms` starts with the room's latest message
//! (see `retained`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bus::Bus;
use futures_util::FutureExt;
use protocol::{Codec, RoomEnvelope, RoomMessage, RoomName, Subjects};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use self::recover::{close_dead_room, resubscribe, run_guarded};
pub(crate) use self::retained::Retained;
use crate::conflate::{Delivery, Slot};
use crate::frames::encode_frame;
use crate::metrics::Metrics;
use crate::session::conn::{Conn, Outgoing};

mod recover;
pub(crate) mod retained;

/// Most bus messages of one room handled as one batch: bounds the delay a burst adds before
/// the first member's wake-up, and the batch's memory.
const DISPATCH_BATCH_MESSAGES: usize = 64;

/// One room with local subscribers.
pub(crate) struct Room {
    name: RoomName,
    members: RwLock<HashMap<u64, Arc<Conn>>>,
    /// Members with a minimum interval, each with its own slot; disjoint from `members`.
    conflated: RwLock<HashMap<u64, Arc<Slot>>>,
    /// `conflated.len()`, read by the dispatch without taking the lock.
    conflated_len: AtomicUsize,
    /// Set once the bus subscription is live (`true`) or failed (`false`).
    subscribed: OnceCell<bool>,
    cancel: CancellationToken,
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("bus subscription failed")]
    Bus,
}

/// The fan-out of one gateway: the rooms with local members, their bus subscriptions and
/// dispatch tasks, with what it needs to run them.
pub(crate) struct FanOut {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    bus: Bus,
    subjects: Subjects,
    pub(crate) metrics: Arc<Metrics>,
    /// Where dispatch and conflation tasks run (the gateway's drain waits for them).
    pub(crate) tasks: TaskTracker,
    /// Cancelled at shutdown: ends every room (each room's token is a child).
    shutdown: CancellationToken,
    /// Room messages queued to clients since the presence writer last took the count.
    delivered_since_flush: AtomicU64,
    /// `messages_out` for room messages, resolved once: the dispatch counts into it every batch.
    room_messages_out: prometheus::IntCounter,
    /// The latest message of each retained room, given to a member as it joins.
    pub(crate) retained: Retained,
}

impl FanOut {
    pub fn new(
        bus: Bus,
        subjects: Subjects,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
        retained: Retained,
    ) -> Self {
        let room_messages_out = metrics.messages_out.with_label_values(&["room"]);
        Self {
            rooms: Mutex::new(HashMap::new()),
            bus,
            subjects,
            metrics,
            tasks,
            shutdown,
            delivered_since_flush: AtomicU64::new(0),
            room_messages_out,
            retained,
        }
    }

    /// Takes the count of room messages queued to clients since the last take.
    pub fn take_delivered(&self) -> u64 {
        self.delivered_since_flush.swap(0, Ordering::Relaxed)
    }

    /// Gives back a count [`FanOut::take_delivered`] took (its store write failed).
    pub fn restore_delivered(&self, delivered: u64) {
        self.delivered_since_flush
            .fetch_add(delivered, Ordering::Relaxed);
    }

    pub(crate) fn count_delivered(&self, delivered: u64) {
        self.room_messages_out.inc_by(delivered);
        self.delivered_since_flush
            .fetch_add(delivered, Ordering::Relaxed);
    }

    fn set_rooms_active(&self, rooms: usize) {
        self.metrics
            .rooms_active
            .set(i64::try_from(rooms).unwrap_or(i64::MAX));
    }

    /// Adds `conn` to `room` with `delivery`, subscribing on the bus first if this is the
    /// room's first local member. Returns once the subscription is live, so a message
    /// published after the client sees `subscribed` is delivered. Joining a room again
    /// changes how the member is delivered to.
    pub async fn join(
        self: &Arc<Self>,
        room_name: &RoomName,
        conn: &Arc<Conn>,
        delivery: Delivery,
    ) -> Result<(), JoinError> {
        let room = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let room = rooms
                .entry(room_name.as_str().to_owned())
                .or_insert_with(|| {
                    Arc::new(Room {
                        name: room_name.clone(),
                        members: RwLock::new(HashMap::new()),
                        conflated: RwLock::new(HashMap::new()),
                        conflated_len: AtomicUsize::new(0),
                        subscribed: OnceCell::new(),
                        cancel: self.shutdown.child_token(),
                    })
                })
                .clone();
            // Insert while holding the map lock so a concurrent last-leave cannot orphan us.
            room.place(self, conn, delivery);
            self.set_rooms_active(rooms.len());
            room
        };
        let live = *room
            .subscribed
            .get_or_init(|| subscribe_room(self.clone(), room.clone()))
            .await;
        if live {
            Ok(())
        } else {
            self.leave(room_name.as_str(), conn.key);
            Err(JoinError::Bus)
        }
    }

    /// Removes a member; the last one out drops the room and its bus subscription.
    pub fn leave(&self, room_name: &str, key: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let Some(room) = rooms.get(room_name) else {
            return;
        };
        let now_empty = {
            let mut members = room.members.write().unwrap_or_else(|p| p.into_inner());
            members.remove(&key);
            room.remove_conflated(key);
            members.is_empty() && room.conflated_len.load(Ordering::Relaxed) == 0
        };
        if now_empty {
            room.cancel.cancel();
            rooms.remove(room_name);
            self.set_rooms_active(rooms.len());
        }
    }

    /// Returns every room with the connection ids of its local members.
    pub fn memberships(&self) -> Vec<(String, Vec<String>)> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .map(|(name, room)| {
                let members = room.members.read().unwrap_or_else(|p| p.into_inner());
                let conflated = room.conflated.read().unwrap_or_else(|p| p.into_inner());
                (
                    name.clone(),
                    members
                        .values()
                        .map(|conn| conn.connection_id.clone())
                        .chain(
                            conflated
                                .values()
                                .map(|slot| slot.connection_id().to_owned()),
                        )
                        .collect(),
                )
            })
            .collect()
    }

    /// Returns local subscriber counts per room.
    pub fn local_counts(&self) -> Vec<(String, usize)> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .map(|(name, room)| {
                (
                    name.clone(),
                    room.members.read().map(|m| m.len()).unwrap_or(0)
                        + room.conflated_len.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

impl Room {
    /// Makes `conn` a member delivered to as `delivery`, replacing how it was delivered to
    /// before (a repeated `subscribe` with the same interval keeps its slot). A new member of
    /// a retained room gets its latest message first: under the member lock, so before
    /// anything the dispatch delivers after it.
    fn place(&self, fanout: &Arc<FanOut>, conn: &Arc<Conn>, delivery: Delivery) {
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
        let latest = fanout.retained.latest(self.name.as_str());
        match delivery {
            Delivery::Every => {
                self.remove_conflated(conn.key);
                let joined = members.insert(conn.key, conn.clone()).is_none();
                if let Some(latest) = latest.filter(|_| joined) {
                    send_latest(fanout, conn, &latest);
                }
            }
            Delivery::Conflated { interval, render } => {
                members.remove(&conn.key);
                let mut conflated = self.conflated.write().unwrap_or_else(|p| p.into_inner());
                if conflated
                    .get(&conn.key)
                    .is_some_and(|slot| slot.matches(interval, render))
                {
                    return;
                }
                let slot = Slot::start(
                    fanout,
                    conn.clone(),
                    interval,
                    render,
                    self.cancel.child_token(),
                );
                if let Some(latest) = &latest {
                    slot.offer(fanout, latest);
                }
                if let Some(previous) = conflated.insert(conn.key, slot) {
                    previous.stop();
                }
                self.conflated_len.store(conflated.len(), Ordering::Relaxed);
            }
        }
    }

    fn remove_conflated(&self, key: u64) {
        if self.conflated_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut conflated = self.conflated.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = conflated.remove(&key) {
            slot.stop();
        }
        self.conflated_len.store(conflated.len(), Ordering::Relaxed);
    }
}

/// Queues a retained room's latest message to a member that just joined.
#[cold]
fn send_latest(fanout: &FanOut, conn: &Conn, latest: &crate::conflate::Held) {
    let (message, published_at_ms) = &**latest;
    if let Some((message, bytes)) = encode_frame(conn.codec, message) {
        let pushed = conn.push_all(&[Outgoing {
            message,
            bytes,
            published_at_ms: *published_at_ms,
        }]);
        fanout.count_delivered(pushed.queued);
    }
}

/// Subscribes the room on the bus and spawns its dispatch task; returns whether it is live.
async fn subscribe_room(fanout: Arc<FanOut>, room: Arc<Room>) -> bool {
    let subject = fanout.subjects.room(&room.name);
    let subscription = match fanout.bus.subscribe(&subject).await {
        Ok(subscription) => subscription,
        Err(error) => {
            warn!(room = %room.name, error = %error, "room subscription failed");
            return false;
        }
    };
    // A flush makes the server register the subscription before `subscribed` goes out.
    if let Err(error) = fanout.bus.flush().await {
        warn!(room = %room.name, error = %error, "bus flush after subscribe failed");
    }
    fanout
        .tasks
        .spawn(run_guarded(fanout.clone(), room.clone(), subscription));
    true
}

/// Delivers the room's bus messages to its members until the room closes, subscribing
/// again when the bus ends the subscription, and closing the room when that fails.
pub(super) async fn run_room(fanout: &FanOut, room: &Arc<Room>, subscription: bus::Subscription) {
    let mut subscription = subscription;
    // Reused across wake-ups; grows only as far as bursts of this room need.
    let mut batch = Vec::new();
    // Ends of the subscription since it last delivered a message.
    let mut ends = 0;
    loop {
        let first = tokio::select! {
            () = room.cancel.cancelled() => break,
            next = subscription.next() => next,
        };
        let Some(first) = first else {
            match resubscribe(fanout, room, &mut ends).await {
                Some(renewed) => {
                    subscription = renewed;
                    continue;
                }
                None => break,
            }
        };
        ends = 0;
        // Whatever else has already arrived goes out with it (a burst becomes one queue
        // push and one wake-up per member).
        batch.clear();
        batch.push(first);
        let mut ended = false;
        while batch.len() < DISPATCH_BATCH_MESSAGES {
            match subscription.next().now_or_never() {
                Some(Some(message)) => batch.push(message),
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        dispatch(fanout, room, &batch);
        if ended {
            match resubscribe(fanout, room, &mut ends).await {
                Some(renewed) => subscription = renewed,
                None => break,
            }
        }
    }
    if !room.cancel.is_cancelled() {
        close_dead_room(fanout, room);
    }
}

/// Frames of a batch of room messages, encoded lazily once per codec.
struct EncodedBatch<'a> {
    messages: &'a [(RoomMessage, u64)],
    json: Option<Vec<Outgoing>>,
    msgpack: Option<Vec<Outgoing>>,
}

impl EncodedBatch<'_> {
    /// Returns the batch's frames in `codec` (messages that cannot be encoded are left out).
    fn frames(&mut self, codec: Codec) -> &[Outgoing] {
        let messages = self.messages;
        let slot = match codec {
            Codec::Json => &mut self.json,
            Codec::MsgPack => &mut self.msgpack,
        };
        slot.get_or_insert_with(|| crate::frames::encode_published(codec, messages))
    }
}

/// Decodes one bus message into the room message members receive and its publish time.
fn decode(metrics: &Metrics, room: &RoomName, payload: &[u8]) -> Option<(RoomMessage, u64)> {
    let envelope: RoomEnvelope = match protocol::envelope::decode_bus(payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            metrics.bad_input.with_label_values(&["bus_envelope"]).inc();
            debug!(room = %room, error = %error, "undecodable room envelope dropped");
            return None;
        }
    };
    #[cfg(feature = "test-util")]
    if envelope.event == crate::test_util::PANIC_EVENT {
        panic!("injected fault in room dispatch");
    }
    let published_at_ms = envelope
        .timestamp
        .as_deref()
        .and_then(|timestamp| humantime::parse_rfc3339_weak(timestamp).ok())
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(0))
        .unwrap_or_else(protocol::time::now_unix_ms);
    let message = RoomMessage {
        event: envelope.event,
        room: room.as_str().to_owned(),
        data: envelope.data,
        timestamp: envelope
            .timestamp
            .unwrap_or_else(protocol::time::now_rfc3339),
        seq: envelope.seq,
        priority: envelope.priority,
    };
    Some((message, published_at_ms))
}

/// Delivers a batch of bus messages (in bus order) to every local member: each member's
/// queue is locked, and its writer woken, once per batch instead of once per message.
fn dispatch(fanout: &FanOut, room: &Room, payloads: &[bus::Message]) {
    let messages: Vec<(RoomMessage, u64)> = payloads
        .iter()
        .filter_map(|message| decode(&fanout.metrics, &room.name, &message.payload))
        .collect();
    if messages.is_empty() {
        return;
    }
    let mut batch = EncodedBatch {
        messages: &messages,
        json: None,
        msgpack: None,
    };
    let (mut delivered, mut dropped, mut slow) = (0u64, 0u64, 0u64);
    let members = room.members.read().unwrap_or_else(|p| p.into_inner());
    for conn in members.values() {
        let pushed = conn.push_all(batch.frames(conn.codec));
        delivered += pushed.queued;
        dropped += pushed.dropped;
        if pushed.slow_consumer {
            slow += 1;
        }
    }
    drop(members);
    if room.conflated_len.load(Ordering::Relaxed) > 0 {
        offer_conflated(fanout, room, messages);
    }
    fanout.count_delivered(delivered);
    if dropped > 0 {
        fanout.metrics.messages_dropped.inc_by(dropped);
    }
    if slow > 0 {
        fanout.metrics.slow_consumer_closes.inc_by(slow);
    }
}

/// Hands a batch to the room's conflated members: one shared copy of each message, each
/// member's slot keeps the newest per event type (see `conflate`). Kept out of line so the
/// plain members' loop in `dispatch` compiles as it did before conflation existed.
#[cold]
#[inline(never)]
fn offer_conflated(fanout: &FanOut, room: &Room, messages: Vec<(RoomMessage, u64)>) {
    let held: Vec<crate::conflate::Held> = messages.into_iter().map(Arc::new).collect();
    let slots = room.conflated.read().unwrap_or_else(|p| p.into_inner());
    for slot in slots.values() {
        for message in &held {
            slot.offer(fanout, message);
        }
    }
}

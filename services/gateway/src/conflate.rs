//! Conflated delivery: one connection's subscription to one room at a minimum interval
//! (`subscribe` with `min_interval_ms`, and seed 003's `/api/v1/ws/v2/power?interval=`).
//!
//! Policy: the subscription holds the newest message of each event type; a held message is
//! replaced by the next one of its type (counted in
//! `switchboard_gateway_messages_conflated_total`). The first message goes out at once;
//! after each delivery the subscription stays quiet for its interval, then delivers what it
//! holds. So a connection gets at most one message per event type per interval, always the
//! newest, never a backlog, and its interval is its own: other members of the room are not
//! affected (deliveries keep to the interval's grid within 5 ms while the room is busy).
//! `error` events (seed 003's instrument faults) are never held back: they are
//! delivered as they arrive, and the values still held are discarded, being older than the
//! error (a reading from before a fault must not follow the fault).
//!
//! Each conflated subscription has one small task (the timer); the bus reader only swaps a
//! reference and wakes it, so a slow or conflated client never slows the room's dispatch,
//! and the plain (non-conflated) members' path is untouched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::RoomMessage;
use protocol::device::{DeviceFault, DeviceReading, EVENT_DATA, EVENT_ERROR};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::fanout::FanOut;
use crate::frames::encode_frame;
use crate::session::conn::{Conn, Outgoing};

/// A room message shared by every conflated member of its room, with its publish time (Unix ms).
pub(crate) type Held = Arc<(RoomMessage, u64)>;

/// Event types one subscription holds at once. Rooms carry a handful; a publisher inventing
/// a new type per message would otherwise grow the slot without bound (the oldest is dropped).
const MAX_HELD_TYPES: usize = 16;

/// A delivery this close to its earliest time counts as on time, and the next one is due a
/// whole interval after that earliest time (not after the delivery): timer lateness stays
/// below this bound instead of accumulating, and no two deliveries are closer than
/// `interval - GRID_SLACK`.
const GRID_SLACK: Duration = Duration::from_millis(5);

/// How a conflated member sees room messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Render {
    /// The protocol's room message `{type, room, data, timestamp, seq?}` in the connection's codec.
    Room,
    /// Seed 003's flat frames: `data` readings and `error` faults with their fields at the
    /// top level; other events are not sent.
    SeedFlat,
}

/// How a member of a room wants its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Every message, through the room's shared fan-out.
    Every,
    /// At most one per event type per `interval`, the newest.
    Conflated { interval: Duration, render: Render },
}

/// One connection's conflated subscription to one room.
pub(crate) struct Slot {
    conn: Arc<Conn>,
    interval: Duration,
    render: Render,
    /// The newest message of each event type, in arrival order of their types.
    held: Mutex<Vec<Held>>,
    wake: Notify,
    cancel: CancellationToken,
}

impl Slot {
    /// Creates the slot and starts its timer task; it ends when `cancel` is cancelled
    /// ([`Slot::stop`], or the room's subscription ending).
    pub fn start(
        fanout: &Arc<FanOut>,
        conn: Arc<Conn>,
        interval: Duration,
        render: Render,
        cancel: CancellationToken,
    ) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            conn,
            interval,
            render,
            held: Mutex::new(Vec::new()),
            wake: Notify::new(),
            cancel,
        });
        fanout.metrics.conflated_subscriptions.inc();
        let task_slot = slot.clone();
        let task_fanout = fanout.clone();
        fanout.tasks.spawn(async move {
            task_slot.run(&task_fanout).await;
            task_fanout.metrics.conflated_subscriptions.dec();
        });
        slot
    }

    /// Stops the timer task; whatever is held is dropped.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// The member's connection.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// The member's public connection id.
    pub fn connection_id(&self) -> &str {
        &self.conn.connection_id
    }

    /// Whether this slot delivers like `delivery` asks (so a repeated `subscribe` keeps it).
    pub fn matches(&self, interval: Duration, render: Render) -> bool {
        self.interval == interval && self.render == render
    }

    async fn run(&self, fanout: &FanOut) {
        // Deliveries keep to a grid while the room is busy, so timer lateness (about a
        // millisecond a wake-up) does not add up: with a device and a client both at 100 ms, a
        // drifting client would fall a whole reading behind every hundred readings.
        let mut earliest = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                () = self.wake.notified() => {}
            }
            // The quiet period: whatever arrives meanwhile replaces what is held.
            if tokio::time::Instant::now() < earliest {
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep_until(earliest) => {}
                }
            }
            if !self.deliver_held(fanout) {
                continue;
            }
            let delivered_at = tokio::time::Instant::now();
            earliest = if delivered_at.saturating_duration_since(earliest) <= GRID_SLACK {
                earliest + self.interval
            } else {
                delivered_at + self.interval
            };
        }
    }

    /// Takes a message published to the room (called by the room's dispatch, never blocks
    /// for long: one uncontended lock, plus one encode for an `error`).
    pub fn offer(&self, fanout: &FanOut, message: &Held) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if message.0.event == EVENT_ERROR {
            let superseded = held.len() as u64;
            held.clear();
            // Delivered under the lock, so a tick running now cannot put an older value after it.
            self.deliver(fanout, message);
            drop(held);
            if superseded > 0 {
                fanout.metrics.messages_conflated.inc_by(superseded);
            }
            return;
        }
        let replaced =
            if let Some(slot) = held.iter_mut().find(|slot| slot.0.event == message.0.event) {
                *slot = message.clone();
                true
            } else if held.len() >= MAX_HELD_TYPES {
                held.remove(0);
                held.push(message.clone());
                true
            } else {
                held.push(message.clone());
                false
            };
        drop(held);
        if replaced {
            fanout.metrics.messages_conflated.inc();
        }
        self.wake.notify_one();
    }

    /// Delivers and clears what is held; returns whether anything was.
    fn deliver_held(&self, fanout: &FanOut) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_empty() {
            return false;
        }
        for message in held.drain(..) {
            self.deliver(fanout, &message);
        }
        true
    }

    fn deliver(&self, fanout: &FanOut, message: &Held) {
        let (room_message, published_at_ms) = &**message;
        let frame = match self.render {
            Render::Room => encode_frame(self.conn.codec, room_message),
            Render::SeedFlat => match seed_flat_frame(room_message) {
                Some(flat) => encode_frame(self.conn.codec, &flat),
                None => {
                    fanout
                        .metrics
                        .bad_input
                        .with_label_values(&["device_message"])
                        .inc();
                    debug!(room = %room_message.room, event = %room_message.event, "room message has no seed 003 frame; not sent");
                    None
                }
            },
        };
        let Some((frame, bytes)) = frame else {
            return;
        };
        let outcome = self.conn.push(Outgoing {
            message: frame,
            bytes,
            published_at_ms: *published_at_ms,
        });
        match outcome {
            crate::session::conn::PushOutcome::Queued => fanout.count_delivered(1),
            crate::session::conn::PushOutcome::Dropped => fanout.metrics.messages_dropped.inc(),
            crate::session::conn::PushOutcome::SlowConsumer => {
                fanout.metrics.slow_consumer_closes.inc();
            }
            crate::session::conn::PushOutcome::Closing => {}
        }
    }
}

/// Seed 003's frame for a device room's message: a reading's or fault's fields flat, with
/// `type` in front. `None` for other events and for data that is not a reading or fault.
pub(crate) fn seed_flat_frame(message: &RoomMessage) -> Option<Value> {
    match message.event.as_str() {
        EVENT_DATA => serde_json::from_value::<DeviceReading>(message.data.clone())
            .ok()
            .map(|reading| reading.flat_frame()),
        EVENT_ERROR => serde_json::from_value::<DeviceFault>(message.data.clone())
            .ok()
            .map(|fault| fault.flat_frame()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(event: &str, data: Value) -> RoomMessage {
        RoomMessage {
            event: event.to_owned(),
            room: "devices.opm-1.m4".to_owned(),
            data,
            timestamp: "2026-01-01T00:00:00Z".to_owned(),
            seq: None,
            priority: None,
        }
    }

    #[test]
    fn seed_frames_are_flat_and_other_events_are_left_out() {
        let reading = json!({
            "timestamp": 1_700_000_000.25, "module": 4, "wavelength_nm": 1310.0, "unit": "dBm",
            "ch1_power": -17.85, "ch2_power": -21.56, "ch3_power": 6.94, "ch4_power": -60.12,
            "device_id": "opm-1"
        });
        let Some(frame) = seed_flat_frame(&message(EVENT_DATA, reading)) else {
            panic!("a reading has a flat frame");
        };
        assert_eq!(frame["type"], "data");
        assert_eq!(frame["ch3_power"], json!(6.94));
        assert!(frame.get("data").is_none());
        let fault = json!({
            "message": "Hardware temporarily unavailable", "timestamp": "2026-01-01T00:00:00Z",
            "recoverable": true, "error_count": 2, "device_id": "opm-1", "module": 4
        });
        let Some(frame) = seed_flat_frame(&message(EVENT_ERROR, fault)) else {
            panic!("a fault has a flat frame");
        };
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["error_count"], 2);
        assert!(seed_flat_frame(&message("device_status", json!({}))).is_none());
        assert!(seed_flat_frame(&message(EVENT_DATA, json!({"module": "x"}))).is_none());
    }
}

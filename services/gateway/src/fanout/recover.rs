//! A room whose bus subscription ends: subscribed again (backing off), or given up with its
//! members closed `unavailable` — never left in the room map as a room that delivers nothing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use protocol::ErrorCode;
use tracing::{debug, error, info, warn};

use super::{FanOut, Room};
use crate::session::conn::Conn;

/// Runs the room's dispatch task ([`super::run_room`]); a panic in it (a bug) would leave a
/// room that delivers nothing, so the room is closed like a dead one.
pub(super) async fn run_guarded(
    fanout: Arc<FanOut>,
    room: Arc<Room>,
    subscription: bus::Subscription,
) {
    let dispatching = AssertUnwindSafe(super::run_room(&fanout, &room, subscription));
    if let Err(panic) = dispatching.catch_unwind().await {
        let message = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        error!(room = %room.name, panic = %message, "room dispatch panicked");
        if !room.cancel.is_cancelled() {
            close_dead_room(&fanout, &room);
        }
    }
    debug!(room = %room.name, "room subscription closed");
}

/// How often a room's subscription may end (or fail to be made again) in a row, without a
/// message in between, before the room is given up.
const RESUBSCRIBE_ATTEMPTS: u32 = 5;
/// Wait before the first new subscription; doubled per further attempt.
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(50);

/// The bus ended the room's subscription (NATS does when its connection closes for good):
/// subscribe again, backing off, so the members keep receiving (what was published in the
/// gap is lost, as for any core NATS subscriber). `None` when the room is closing, or when
/// the subscription keeps ending or cannot be made: the caller then closes the room.
pub(super) async fn resubscribe(
    fanout: &FanOut,
    room: &Room,
    ends: &mut u32,
) -> Option<bus::Subscription> {
    let subject = fanout.subjects.room(&room.name);
    loop {
        *ends += 1;
        if *ends > RESUBSCRIBE_ATTEMPTS {
            warn!(room = %room.name, "room subscription keeps ending; closing the room");
            return None;
        }
        warn!(room = %room.name, attempt = *ends, "room subscription ended; subscribing again");
        let delay = RESUBSCRIBE_BACKOFF * 2u32.pow(*ends - 1);
        tokio::select! {
            () = room.cancel.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        match fanout.bus.subscribe(&subject).await {
            Ok(subscription) => {
                if let Err(error) = fanout.bus.flush().await {
                    debug!(room = %room.name, error = %error, "bus flush after resubscribe failed");
                }
                info!(room = %room.name, "room subscribed again");
                return Some(subscription);
            }
            Err(error) => warn!(room = %room.name, error = %error, "room subscription failed"),
        }
    }
}

/// Gives up a room whose subscription cannot be kept: it leaves the room map (a later
/// `subscribe` to it starts afresh) and its members are closed with `unavailable`, so their
/// clients reconnect and subscribe again instead of waiting on a room that never delivers.
pub(super) fn close_dead_room(fanout: &FanOut, room: &Arc<Room>) {
    {
        let mut rooms = fanout.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if rooms
            .get(room.name.as_str())
            .is_some_and(|current| Arc::ptr_eq(current, room))
        {
            rooms.remove(room.name.as_str());
            fanout.set_rooms_active(rooms.len());
        }
    }
    // Out of the map, so no member is added any more: these are all of them.
    room.cancel.cancel();
    let members: Vec<Arc<Conn>> = room
        .members
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    let conflated: Vec<Arc<Conn>> = room
        .conflated
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|slot| slot.conn().clone())
        .collect();
    warn!(
        room = %room.name,
        members = members.len() + conflated.len(),
        "room given up; closing its members with unavailable"
    );
    for conn in members.iter().chain(&conflated) {
        conn.close(ErrorCode::Unavailable);
    }
}

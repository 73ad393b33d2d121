//! The latest message of the rooms in `gateway.retained_rooms` (by default the four periodic
//! monitoring streams: `nodes`, `tasks`, `metrics`, `resources`), kept so a new subscriber
//! starts with the current state instead of waiting up to one publisher interval (15 s for
//! `resources`) for the next one.
//!
//! Each gateway keeps its own copy, from its own bus subscription on each retained room held
//! for its whole life, whether or not a local client is subscribed: the gateway stays
//! stateless (a restarted one has the latest of every stream after one interval), and a room
//! with members costs nothing more on its delivery path. A joining member gets the copy under
//! the room's member lock, before any message dispatched after it, so it never goes back in
//! time; it may see the latest message twice when that message was in flight as it joined.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::RoomName;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{FanOut, decode};
use crate::conflate::Held;

/// Wait before subscribing again after the bus ended or refused a retained room's subscription.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// The latest message of each retained room.
#[derive(Default)]
pub(crate) struct Retained {
    latest: HashMap<String, Mutex<Option<Held>>>,
}

impl Retained {
    /// Keeps the latest message of each room in `rooms` (names that are not valid room names
    /// were refused by the configuration check and are skipped).
    pub fn new(rooms: &[String]) -> Self {
        Self {
            latest: rooms
                .iter()
                .filter(|room| RoomName::parse(room).is_ok())
                .map(|room| (room.clone(), Mutex::new(None)))
                .collect(),
        }
    }

    /// The latest message of `room`, if it is retained and one has arrived.
    pub fn latest(&self, room: &str) -> Option<Held> {
        let slot = self.latest.get(room)?;
        slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keep(&self, room: &str, message: Held) {
        if let Some(slot) = self.latest.get(room) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
        }
    }

    fn rooms(&self) -> impl Iterator<Item = &String> {
        self.latest.keys()
    }
}

/// Holds a bus subscription on every retained room until `stop`, keeping each one's latest
/// message. A subscription the bus ends or refuses is made again a second later.
pub(crate) async fn run(fanout: Arc<FanOut>, stop: CancellationToken) {
    let rooms: Vec<RoomName> = fanout
        .retained
        .rooms()
        .filter_map(|room| RoomName::parse(room).ok())
        .collect();
    let followers: Vec<_> = rooms
        .into_iter()
        .map(|room| follow(fanout.clone(), room, stop.clone()))
        .collect();
    futures_util::future::join_all(followers).await;
}

async fn follow(fanout: Arc<FanOut>, room: RoomName, stop: CancellationToken) {
    let subject = fanout.subjects.room(&room);
    while !stop.is_cancelled() {
        let mut subscription = match fanout.bus.subscribe(&subject).await {
            Ok(subscription) => subscription,
            Err(error) => {
                warn!(room = %room, error = %error, "retained room subscription failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RESUBSCRIBE_DELAY) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = subscription.next() => next,
            };
            let Some(message) = next else {
                debug!(room = %room, "retained room subscription ended; subscribing again");
                break;
            };
            if let Some(decoded) = decode(&fanout.metrics, &room, &message.payload) {
                fanout.retained.keep(room.as_str(), Arc::new(decoded));
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::RoomMessage;

    fn held(event: &str) -> Held {
        Arc::new((
            RoomMessage {
                event: event.into(),
                room: "nodes".into(),
                data: serde_json::json!({}),
                timestamp: "2026-12-02T00:00:00Z".into(),
                seq: None,
                priority: None,
            },
            0,
        ))
    }

    #[test]
    fn keeps_the_latest_message_of_retained_rooms_only() {
        let retained = Retained::new(&["nodes".into(), "not a room!".into()]);
        assert_eq!(retained.rooms().collect::<Vec<_>>(), ["nodes"]);
        assert!(retained.latest("nodes").is_none());
        retained.keep("nodes", held("first"));
        retained.keep("nodes", held("second"));
        retained.keep("tasks", held("ignored"));
        retained.keep("not a room!", held("ignored"));
        assert!(retained.latest("not a room!").is_none());
        assert_eq!(
            retained.latest("nodes").map(|m| m.0.event.clone()),
            Some("second".into())
        );
        assert!(retained.latest("tasks").is_none());
    }
}

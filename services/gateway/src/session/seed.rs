//! Sessions of seed 003's compatibility endpoints: the same session as `/api/ws/connect`
//! (heartbeats, drain with `reconnect`, token expiry, slow-consumer policy), with no greeting,
//! and only `ping` accepted from the client.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auth::Claims;
use protocol::{Codec, ErrorCode, RoomName};
use tracing::Instrument;

use super::{Kind, Session, Socket};
use crate::conflate::{Delivery, Render};
use crate::presence::PresenceOp;
use crate::state::Shared;

/// Runs a seed 003 health connection: heartbeats, and `pong` for each `ping`.
pub(crate) fn run_health<S: Socket>(
    shared: Arc<Shared>,
    socket: S,
    claims: Claims,
) -> impl Future<Output = ()> + Send {
    let session = Session::new(shared.clone(), socket, claims, Codec::Json, Kind::Health);
    let span = session.span();
    let key = session.conn.key;
    shared.registry.seed_connections.insert(key);
    async move {
        session.run().await;
        shared.registry.seed_connections.remove(key);
    }
    .instrument(span)
}

/// Runs a seed 003 instrument stream: the connection joins `room` conflated at `interval`
/// with seed 003's flat frames, then lives like any session (heartbeats, drain, expiry).
pub(crate) fn run_power<S: Socket>(
    shared: Arc<Shared>,
    socket: S,
    claims: Claims,
    room: RoomName,
    interval: Duration,
) -> impl Future<Output = ()> + Send {
    let mut session = Session::new(shared.clone(), socket, claims, Codec::Json, Kind::Power);
    let span = session.span();
    async move {
        shared.metrics.device_streams.inc();
        shared.registry.seed_connections.insert(session.conn.key);
        let delivery = Delivery::Conflated {
            interval,
            render: Render::SeedFlat,
        };
        match shared.fanout.join(&room, &session.conn, delivery).await {
            Ok(()) => {
                session.rooms.insert(room.as_str().to_owned());
                session.conn.room_count.store(1, Ordering::Relaxed);
                shared.presence.submit(
                    PresenceOp::Join {
                        connection_id: session.conn.connection_id.clone(),
                        room: room.as_str().to_owned(),
                    },
                    &shared.metrics,
                );
            }
            // The session's first turn sends the error and closes.
            Err(_) => {
                session.conn.close(ErrorCode::Unavailable);
            }
        }
        let key = session.conn.key;
        session.run().await;
        shared.registry.seed_connections.remove(key);
        shared.metrics.device_streams.dec();
    }
    .instrument(span)
}

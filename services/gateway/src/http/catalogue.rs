//! `GET /api/ws/streams` (the stream catalogue of [`protocol::streams::CATALOGUE`] with this
//! gateway's subscriber counts) and the informational `POST /api/ws/subscribe|unsubscribe`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use protocol::RoomName;
use protocol::room::STANDARD_ROOMS;
use protocol::streams::{CATALOGUE, stream_of_room};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::Shared;

/// The six streams with their event types and the publisher's default intervals, then any
/// custom room this gateway has subscribers in.
pub(crate) async fn streams(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let local: BTreeMap<String, usize> = shared.fanout.local_counts().into_iter().collect();
    let mut streams: Vec<Value> = CATALOGUE
        .iter()
        .map(|stream| {
            json!({
                "room": stream.room,
                "event": stream.event,
                "interval_ms": stream.default_interval_ms,
                "description": stream.description,
                "local_subscribers": local.get(stream.room).copied().unwrap_or(0),
            })
        })
        .collect();
    for (room, count) in local
        .iter()
        .filter(|(room, _)| stream_of_room(room).is_none())
    {
        streams.push(json!({
            "room": room,
            "event": null,
            "interval_ms": null,
            "description": "custom room",
            "local_subscribers": count,
        }));
    }
    Json(json!({ "streams": streams }))
}

/// Body of the informational `POST /api/ws/subscribe` and `/unsubscribe` (seed 001).
#[derive(Debug, Deserialize)]
pub(crate) struct RoomsRequest {
    rooms: Vec<String>,
}

/// Explains how to (un)subscribe and which of the given rooms are valid names.
pub(crate) async fn subscription_info(Json(request): Json<RoomsRequest>) -> Json<Value> {
    let (valid, invalid): (Vec<String>, Vec<String>) = request
        .rooms
        .into_iter()
        .partition(|room| RoomName::parse(room).is_ok());
    Json(json!({
        "valid_rooms": valid,
        "invalid_rooms": invalid,
        "how": "send {\"type\":\"subscribe\",\"rooms\":[...]} or {\"type\":\"unsubscribe\",\"rooms\":[...]} on /api/ws/connect",
        "available_rooms": STANDARD_ROOMS,
    }))
}

//! Client ↔ server messages of the WebSocket protocol (ARCHITECTURE.md, seed 001).
//!
//! Every message is a map with a `type` field. Server → client room messages carry the
//! publisher's event name as `type` (`node_status_update`, `alert`, …), so they are a type of
//! their own ([`RoomMessage`]) next to the fixed control messages ([`ServerMessage`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;

/// A message a client sends to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Joins rooms; `since` maps a room to the last `seq` the client saw, for recovery;
    /// `min_interval_ms` asks for conflated delivery of these rooms.
    Subscribe {
        /// Room names to join.
        rooms: Vec<String>,
        /// Last sequence number seen per room (rooms with history only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<BTreeMap<String, u64>>,
        /// Conflation: this connection gets at most one message of each event type per room
        /// every `min_interval_ms`, always the newest, never a backlog (`error` events are
        /// never held back). Absent or `0`: every message. Otherwise at least
        /// [`MIN_DELIVERY_INTERVAL_MS`] and at most the gateway's configured maximum. It applies
        /// to every room of this message; a later `subscribe` of a room sets its rate anew.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_interval_ms: Option<u64>,
    },
    /// Leaves rooms.
    Unsubscribe {
        /// Room names to leave.
        rooms: Vec<String>,
    },
    /// Application-level ping; answered with `pong`.
    Ping,
    /// Publishes an event to a room (only where the token's `publish` claim allows).
    Publish {
        /// Target room.
        room: String,
        /// Event name; becomes the room message's `type`.
        event: String,
        /// Event payload.
        #[serde(default)]
        data: Value,
    },
    /// A node agent's state report (seed 000).
    NodeState(NodeState),
    /// A node's answer to a `command`.
    Ack(Ack),
    /// Replaces the connection's token before it expires: the gateway verifies `token`
    /// (same `sub` and `node_id` as the connection's), moves the connection's expiry to the
    /// new `exp`, leaves the rooms the new token no longer allows, and answers `refreshed`.
    /// A refused token is answered with an `error` carrying its code; the connection keeps
    /// its old token and still ends at the old expiry.
    Refresh {
        /// The new token (a compact JWT).
        token: String,
    },
}

/// A node's state report (seed 000): what the node agent sends every interval and on change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeState {
    /// The reporting node; must equal the token's `node_id`.
    pub node_id: String,
    /// The node's layer in the system (free-form, e.g. `edge`, `core`).
    #[serde(default)]
    pub layer: String,
    /// Number of updates the node has applied.
    #[serde(default)]
    pub update_count: u64,
    /// When the node last synchronised (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Items transferred at the last sync.
    #[serde(default)]
    pub last_sync_count: u64,
    /// Node-specific current data.
    #[serde(default)]
    pub current_data: Value,
    /// Recent operations, newest last (bounded by the agent).
    #[serde(default)]
    pub operation_log: Vec<Value>,
}

/// A node's answer to a command, matched by `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Ack {
    /// The command id being answered.
    pub id: String,
    /// Whether the command succeeded.
    #[serde(default = "default_true")]
    pub ok: bool,
    /// Result payload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Failure description, if `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A control message the gateway sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every accepted connection.
    ConnectionEstablished {
        /// This connection's id.
        connection_id: String,
        /// The gateway instance holding the connection.
        server_id: String,
        /// How often the server sends heartbeats; clients treat 2× this without frames as dead.
        heartbeat_interval_ms: u64,
        /// Server time (RFC 3339).
        timestamp: String,
    },
    /// Confirms the rooms a `subscribe` joined.
    Subscribed {
        /// Rooms now joined.
        rooms: Vec<String>,
        /// For rooms with history: whether the gap since `since` was fully recovered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    /// Confirms the rooms an `unsubscribe` left, or tells the client the gateway left rooms
    /// for it (then `reason` says why: `forbidden` after a `refresh` whose token no longer
    /// allows them).
    Unsubscribed {
        /// Rooms now left.
        rooms: Vec<String>,
        /// Set only when the gateway left the rooms on its own, not at the client's request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ErrorCode>,
    },
    /// Answer to an accepted `refresh`: the connection now runs on the new token.
    Refreshed {
        /// The new token's expiry, seconds since the Unix epoch.
        exp: u64,
    },
    /// Answer to `ping`.
    Pong {
        /// Server time (RFC 3339).
        timestamp: String,
    },
    /// Periodic server heartbeat (seed 003).
    Heartbeat {
        /// Server time (RFC 3339).
        timestamp: String,
        /// Rooms this connection is subscribed to.
        active_streams: u64,
    },
    /// An error; `recoverable` says whether the connection stays usable.
    Error {
        /// Stable error code from `proto/error-codes.md`.
        code: ErrorCode,
        /// Short public reason.
        message: String,
        /// Whether the client may carry on.
        recoverable: bool,
        /// The room the error concerns, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Server time (RFC 3339).
        timestamp: String,
    },
    /// Asks the client to reconnect (elsewhere) after `retry_after` seconds.
    Reconnect {
        /// Why the server asks.
        reason: String,
        /// Seconds to wait before reconnecting (jittered per connection).
        retry_after: f64,
    },
    /// A command for a node agent; answer with `ack {id}`.
    Command {
        /// Command id to echo in the `ack`.
        id: String,
        /// Command name (`ping`, `set_interval`, …).
        name: String,
        /// Command parameters.
        #[serde(default)]
        params: Value,
    },
}

/// Names of control messages; room events may not reuse them, so clients can dispatch on `type`.
pub const RESERVED_TYPES: [&str; 16] = [
    "connection_established",
    "subscribed",
    "unsubscribed",
    "refreshed",
    "pong",
    "heartbeat",
    "error",
    "reconnect",
    "command",
    "subscribe",
    "unsubscribe",
    "ping",
    "publish",
    "node_state",
    "ack",
    "refresh",
];

/// Shortest per-connection delivery interval (`subscribe.min_interval_ms`, and seed 003's
/// `interval` on `/api/v1/ws/v2/power`), in milliseconds: 20 deliveries per second.
pub const MIN_DELIVERY_INTERVAL_MS: u64 = 50;

/// Longest accepted event name, in bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 64;

/// Reports whether `event` may be used as a room message `type`: snake-case-ish ASCII, not reserved.
pub fn is_valid_event_name(event: &str) -> bool {
    !event.is_empty()
        && event.len() <= MAX_EVENT_NAME_BYTES
        && event
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !RESERVED_TYPES.contains(&event)
}

/// A message delivered to a room's subscribers: `{type, room, data, timestamp, seq?, priority?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomMessage {
    /// The event name (`node_status_update`, `alert`, …).
    #[serde(rename = "type")]
    pub event: String,
    /// The room it was published to.
    pub room: String,
    /// The event payload.
    #[serde(default)]
    pub data: Value,
    /// When it was published (RFC 3339).
    pub timestamp: String,
    /// Per-room sequence number, for rooms with history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Optional priority (`critical`, `warning`, `info`) for alerts (seed 001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// Anything a client can receive: a control message or a room message.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// A fixed control message.
    Control(ServerMessage),
    /// A room message.
    Room(RoomMessage),
    /// A message without a room: to the user, to this connection, or a broadcast.
    Direct(crate::direct::DirectMessage),
}

impl ServerMessage {
    /// Builds an `error` message with the code's public description.
    pub fn error(code: ErrorCode, room: Option<String>) -> Self {
        ServerMessage::Error {
            code,
            message: code.description().to_owned(),
            recoverable: code.recoverable(),
            room,
            timestamp: crate::time::now_rfc3339(),
        }
    }
}

const CONTROL_TYPES: [&str; 9] = [
    "connection_established",
    "subscribed",
    "unsubscribed",
    "refreshed",
    "pong",
    "heartbeat",
    "error",
    "reconnect",
    "command",
];

#[derive(Deserialize)]
struct TypeProbe {
    #[serde(rename = "type")]
    kind: String,
    /// Only probed for presence: a frame with a `room` is a room message.
    #[serde(default)]
    room: Option<serde::de::IgnoredAny>,
}

impl ServerFrame {
    /// Decodes a frame received from the gateway (used by clients and tests).
    ///
    /// # Errors
    /// Returns [`crate::codec::DecodeError::Malformed`] when the frame is neither a control
    /// message, a room message nor a direct message (no `room`; see [`crate::direct`]).
    pub fn decode(
        codec: crate::codec::Codec,
        bytes: &[u8],
    ) -> Result<Self, crate::codec::DecodeError> {
        let probe: TypeProbe = codec.decode(bytes)?;
        if CONTROL_TYPES.contains(&probe.kind.as_str()) {
            codec.decode(bytes).map(ServerFrame::Control)
        } else if probe.room.is_none() {
            codec.decode(bytes).map(ServerFrame::Direct)
        } else {
            codec.decode(bytes).map(ServerFrame::Room)
        }
    }
}

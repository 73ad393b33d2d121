//! Payloads on the bus: named MessagePack maps any language can produce and read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::{Codec, DecodeError, EncodeError};

/// Header carrying the W3C trace context across the bus.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header JetStream uses to deduplicate messages.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Header naming the gateway that published a message (loop and debugging aid).
pub const HEADER_ORIGIN_SERVER: &str = "Sb-Origin-Server";

/// What a service publishes on `sb.room.<room>`; the room comes from the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomEnvelope {
    /// Event name, delivered as the room message's `type`.
    #[serde(rename = "type")]
    pub event: String,
    /// Event payload.
    #[serde(default)]
    pub data: Value,
    /// Publish time (RFC 3339); the gateway fills it in when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Per-room sequence number, for rooms with history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Optional priority (`critical`, `warning`, `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// A command request on `sb.node.<node_id>.cmd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// Command id; the gateway makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Command name.
    pub name: String,
    /// Command parameters.
    #[serde(default)]
    pub params: Value,
}

/// The reply to a command request: the node's ack, or an error code when there was none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandReply {
    /// The command id.
    pub id: String,
    /// Whether the node reported success.
    pub ok: bool,
    /// The node's result payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The node's failure text, or the gateway's error code (`command_timeout`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Encodes a bus payload as a named MessagePack map.
///
/// # Errors
/// Returns [`EncodeError`] if serde refuses the value.
pub fn encode_bus<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    Codec::MsgPack.encode(value)
}

/// Decodes a bus payload from MessagePack.
///
/// # Errors
/// Returns [`DecodeError::Malformed`] when the payload does not fit `T`.
pub fn decode_bus<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    Codec::MsgPack.decode(bytes)
}

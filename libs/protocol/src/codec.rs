//! JSON and MessagePack codecs and the WebSocket subprotocols that select them.
//!
//! JSON travels in text frames, MessagePack in binary frames. MessagePack is always written
//! as maps with field names (`rmp_serde::to_vec_named`) so any language can read it.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::ErrorCode;
use crate::message::ClientMessage;

/// Subprotocol for JSON text frames (the default).
pub const SUBPROTOCOL_JSON: &str = "switchboard.v1.json";
/// Subprotocol for MessagePack binary frames.
pub const SUBPROTOCOL_MSGPACK: &str = "switchboard.v1.msgpack";

/// A wire encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON in text frames.
    Json,
    /// Named MessagePack maps in binary frames.
    MsgPack,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not valid for the codec, or do not fit the message's shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message has a `type` the receiver does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
}

impl DecodeError {
    /// Returns the client-facing error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Malformed(_) => ErrorCode::InvalidMessage,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
        }
    }
}

/// Why a value could not be encoded (only possible for values that are not maps/structs).
#[derive(Debug, thiserror::Error)]
#[error("encode failed: {0}")]
pub struct EncodeError(String);

#[derive(Deserialize)]
struct TypeProbe {
    #[serde(rename = "type")]
    kind: String,
}

const CLIENT_TYPES: [&str; 7] = [
    "subscribe",
    "unsubscribe",
    "ping",
    "publish",
    "node_state",
    "ack",
    "refresh",
];

impl Codec {
    /// Returns the subprotocol name that selects this codec.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => SUBPROTOCOL_JSON,
            Codec::MsgPack => SUBPROTOCOL_MSGPACK,
        }
    }

    /// Returns the codec a subprotocol name selects, if any.
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name.trim() {
            SUBPROTOCOL_JSON => Some(Codec::Json),
            SUBPROTOCOL_MSGPACK => Some(Codec::MsgPack),
            _ => None,
        }
    }

    /// Encodes any serializable message.
    ///
    /// # Errors
    /// Returns [`EncodeError`] if serde refuses the value (e.g. a map with non-string keys in JSON).
    pub fn encode<T: Serialize>(self, message: &T) -> Result<Vec<u8>, EncodeError> {
        match self {
            Codec::Json => serde_json::to_vec(message).map_err(|e| EncodeError(e.to_string())),
            Codec::MsgPack => {
                rmp_serde::to_vec_named(message).map_err(|e| EncodeError(e.to_string()))
            }
        }
    }

    /// Decodes any deserializable message.
    ///
    /// # Errors
    /// Returns [`DecodeError::Malformed`] when the bytes do not fit `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        match self {
            Codec::Json => {
                serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
            }
            Codec::MsgPack => {
                rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
            }
        }
    }

    /// Decodes a client message, telling an unknown `type` apart from malformed input.
    ///
    /// # Errors
    /// [`DecodeError::UnknownType`] for a well-formed message of an unknown type,
    /// [`DecodeError::Malformed`] for everything else that does not decode.
    pub fn decode_client(self, bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
        match self.decode::<ClientMessage>(bytes) {
            Ok(message) => Ok(message),
            Err(error) => {
                // Only on the error path: probe the type to give a precise code.
                match self.decode::<TypeProbe>(bytes) {
                    Ok(probe) if !CLIENT_TYPES.contains(&probe.kind.as_str()) => {
                        Err(DecodeError::UnknownType(probe.kind))
                    }
                    _ => Err(error),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{RoomMessage, ServerFrame, ServerMessage};

    #[test]
    fn client_messages_round_trip_in_both_codecs() {
        let messages = vec![
            ClientMessage::Subscribe {
                rooms: vec!["nodes".into()],
                since: None,
                min_interval_ms: None,
            },
            ClientMessage::Subscribe {
                rooms: vec!["devices.opm-1.m4".into()],
                since: None,
                min_interval_ms: Some(250),
            },
            ClientMessage::Ping,
            ClientMessage::Refresh {
                token: "a.b.c".into(),
            },
            ClientMessage::Publish {
                room: "chat".into(),
                event: "said".into(),
                data: serde_json::json!({"x": 1}),
            },
        ];
        for codec in [Codec::Json, Codec::MsgPack] {
            for message in &messages {
                let bytes = codec.encode(message).unwrap();
                assert_eq!(&codec.decode_client(&bytes).unwrap(), message);
            }
        }
    }

    #[test]
    fn json_subscribe_matches_seed_shape() {
        let parsed = Codec::Json
            .decode_client(br#"{"type":"subscribe","rooms":["nodes","metrics"]}"#)
            .unwrap();
        assert_eq!(
            parsed,
            ClientMessage::Subscribe {
                rooms: vec!["nodes".into(), "metrics".into()],
                since: None,
                min_interval_ms: None,
            }
        );
    }

    #[test]
    fn unknown_type_is_told_apart_from_garbage() {
        let unknown = Codec::Json
            .decode_client(br#"{"type":"teleport"}"#)
            .unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::UnknownType);
        let garbage = Codec::Json.decode_client(b"{not json").unwrap_err();
        assert_eq!(garbage.code(), ErrorCode::InvalidMessage);
        let wrong_shape = Codec::Json
            .decode_client(br#"{"type":"subscribe","rooms":"nodes"}"#)
            .unwrap_err();
        assert_eq!(wrong_shape.code(), ErrorCode::InvalidMessage);
        let bad_msgpack = Codec::MsgPack.decode_client(&[0xc1, 0x00]).unwrap_err();
        assert_eq!(bad_msgpack.code(), ErrorCode::InvalidMessage);
    }

    #[test]
    fn msgpack_is_written_as_named_maps() {
        let bytes = Codec::MsgPack.encode(&ClientMessage::Ping).unwrap();
        // fixmap of one entry, then the key "type"
        assert_eq!(bytes[0], 0x81);
        assert_eq!(&bytes[2..6], b"type");
    }

    #[test]
    fn server_frames_decode_to_control_or_room() {
        let pong = Codec::Json
            .encode(&ServerMessage::Pong {
                timestamp: "t".into(),
            })
            .unwrap();
        assert!(matches!(
            ServerFrame::decode(Codec::Json, &pong).unwrap(),
            ServerFrame::Control(_)
        ));
        let room = RoomMessage {
            event: "node_status_update".into(),
            room: "nodes".into(),
            data: serde_json::json!({"active_nodes": 3}),
            timestamp: "t".into(),
            seq: None,
            priority: None,
        };
        let bytes = Codec::MsgPack.encode(&room).unwrap();
        assert_eq!(
            ServerFrame::decode(Codec::MsgPack, &bytes).unwrap(),
            ServerFrame::Room(room)
        );
    }
}

//! Encoding messages into WebSocket frames for a connection's codec.

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use protocol::Codec;
use serde::Serialize;
use tracing::warn;

use crate::session::conn::Outgoing;

/// Encodes `message` as a text (JSON) or binary (MessagePack) frame; returns the frame and its size.
pub(crate) fn encode_frame<T: Serialize>(codec: Codec, message: &T) -> Option<(Message, usize)> {
    let bytes = match codec.encode(message) {
        Ok(bytes) => bytes,
        Err(error) => {
            warn!(error = %error, "message cannot be encoded");
            return None;
        }
    };
    let len = bytes.len();
    let frame = match codec {
        // serde_json only ever writes UTF-8, so this conversion cannot fail in practice.
        Codec::Json => Message::Text(Utf8Bytes::from(String::from_utf8(bytes).ok()?)),
        Codec::MsgPack => Message::Binary(Bytes::from(bytes)),
    };
    Some((frame, len))
}

/// Encodes messages with their publish times into queue entries for `codec`; a message that
/// cannot be encoded is left out (and logged).
pub(crate) fn encode_published<T: Serialize>(codec: Codec, messages: &[(T, u64)]) -> Vec<Outgoing> {
    messages
        .iter()
        .filter_map(|(message, published_at_ms)| {
            let (message, bytes) = encode_frame(codec, message)?;
            Some(Outgoing {
                message,
                bytes,
                published_at_ms: *published_at_ms,
            })
        })
        .collect()
}

/// Encodes a control message into a queue entry.
pub(crate) fn control<T: Serialize>(codec: Codec, message: &T) -> Option<Outgoing> {
    encode_frame(codec, message).map(|(message, bytes)| Outgoing {
        message,
        bytes,
        published_at_ms: 0,
    })
}

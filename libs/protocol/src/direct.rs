//! Messages addressed to a user, to one connection, or to every connection (broadcast),
//! rather than to a room: what a service publishes on `sb.user.<sub>`, `sb.conn.<connection_id>`
//! and `sb.broadcast` ([`DirectEnvelope`]), and what the connection receives
//! ([`DirectMessage`]). No `subscribe` is needed: every connection gets what is addressed to
//! its token's `sub`, to its `connection_id`, and every broadcast (filtered by role when the
//! broadcast names one).
//!
//! A `sub` may hold characters a NATS subject token cannot (`.`, `*`, `>`, whitespace): the
//! subject carries it encoded by [`encode_subject_token`] (bytes other than ASCII letters,
//! digits, `-`, `_` and `@` become `%HH`, upper-case hex), so `alice@example.com` is addressed
//! as `sb.user.alice@example%2Ecom`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::{Codec, DecodeError};

/// Longest `sub` a personal message may be addressed to, in bytes (before encoding).
pub const MAX_USER_BYTES: usize = 256;

/// Longest connection id a message may be addressed to, in bytes.
pub const MAX_CONNECTION_ID_BYTES: usize = 128;

/// What a service publishes on `sb.user.<sub>`, `sb.conn.<connection_id>` or `sb.broadcast`;
/// the target comes from the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectEnvelope {
    /// Event name, delivered as the message's `type` (the rules of room events apply).
    #[serde(rename = "type")]
    pub event: String,
    /// Event payload.
    #[serde(default)]
    pub data: Value,
    /// Publish time (RFC 3339); the gateway fills it in when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Broadcasts only: deliver only to connections whose token has this role
    /// (`viewer`, `node`, `device`, `admin`). Absent: every connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A message delivered to a connection without a room: `{type, user, data, timestamp}`,
/// `{type, connection_id, data, timestamp}` or `{type, broadcast: true, data, timestamp}`.
/// Exactly one of `user`, `connection_id` and `broadcast` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// The event name.
    #[serde(rename = "type")]
    pub event: String,
    /// Set on a personal message: the `sub` it was addressed to (the receiver's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Set on a message addressed to one connection: its id (the receiver's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// Set (`true`) on a broadcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<bool>,
    /// The event payload.
    #[serde(default)]
    pub data: Value,
    /// When it was published (RFC 3339).
    pub timestamp: String,
}

/// Whom a [`DirectMessage`] is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connection of a user (`sub`).
    User(String),
    /// One connection.
    Connection(String),
    /// Every connection (of one role, when set).
    Broadcast,
}

impl DirectMessage {
    /// Builds the delivered message for `target` from a bus envelope, stamping it with
    /// `now` when the envelope has no timestamp.
    pub fn from_envelope(
        target: Target,
        envelope: DirectEnvelope,
        now: impl FnOnce() -> String,
    ) -> Self {
        let (user, connection_id, broadcast) = match target {
            Target::User(sub) => (Some(sub), None, None),
            Target::Connection(id) => (None, Some(id), None),
            Target::Broadcast => (None, None, Some(true)),
        };
        DirectMessage {
            event: envelope.event,
            user,
            connection_id,
            broadcast,
            data: envelope.data,
            timestamp: envelope.timestamp.unwrap_or_else(now),
        }
    }
}

/// Decodes a direct envelope from the bus: a JSON map when the payload starts with `{`
/// (so `nats pub sb.user.alice '{"type":"hello"}'` works), named MessagePack otherwise.
///
/// # Errors
/// Returns [`DecodeError::Malformed`] when the payload does not fit [`DirectEnvelope`].
pub fn decode_envelope(payload: &[u8]) -> Result<DirectEnvelope, DecodeError> {
    let first = payload.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'{') {
        Codec::Json.decode(payload)
    } else {
        Codec::MsgPack.decode(payload)
    }
}

fn is_plain_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || byte == b'@'
}

/// Encodes `value` (a `sub`) as one NATS subject token: ASCII letters, digits, `-`, `_` and
/// `@` stay, every other byte (of the UTF-8 form) becomes `%HH` with upper-case hex.
pub fn encode_subject_token(value: &str) -> String {
    let mut token = String::with_capacity(value.len());
    for byte in value.bytes() {
        if is_plain_token_byte(byte) {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// Decodes a token [`encode_subject_token`] made; `None` when it is not one.
pub fn decode_subject_token(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            let hex = token.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else if is_plain_token_byte(byte) {
            decoded.push(byte);
            index += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Reports whether a personal message may be addressed to `sub`: non-empty, at most
/// [`MAX_USER_BYTES`], no control characters.
pub fn is_valid_user(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= MAX_USER_BYTES && !sub.chars().any(char::is_control)
}

/// Reports whether `id` can be a connection id in a subject: non-empty, at most
/// [`MAX_CONNECTION_ID_BYTES`], ASCII letters, digits and `-` only (the gateway's ids are UUIDs).
pub fn is_valid_connection_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CONNECTION_ID_BYTES
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// A broadcast of this `type` is not delivered as a direct message: each connection gets the
/// control frame `reconnect {reason, retry_after}` instead (a maintenance request to
/// reconnect), with `data` read as [`ReconnectRequest`]. Only on `sb.broadcast`; on the other
/// subjects it is a reserved type like any control type.
pub const RECONNECT_EVENT: &str = "reconnect";

/// Longest spread [`ReconnectRequest::within_s`] may ask for, in seconds.
pub const MAX_RECONNECT_WITHIN_S: f64 = 3600.0;

/// The `data` of a broadcast `reconnect`: each connection is told to reconnect after its own
/// random delay in `[0, within_s]`, so a cluster's clients do not all come back at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReconnectRequest {
    /// Why (sent as the `reconnect` frame's `reason`); default `maintenance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Spread of the reconnects in seconds (default 10, at most [`MAX_RECONNECT_WITHIN_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_s: Option<f64>,
}

impl ReconnectRequest {
    /// Default spread of the reconnects, in seconds.
    pub const DEFAULT_WITHIN_S: f64 = 10.0;

    /// Returns the spread to use: the asked one within `[0, MAX_RECONNECT_WITHIN_S]`, or the default.
    pub fn within(&self) -> f64 {
        match self.within_s {
            Some(within) if within.is_finite() && within >= 0.0 => {
                within.min(MAX_RECONNECT_WITHIN_S)
            }
            _ => Self::DEFAULT_WITHIN_S,
        }
    }
}

/// Role names a broadcast may be restricted to (the token roles).
pub const ROLES: [&str; 4] = ["viewer", "node", "device", "admin"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_round_trip_and_never_hold_separators_or_wildcards() {
        for sub in [
            "alice",
            "alice@example.com",
            "a.b*c>d e",
            "100%",
            "zoë",
            "a_b-c",
        ] {
            let token = encode_subject_token(sub);
            assert!(
                !token.contains(['.', '*', '>', ' ']),
                "{sub:?} gave {token:?}"
            );
            assert_eq!(decode_subject_token(&token).as_deref(), Some(sub));
        }
        assert_eq!(
            encode_subject_token("alice@example.com"),
            "alice@example%2Ecom"
        );
        assert_eq!(decode_subject_token("a%2"), None);
        assert_eq!(decode_subject_token("a.b"), None);
    }

    #[test]
    fn envelopes_decode_from_json_and_msgpack() {
        let envelope = DirectEnvelope {
            event: "hello".into(),
            data: serde_json::json!({"n": 1}),
            timestamp: None,
            role: Some("admin".into()),
        };
        let packed = Codec::MsgPack.encode(&envelope).unwrap();
        assert_eq!(decode_envelope(&packed).unwrap(), envelope);
        let json = br#" {"type":"hello","data":{"n":1},"role":"admin"}"#;
        assert_eq!(decode_envelope(json).unwrap(), envelope);
        assert!(decode_envelope(b"{\"data\":1}").is_err());
    }

    #[test]
    fn a_reconnect_request_spread_is_clamped_and_defaults() {
        let asked = |within_s| ReconnectRequest {
            reason: None,
            within_s,
        };
        assert_eq!(asked(None).within(), ReconnectRequest::DEFAULT_WITHIN_S);
        assert_eq!(asked(Some(2.5)).within(), 2.5);
        assert_eq!(asked(Some(1e9)).within(), MAX_RECONNECT_WITHIN_S);
        assert_eq!(
            asked(Some(-1.0)).within(),
            ReconnectRequest::DEFAULT_WITHIN_S
        );
        assert_eq!(
            asked(Some(f64::NAN)).within(),
            ReconnectRequest::DEFAULT_WITHIN_S
        );
    }

    #[test]
    fn a_direct_message_carries_exactly_its_target() {
        let envelope = DirectEnvelope {
            event: "hello".into(),
            data: Value::Null,
            timestamp: None,
            role: None,
        };
        let message = DirectMessage::from_envelope(Target::Broadcast, envelope, || "now".into());
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "hello", "broadcast": true, "data": null, "timestamp": "now"})
        );
        assert!(is_valid_connection_id(
            "6f1c0c1e-3b7a-4b61-9d33-0c4a1d0e2f55"
        ));
        assert!(!is_valid_connection_id("a.b"));
        assert!(!is_valid_user(""));
        assert!(!is_valid_user("a\nb"));
    }
}

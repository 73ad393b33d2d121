//! The claims a Switchboard token carries, and what they allow.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::VerifyError;

/// What kind of client holds the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A dashboard or other reader; the default when a token names no role.
    #[default]
    Viewer,
    /// A monitored node; its token must carry `node_id`.
    Node,
    /// A device feeding readings.
    Device,
    /// An operator; allowed every room and every publish.
    Admin,
}

/// The verified contents of a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The subject (user or node identity); never empty in a verified token.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch; always present in a verified token.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Room patterns (`protocol::pattern` syntax) the holder may subscribe to.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Room patterns the holder may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// The holder's role.
    #[serde(default)]
    pub role: Role,
    /// The node this token speaks for; required when `role` is [`Role::Node`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

/// The latest expiry `expires_at` represents (9999-12-31T23:59:59Z); later values are clamped so
/// the conversion to `SystemTime` cannot overflow.
const MAX_REPRESENTED_EXP: u64 = 253_402_300_799;

impl Claims {
    /// Reports whether the holder may subscribe to `room`: admins always may, everyone else
    /// when one of the `rooms` patterns matches.
    pub fn can_subscribe(&self, room: &str) -> bool {
        self.role == Role::Admin || any_pattern_matches(&self.rooms, room)
    }

    /// Reports whether the holder may publish to `room`: admins always may, everyone else
    /// when one of the `publish` patterns matches.
    pub fn can_publish(&self, room: &str) -> bool {
        self.role == Role::Admin || any_pattern_matches(&self.publish, room)
    }

    /// Returns the expiry as a `SystemTime` (clamped to the year 9999).
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp.min(MAX_REPRESENTED_EXP))
    }

    /// Builds claims from a token's decoded payload, naming the first claim that is missing or
    /// has the wrong shape. Claims this crate does not know (`iss`, `jti`, …) are ignored.
    pub(crate) fn from_payload(payload: &Map<String, Value>) -> Result<Self, VerifyError> {
        let exp: u64 = required(payload, "exp")?;
        let sub: String = required(payload, "sub")?;
        if sub.is_empty() {
            return Err(VerifyError::InvalidClaim("sub"));
        }
        let claims = Claims {
            sub,
            exp,
            iat: optional(payload, "iat")?,
            rooms: optional(payload, "rooms")?.unwrap_or_default(),
            publish: optional(payload, "publish")?.unwrap_or_default(),
            role: optional(payload, "role")?.unwrap_or_default(),
            node_id: optional(payload, "node_id")?,
        };
        if claims.role == Role::Node {
            let node_id = claims
                .node_id
                .as_deref()
                .ok_or(VerifyError::MissingClaim("node_id"))?;
            protocol::room::validate_node_id(node_id)
                .map_err(|_| VerifyError::InvalidClaim("node_id"))?;
        }
        Ok(claims)
    }
}

fn any_pattern_matches(patterns: &[String], room: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| protocol::pattern::matches(pattern, room))
}

fn required<T: DeserializeOwned>(
    payload: &Map<String, Value>,
    name: &'static str,
) -> Result<T, VerifyError> {
    optional(payload, name)?.ok_or(VerifyError::MissingClaim(name))
}

/// Reads one claim; an absent claim and an explicit `null` both read as `None`.
fn optional<T: DeserializeOwned>(
    payload: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<T>, VerifyError> {
    match payload.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(|_| VerifyError::InvalidClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims_with(role: Role, rooms: &[&str], publish: &[&str]) -> Claims {
        Claims {
            sub: "u1".into(),
            exp: 1,
            iat: None,
            rooms: rooms.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            role,
            node_id: None,
        }
    }

    fn payload(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn subscribe_and_publish_follow_their_own_patterns() {
        let claims = claims_with(Role::Viewer, &["nodes", "node.*"], &["alerts.>"]);
        assert!(claims.can_subscribe("nodes"));
        assert!(claims.can_subscribe("node.a"));
        assert!(!claims.can_subscribe("node.a.b"));
        assert!(!claims.can_subscribe("tasks"));
        assert!(!claims.can_publish("nodes"));
        assert!(claims.can_publish("alerts.x.y"));
        assert!(!claims.can_publish("alerts"));
    }

    #[test]
    fn admin_may_do_everything_and_empty_lists_allow_nothing() {
        let admin = claims_with(Role::Admin, &[], &[]);
        assert!(admin.can_subscribe("anything"));
        assert!(admin.can_publish("any.thing"));
        let nobody = claims_with(Role::Device, &[], &[]);
        assert!(!nobody.can_subscribe("nodes"));
        assert!(!nobody.can_publish("nodes"));
    }

    #[test]
    fn expiry_converts_without_overflow() {
        let mut claims = claims_with(Role::Viewer, &[], &[]);
        claims.exp = 10;
        assert_eq!(claims.expires_at(), UNIX_EPOCH + Duration::from_secs(10));
        claims.exp = u64::MAX;
        assert!(claims.expires_at() > UNIX_EPOCH);
    }

    #[test]
    fn payload_errors_name_the_claim() {
        let cases = [
            (json!({"sub": "a"}), VerifyError::MissingClaim("exp")),
            (json!({"exp": 1}), VerifyError::MissingClaim("sub")),
            (
                json!({"exp": 1, "sub": ""}),
                VerifyError::InvalidClaim("sub"),
            ),
            (
                json!({"exp": "1", "sub": "a"}),
                VerifyError::InvalidClaim("exp"),
            ),
            (
                json!({"exp": -1, "sub": "a"}),
                VerifyError::InvalidClaim("exp"),
            ),
            (
                json!({"exp": 1, "sub": 7}),
                VerifyError::InvalidClaim("sub"),
            ),
            (
                json!({"exp": 1, "sub": "a", "rooms": "x"}),
                VerifyError::InvalidClaim("rooms"),
            ),
            (
                json!({"exp": 1, "sub": "a", "role": "root"}),
                VerifyError::InvalidClaim("role"),
            ),
            (
                json!({"exp": 1, "sub": "a", "role": "node"}),
                VerifyError::MissingClaim("node_id"),
            ),
            (
                json!({"exp": 1, "sub": "a", "role": "node", "node_id": "a.b"}),
                VerifyError::InvalidClaim("node_id"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                Claims::from_payload(&payload(value.clone())),
                Err(expected),
                "{value}"
            );
        }
    }

    #[test]
    fn payload_defaults_and_unknown_claims() {
        let claims = Claims::from_payload(&payload(
            json!({"exp": 5, "sub": "a", "iss": "x", "node_id": null, "iat": 2}),
        ))
        .unwrap();
        assert_eq!(claims.role, Role::Viewer);
        assert_eq!(claims.iat, Some(2));
        assert!(claims.rooms.is_empty() && claims.publish.is_empty());
        let node = Claims::from_payload(&payload(
            json!({"exp": 5, "sub": "n", "role": "node", "node_id": "node-1"}),
        ))
        .unwrap();
        assert_eq!(node.node_id.as_deref(), Some("node-1"));
    }
}

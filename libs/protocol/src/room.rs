//! Room names and node ids: the validated names that end up inside bus subjects.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 128;

/// Longest accepted node id, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than its limit.
    #[error("name is longer than {0} bytes")]
    TooLong(usize),
    /// A segment is empty or contains a character outside `[A-Za-z0-9_-]`.
    #[error("name segments must be non-empty and use only A-Z a-z 0-9 _ -")]
    InvalidSegment,
}

fn is_segment_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn validate_segment(segment: &str) -> Result<(), NameError> {
    if segment.is_empty() || !segment.bytes().all(is_segment_char) {
        return Err(NameError::InvalidSegment);
    }
    Ok(())
}

/// A room name: dot-separated segments of `[A-Za-z0-9_-]`, at most 128 bytes.
///
/// Wildcards are not room names; they only appear in permission patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

impl RoomName {
    /// Validates `name` as a room name.
    ///
    /// # Errors
    /// Returns a [`NameError`] naming the first rule the name breaks.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_ROOM_NAME_BYTES {
            return Err(NameError::TooLong(MAX_ROOM_NAME_BYTES));
        }
        name.split('.').try_for_each(validate_segment)?;
        Ok(Self(name.to_owned()))
    }

    /// Returns the name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        RoomName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Validates a node id: one segment of `[A-Za-z0-9_-]`, at most 64 bytes, so it can stand in
/// a subject (`sb.node.<node_id>.cmd`) without adding segments.
///
/// # Errors
/// Returns a [`NameError`] naming the first rule the id breaks.
pub fn validate_node_id(node_id: &str) -> Result<(), NameError> {
    if node_id.is_empty() {
        return Err(NameError::Empty);
    }
    if node_id.len() > MAX_NODE_ID_BYTES {
        return Err(NameError::TooLong(MAX_NODE_ID_BYTES));
    }
    validate_segment(node_id)
}

/// The six rooms of the monitoring streams (seed 001), in the order the dashboard shows them.
pub const STANDARD_ROOMS: [&str; 6] = [
    crate::streams::CATALOGUE[0].room,
    crate::streams::CATALOGUE[1].room,
    crate::streams::CATALOGUE[2].room,
    crate::streams::CATALOGUE[3].room,
    crate::streams::CATALOGUE[4].room,
    crate::streams::CATALOGUE[5].room,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_names_of_allowed_characters() {
        for name in ["nodes", "node.a-1.cpu", "A_b-9", &"x".repeat(128)] {
            assert!(RoomName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_empty_long_wildcard_and_odd_names() {
        assert_eq!(RoomName::parse(""), Err(NameError::Empty));
        assert_eq!(
            RoomName::parse(&"x".repeat(129)),
            Err(NameError::TooLong(128))
        );
        for name in ["a..b", ".a", "a.", "a.*", "a.>", "a b", "ä", "a/b"] {
            assert_eq!(
                RoomName::parse(name),
                Err(NameError::InvalidSegment),
                "{name}"
            );
        }
    }

    #[test]
    fn node_ids_are_single_segments() {
        assert!(validate_node_id("node-1").is_ok());
        assert!(validate_node_id("node.1").is_err());
        assert!(validate_node_id("").is_err());
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<RoomName>("\"ok.room\"").is_ok());
        assert!(serde_json::from_str::<RoomName>("\"bad room\"").is_err());
    }
}

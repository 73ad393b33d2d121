//! Switchboard's wire protocol: the single place where message shapes, codecs, room names,
//! subjects, header names, error codes and close codes are written down.
//!
//! - [`message`]: client ↔ server WebSocket messages ([`ClientMessage`], [`ServerMessage`],
//!   [`RoomMessage`]).
//! - [`codec`]: JSON (text frames) and named MessagePack (binary frames), chosen by subprotocol.
//! - [`room`], [`pattern`]: room-name validation and `*`/`>` wildcard matching.
//! - [`subject`]: the NATS subject map; [`envelope`]: payloads on the bus.
//! - [`direct`]: messages to a user, a connection or everyone ([`DirectMessage`]).
//! - [`device`]: lab instruments (readings, faults, status, the device reader's API).
//! - [`error`]: the closed [`ErrorCode`] set with its close codes and HTTP statuses.
//!
//! This crate does no I/O; `proto/` holds the same protocol as specification, and tests keep
//! the two in step.
#![warn(missing_docs)]

pub mod batch;
pub mod codec;
pub mod device;
pub mod direct;
pub mod envelope;
pub mod error;
pub mod message;
pub mod metrics;
pub mod nodes;
pub mod pattern;
pub mod room;
pub mod streams;
pub mod subject;
pub mod time;

pub use codec::{Codec, DecodeError, EncodeError};
pub use direct::{DirectEnvelope, DirectMessage};
pub use envelope::{CommandReply, CommandRequest, RoomEnvelope};
pub use error::{ErrorCode, close_code};
pub use message::{Ack, ClientMessage, NodeState, RoomMessage, ServerFrame, ServerMessage};
pub use room::{NameError, RoomName};
pub use subject::Subjects;

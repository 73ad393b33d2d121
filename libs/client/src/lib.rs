//! The Switchboard Rust client SDK and the node agent built on it.
//!
//! [`Client`] keeps one WebSocket connection to a gateway alive for as long as you want it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use client::{Client, ClientEvent, Codec, ReconnectPolicy};
//!
//! let client = Client::builder("ws://127.0.0.1:8000/api/ws/connect")
//!     .token("eyJ…")
//!     .codec(Codec::MsgPack)
//!     .reconnect(ReconnectPolicy::default().max_attempts(20))
//!     .build()?;
//! let mut events = client.connect()?;
//! client.subscribe(["nodes", "alerts"]).await?;
//! while let Some(event) = events.recv().await {
//!     if let ClientEvent::Room(message) = event {
//!         println!("{} in {}: {}", message.event, message.room, message.data);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - **State machine**: [`ConnectionState`] `Connecting → Connected → Reconnecting{attempt} →
//!   Disconnected{reason}`, watchable through [`Client::watch_state`].
//! - **Reconnection**: exponential backoff with full jitter ([`ReconnectPolicy`], 1 s doubling
//!   to 30 s by default, optionally a maximum of attempts); a server's `reconnect
//!   {retry_after}` replaces the backoff for the next attempt; token refusals (close codes
//!   4401, 4402, 4403, HTTP 401/403) end in `Disconnected` without retrying.
//! - **Heartbeat watchdog**: no frame at all for `heartbeat_timeout` (60 s by default) means
//!   the connection is dead; after half of it the client sends a `ping` to provoke one.
//! - **Token renewal**: with [`ClientBuilder::token_provider`] the client asks for a token
//!   before every attempt and renews it in-band (`refresh`) at 80 % of its lifetime, so a
//!   connection outlives any number of short-lived tokens (see [`token`]).
//! - **Resubscription**: every room asked for with [`Client::subscribe`] is joined again after
//!   each reconnect, with the last seen `seq` per room for recovery.
//! - **Offline queue**: publishes, node states and acks sent while disconnected wait in a
//!   bounded queue flushed on connect; when it is full the oldest is dropped and counted.
//! - **TLS**: `wss://` uses rustls (ring) with the platform's root store, plus the CAs of
//!   [`ClientBuilder::tls_ca_file`]; a server certificate none of them signed ends the client
//!   with [`DisconnectReason::UntrustedServer`] (see [`tls`]).
//! - **Events**: room messages, commands, errors and state changes arrive on one bounded
//!   [`Events`] stream; when the application falls behind, events are dropped and counted
//!   ([`ClientStats::events_dropped`]) rather than stalling the connection.
//!
//! [`agent`] is the node agent of seed 000 on top of the client: periodic and on-change
//! `node_state` reports, built-in and registered commands answered with `ack`.
//!
//! The crate depends on `protocol` only among Switchboard crates, so using the SDK never pulls
//! in server code.
#![warn(missing_docs)]

pub mod agent;
mod backoff;
mod builder;
mod client;
mod driver;
mod error;
mod event;
mod queue;
mod state;
pub mod tls;
pub mod token;

pub use backoff::ReconnectPolicy;
pub use builder::ClientBuilder;
pub use client::{Client, ClientStats};
pub use error::{BuildError, ClosedError, ConnectError};
pub use event::{ClientEvent, Events, LostReason};
pub use protocol::{Ack, Codec, ErrorCode, NodeState, RoomMessage};
pub use state::{ConnectionState, DisconnectReason};

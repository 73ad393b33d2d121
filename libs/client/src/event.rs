//! What the client reports to the application.

use std::time::Duration;

use protocol::{DirectMessage, ErrorCode, RoomMessage};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::state::ConnectionState;

/// Something the application may want to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A message published to a subscribed room.
    Room(RoomMessage),
    /// A message without a room, needing no subscription: to this client's user (`user` set),
    /// to this connection (`connection_id` set) or to everyone (`broadcast` set).
    Direct(DirectMessage),
    /// A command for this node; answer it with [`crate::Client::ack`] and the same `id`.
    Command {
        /// Command id to echo in the ack.
        id: String,
        /// Command name (`ping`, `set_interval`, …).
        name: String,
        /// Command parameters.
        params: Value,
    },
    /// An `error` frame from the server.
    Error {
        /// Stable error code.
        code: ErrorCode,
        /// Short public reason.
        message: String,
        /// Whether the connection stays usable.
        recoverable: bool,
        /// The room the error concerns, if any.
        room: Option<String>,
    },
    /// The server confirmed joined rooms (after [`crate::Client::subscribe`] and after every
    /// resubscription).
    Subscribed {
        /// Rooms now joined.
        rooms: Vec<String>,
        /// For rooms with history: whether the gap since the last seen `seq` was recovered.
        recovered: Option<bool>,
    },
    /// The server confirmed left rooms, or (with a `reason`) left them on its own: after a
    /// token refresh, `forbidden` rooms the new token no longer allows. Rooms left with a
    /// reason are not joined again on reconnect.
    Unsubscribed {
        /// Rooms now left.
        rooms: Vec<String>,
        /// Why the server left them, when the client did not ask.
        reason: Option<ErrorCode>,
    },
    /// The gateway accepted a token from the provider on the open connection; it now ends
    /// at `exp` unless refreshed again (which the client does by itself).
    TokenRefreshed {
        /// The new token's expiry, seconds since the Unix epoch.
        exp: u64,
    },
    /// The server asked the client to reconnect after `retry_after`; the client will.
    ReconnectRequested {
        /// Why the server asked.
        reason: String,
        /// How long the client waits before its next attempt.
        retry_after: Duration,
    },
    /// The connection was lost; the state says what happens next.
    ConnectionLost(LostReason),
    /// The connection state changed (the same value [`crate::Client::watch_state`] shows).
    StateChanged(ConnectionState),
}

/// Why an established or half-established connection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LostReason {
    /// No frame arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// The server closed the connection with `code`.
    ServerClosed {
        /// The WebSocket close code (e.g. 1001 on drain, 4508 for a slow consumer).
        code: u16,
        /// The close reason text.
        reason: String,
    },
    /// The socket failed or ended without a close frame (TCP reset, EOF).
    Transport(String),
    /// The attempt did not complete (TCP connect, WebSocket upgrade, HTTP error status).
    ConnectFailed(String),
}

/// The stream of [`ClientEvent`]s, returned once by [`crate::Client::connect`].
///
/// It is bounded (see [`crate::ClientBuilder::event_buffer`]); events that do not fit are
/// dropped and counted, so read it promptly. It ends when the client reaches `Disconnected`.
#[derive(Debug)]
pub struct Events {
    pub(crate) events_rx: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// Waits for the next event; `None` once the client is disconnected for good and every
    /// event was read.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.events_rx.recv().await
    }

    /// Returns an event if one is ready.
    ///
    /// # Errors
    /// [`mpsc::error::TryRecvError::Empty`] when none is ready,
    /// [`mpsc::error::TryRecvError::Disconnected`] when the stream ended.
    pub fn try_recv(&mut self) -> Result<ClientEvent, mpsc::error::TryRecvError> {
        self.events_rx.try_recv()
    }

    /// Returns the underlying receiver (e.g. for `tokio_stream::wrappers::ReceiverStream`).
    pub fn into_inner(self) -> mpsc::Receiver<ClientEvent> {
        self.events_rx
    }
}

//! The connection state machine callers can watch.

use protocol::ErrorCode;

/// Where the client's connection stands (seed 003's state machine).
///
/// `Connecting` is the first attempt; `Connected` follows the server's
/// `connection_established`; a lost connection moves to `Reconnecting { attempt: 1 }`, and
/// every failed attempt counts up; `Disconnected` is final.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionState {
    /// The first connection attempt is under way.
    Connecting,
    /// The server greeted the connection; rooms are (re)joined and the offline queue flushed.
    Connected {
        /// The server's id for this connection.
        connection_id: String,
        /// The gateway instance holding it.
        server_id: String,
    },
    /// The connection was lost; attempt `attempt` (1-based) is waiting for its delay or under way.
    Reconnecting {
        /// Attempt number since the last successful connection.
        attempt: u32,
    },
    /// The client stopped for good.
    Disconnected {
        /// Why it stopped.
        reason: DisconnectReason,
    },
}

impl ConnectionState {
    /// Reports whether the state is `Connected`.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }

    /// Reports whether the state is final (`Disconnected`).
    pub fn is_disconnected(&self) -> bool {
        matches!(self, ConnectionState::Disconnected { .. })
    }
}

/// Why a client ended in [`ConnectionState::Disconnected`].
#[derive(Debug, Clone, PartialEq)]
pub enum DisconnectReason {
    /// [`crate::Client::connect`] has not been called yet.
    NotStarted,
    /// The application closed the client ([`crate::Client::close`] or dropping every handle).
    Closed,
    /// The server refused the token or the request; retrying with the same token is pointless.
    Refused {
        /// The WebSocket close code (4401, 4402, 4403), or the HTTP status of a refused upgrade.
        code: u16,
        /// The server's error code from the `error` frame before the close, if one came.
        error: Option<ErrorCode>,
        /// The server's short public reason.
        reason: String,
    },
    /// The reconnect policy's maximum of attempts was used up.
    GaveUp {
        /// Attempts made since the last successful connection.
        attempts: u32,
    },
    /// The URL cannot be connected to at all (e.g. an unknown host or an unsupported scheme).
    InvalidUrl(String),
    /// TLS refused the server's certificate (signed by no trusted CA, for another name,
    /// expired): not the server this client trusts, and retrying with the same trust
    /// settings cannot change that.
    UntrustedServer(String),
}

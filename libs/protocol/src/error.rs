//! The closed set of client-facing error codes, each mapped to one WebSocket close code and
//! one HTTP status. `proto/error-codes.md` is the same table as specification; a test keeps
//! the two in step.

use serde::{Deserialize, Serialize};

/// WebSocket close codes used by the gateway, written down once.
pub mod close_code {
    /// Normal closure (RFC 6455).
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown, drain).
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame was not valid UTF-8 (RFC 6455 "invalid frame payload data").
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message was larger than the configured maximum (RFC 6455 "message too big").
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Unexpected server condition.
    pub const INTERNAL: u16 = 1011;
    /// The server is at its connection cap; try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Malformed or unknown messages kept coming.
    pub const BAD_REQUEST: u16 = 4400;
    /// No token, or a token that failed verification.
    pub const UNAUTHENTICATED: u16 = 4401;
    /// The token expired; the client should fetch a new one before reconnecting.
    pub const TOKEN_EXPIRED: u16 = 4402;
    /// The request is not allowed for this token or origin.
    pub const FORBIDDEN: u16 = 4403;
    /// No pong or frame arrived within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4408;
    /// Too many messages or connections.
    pub const RATE_LIMITED: u16 = 4429;
    /// The outbound queue stayed full; the client reads too slowly.
    pub const SLOW_CONSUMER: u16 = 4508;
}

/// A client-facing error code. The set is closed: internal failures map to [`ErrorCode::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A frame was not valid JSON/MessagePack or did not fit the message's shape.
    InvalidMessage,
    /// The message's `type` is not one the server accepts.
    UnknownType,
    /// A room name broke the naming rules.
    InvalidRoom,
    /// A threshold alert rule set is not valid (unknown op, non-finite threshold, empty or
    /// duplicate name, too many rules, ...).
    InvalidRule,
    /// A frame or message exceeded the size limit.
    MessageTooLarge,
    /// No token was presented.
    TokenMissing,
    /// The token failed verification (signature, algorithm, claims).
    TokenInvalid,
    /// The token's `exp` has passed.
    TokenExpired,
    /// A `refresh` token names another subject (`sub`) or node (`node_id`) than the
    /// connection's token.
    TokenSubjectMismatch,
    /// The token does not allow this room, publish or node.
    Forbidden,
    /// The request's `Origin` is not on the allowlist.
    OriginNotAllowed,
    /// Messages over the per-connection rate limit.
    RateLimited,
    /// New connections over the per-user limit.
    ConnectionRateLimited,
    /// The connection cap of this gateway is reached.
    TooManyConnections,
    /// The client did not keep up with its outbound queue.
    SlowConsumer,
    /// No pong or frame within the heartbeat timeout.
    HeartbeatTimeout,
    /// The gateway is shutting down.
    ShuttingDown,
    /// The addressed node is not connected anywhere in the cluster.
    NodeNotConnected,
    /// The addressed lab device is not configured on any device reader.
    DeviceNotFound,
    /// The addressed node has never reported (or was forgotten after a long silence).
    NodeNotFound,
    /// The node did not answer a command in time.
    CommandTimeout,
    /// The bus or store is unreachable.
    Unavailable,
    /// Unexpected server condition; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// Every code, in table order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::InvalidMessage,
        ErrorCode::UnknownType,
        ErrorCode::InvalidRoom,
        ErrorCode::InvalidRule,
        ErrorCode::MessageTooLarge,
        ErrorCode::TokenMissing,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::TokenSubjectMismatch,
        ErrorCode::Forbidden,
        ErrorCode::OriginNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::ConnectionRateLimited,
        ErrorCode::TooManyConnections,
        ErrorCode::SlowConsumer,
        ErrorCode::HeartbeatTimeout,
        ErrorCode::ShuttingDown,
        ErrorCode::NodeNotConnected,
        ErrorCode::DeviceNotFound,
        ErrorCode::NodeNotFound,
        ErrorCode::CommandTimeout,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// Returns the snake_case wire name.
    pub fn as_str(self) -> &'static str {
        self.spec().0
    }

    /// Returns the WebSocket close code used when this error ends a connection.
    pub fn close_code(self) -> u16 {
        self.spec().1
    }

    /// Returns the HTTP status used when this error answers an HTTP request.
    pub fn http_status(self) -> u16 {
        self.spec().2
    }

    /// Reports whether the client may retry or carry on without changing anything.
    pub fn recoverable(self) -> bool {
        self.spec().3
    }

    /// Returns a short public description, safe to send to any client.
    pub fn description(self) -> &'static str {
        self.spec().4
    }

    fn spec(self) -> (&'static str, u16, u16, bool, &'static str) {
        use close_code as cc;
        match self {
            ErrorCode::InvalidMessage => (
                "invalid_message",
                cc::BAD_REQUEST,
                400,
                true,
                "message is not valid for its codec or shape",
            ),
            ErrorCode::UnknownType => (
                "unknown_type",
                cc::BAD_REQUEST,
                400,
                true,
                "unknown message type",
            ),
            ErrorCode::InvalidRoom => (
                "invalid_room",
                cc::BAD_REQUEST,
                400,
                true,
                "room name is not valid",
            ),
            ErrorCode::InvalidRule => (
                "invalid_rule",
                cc::BAD_REQUEST,
                400,
                true,
                "alert rule is not valid",
            ),
            ErrorCode::MessageTooLarge => (
                "message_too_large",
                cc::MESSAGE_TOO_BIG,
                413,
                false,
                "message exceeds the size limit",
            ),
            ErrorCode::TokenMissing => (
                "token_missing",
                cc::UNAUTHENTICATED,
                401,
                false,
                "no token presented",
            ),
            ErrorCode::TokenInvalid => (
                "token_invalid",
                cc::UNAUTHENTICATED,
                401,
                false,
                "token failed verification",
            ),
            ErrorCode::TokenExpired => (
                "token_expired",
                cc::TOKEN_EXPIRED,
                401,
                false,
                "token has expired",
            ),
            ErrorCode::TokenSubjectMismatch => (
                "token_subject_mismatch",
                cc::FORBIDDEN,
                403,
                true,
                "token is for another subject",
            ),
            ErrorCode::Forbidden => (
                "forbidden",
                cc::FORBIDDEN,
                403,
                true,
                "not allowed for this token",
            ),
            ErrorCode::OriginNotAllowed => (
                "origin_not_allowed",
                cc::FORBIDDEN,
                403,
                false,
                "origin not allowed",
            ),
            ErrorCode::RateLimited => (
                "rate_limited",
                cc::RATE_LIMITED,
                429,
                true,
                "message rate limit exceeded",
            ),
            ErrorCode::ConnectionRateLimited => (
                "connection_rate_limited",
                cc::RATE_LIMITED,
                429,
                false,
                "too many new connections for this user",
            ),
            ErrorCode::TooManyConnections => (
                "too_many_connections",
                cc::TRY_AGAIN_LATER,
                503,
                false,
                "server is at its connection limit",
            ),
            ErrorCode::SlowConsumer => (
                "slow_consumer",
                cc::SLOW_CONSUMER,
                503,
                false,
                "client did not keep up with its messages",
            ),
            ErrorCode::HeartbeatTimeout => (
                "heartbeat_timeout",
                cc::HEARTBEAT_TIMEOUT,
                408,
                false,
                "no heartbeat from client",
            ),
            ErrorCode::ShuttingDown => (
                "shutting_down",
                cc::GOING_AWAY,
                503,
                false,
                "server is shutting down",
            ),
            ErrorCode::NodeNotConnected => (
                "node_not_connected",
                cc::INTERNAL,
                404,
                true,
                "node is not connected",
            ),
            ErrorCode::DeviceNotFound => (
                "device_not_found",
                cc::INTERNAL,
                404,
                true,
                "device is not known",
            ),
            ErrorCode::NodeNotFound => (
                "node_not_found",
                cc::INTERNAL,
                404,
                true,
                "node is not known",
            ),
            ErrorCode::CommandTimeout => (
                "command_timeout",
                cc::INTERNAL,
                504,
                true,
                "node did not answer in time",
            ),
            ErrorCode::Unavailable => (
                "unavailable",
                cc::TRY_AGAIN_LATER,
                503,
                true,
                "a backing service is unavailable",
            ),
            ErrorCode::Internal => ("internal", cc::INTERNAL, 500, true, "internal error"),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn close_codes_are_application_or_standard_codes() {
        for code in ErrorCode::ALL {
            let close = code.close_code();
            assert!(
                (1000..1015).contains(&close) || (4000..5000).contains(&close),
                "{code}"
            );
        }
    }
}

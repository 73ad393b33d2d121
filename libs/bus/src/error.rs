//! Error enums, one per operation family.
//!
//! Backend errors are kept as boxed `#[source]`s so the chain survives for logging while no
//! backend type becomes part of this crate's API.

use std::time::Duration;

/// A boxed backend error, kept only as an error source.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`Bus::connect_nats`](crate::Bus::connect_nats) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL could not be parsed as a NATS server address.
    #[error("invalid nats url {url:?}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The parser's complaint.
        #[source]
        source: BoxError,
    },
    /// The server did not complete the handshake within the connect timeout.
    #[error("nats connect to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL as given.
        url: String,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// The server refused the credentials.
    #[error("nats authentication failed")]
    Authentication {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// TLS could not be set up.
    #[error("nats tls setup failed")]
    Tls {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The server could not be reached (DNS, refused, reset).
    #[error("nats server {url} unreachable")]
    Unreachable {
        /// The URL as given.
        url: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// Why a publish, respond or flush failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The subject is empty, has an empty token or whitespace, or is a wildcard pattern.
    #[error("invalid publish subject {subject:?}")]
    InvalidSubject {
        /// The rejected subject.
        subject: String,
    },
    /// A header name or value would break the wire framing.
    #[error("invalid header {name:?}")]
    InvalidHeader {
        /// The name of the offending header.
        name: String,
    },
    /// The payload plus headers exceed the server's `max_payload`.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// [`Bus::respond`](crate::Bus::respond) was given a message that has no reply subject.
    #[error("message has no reply subject")]
    NoReplySubject,
    /// The connection to the bus failed or was closed.
    #[error("bus connection failed")]
    Connection {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// Why a subscribe failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The subject is empty or has whitespace, an empty token, or a `>` that is not last.
    #[error("invalid subscribe subject {subject:?}")]
    InvalidSubject {
        /// The rejected subject.
        subject: String,
    },
    /// The queue group name is empty or contains whitespace.
    #[error("invalid queue group {queue_group:?}")]
    InvalidQueueGroup {
        /// The rejected queue group name.
        queue_group: String,
    },
    /// The connection to the bus failed or was closed.
    #[error("bus connection failed")]
    Connection {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nothing was subscribed to the subject when the request was published.
    #[error("no responders")]
    NoResponders,
    /// Someone was subscribed, but no reply arrived within the timeout.
    #[error("request timed out")]
    Timeout,
    /// The subject is empty, has an empty token or whitespace, or is a wildcard pattern.
    #[error("invalid request subject {subject:?}")]
    InvalidSubject {
        /// The rejected subject.
        subject: String,
    },
    /// A header name or value would break the wire framing.
    #[error("invalid header {name:?}")]
    InvalidHeader {
        /// The name of the offending header.
        name: String,
    },
    /// The payload plus headers exceed the server's `max_payload`.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The connection to the bus failed or was closed.
    #[error("bus connection failed")]
    Connection {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

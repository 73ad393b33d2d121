//! Errors at the SDK's boundary.

/// Why [`crate::ClientBuilder::build`] refused its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The URL does not start with `ws://` or `wss://`.
    #[error("url must start with ws:// or wss://: {0}")]
    Scheme(String),
    /// The URL cannot be turned into a WebSocket request.
    #[error("url is not valid: {0}")]
    Url(String),
    /// The token contains characters an HTTP header cannot carry.
    #[error("token is not a valid header value")]
    Token,
    /// A duration or capacity is zero where it must be positive.
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    /// The TLS settings cannot be used (CA file unreadable, no trusted root).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Why [`crate::Client::connect`] could not start the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// `connect` was already called on this client (or a clone of it).
    #[error("client already started")]
    AlreadyStarted,
    /// `connect` was called outside a Tokio runtime.
    #[error("no tokio runtime to run the client on")]
    NoRuntime,
}

/// The client has stopped (closed, refused or given up), so it can no longer send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("client is closed")]
pub struct ClosedError;

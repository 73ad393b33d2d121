//! The device reader's boundary errors.

use std::net::SocketAddr;

/// Why the device reader could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The management listener could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bus could not be reached.
    #[error("cannot connect to the bus")]
    Bus(#[source] bus::ConnectError),
    /// The store could not be reached.
    #[error("cannot connect to the store")]
    Store(#[source] store::ConnectError),
    /// The management API or a replica subscription could not subscribe on the bus.
    #[error("cannot subscribe on the bus")]
    Subscribe(#[source] bus::SubscribeError),
}

/// Why the device reader stopped other than by a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The device reader could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A bus subscription ended: the bus connection closed for good.
    #[error("the {0} subscription ended")]
    InputEnded(&'static str),
    /// A background task panicked; the device reader drained and stopped.
    #[error("device reader background {0}")]
    Task(#[source] service::supervise::TaskFailure),
}

impl service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Start(StartError::Config(_)))
    }
}

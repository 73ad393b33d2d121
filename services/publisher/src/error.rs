//! The publisher's boundary errors.

use std::net::SocketAddr;

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The bus could not be reached.
    #[error("cannot connect to the bus")]
    Bus(#[source] bus::ConnectError),
    /// The store could not be reached.
    #[error("cannot connect to the store")]
    Store(#[source] store::ConnectError),
    /// An input subject could not be subscribed to.
    #[error("cannot subscribe to {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// The bus error.
        #[source]
        source: bus::SubscribeError,
    },
    /// The admin listener could not be bound.
    #[error("cannot bind the admin listener on {addr}")]
    AdminBind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Why the publisher stopped other than by a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The publisher could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// An input subscription ended: the bus connection was closed for good.
    #[error("input {subject} ended")]
    InputEnded {
        /// The subject whose subscription ended.
        subject: String,
    },
    /// The admin server failed.
    #[error("admin server failed")]
    Admin(#[source] std::io::Error),
    /// A task panicked (a bug); the publisher drained and stopped.
    #[error("publisher task {task} panicked")]
    TaskPanicked {
        /// The task's name.
        task: String,
        /// The panic.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Start(StartError::Config(_)))
    }
}

//! The aggregator's boundary errors.

use std::net::SocketAddr;

/// Why the aggregator could not start.
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
    /// A subscription could not be made.
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
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Why the aggregator stopped other than by a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The aggregator could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The bus closed the sample subscription (the NATS client was closed).
    #[error("sample subscription ended")]
    SubscriptionEnded,
    /// The bus closed the query subscription (the NATS client was closed).
    #[error("query subscription ended")]
    QueriesEnded,
    /// A background task (query API, admin server) panicked; the aggregator drained.
    #[error("aggregator background {0}")]
    Task(#[source] ::service::supervise::TaskFailure),
}

impl ::service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Start(StartError::Config(_)))
    }
}

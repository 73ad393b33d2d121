//! The gateway's boundary errors.

use std::net::SocketAddr;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The listener could not be bound.
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
    /// The token keys could not be loaded.
    #[error("cannot load token keys")]
    Keys(#[source] auth::KeyError),
    /// The key set of `auth.jwks_url` could not be fetched or holds no usable key.
    #[error("cannot load the key set")]
    Jwks(#[source] auth::JwksError),
    /// `gateway.dashboard_dir` could not be loaded.
    #[error("cannot load the dashboard")]
    Dashboard(#[source] crate::http::DashboardError),
    /// A key file could not be read.
    #[error("cannot read {path}")]
    KeyFile {
        /// The file that was asked for.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Why the gateway stopped other than by a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The gateway could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A background task failed or panicked; the gateway drained and stopped.
    #[error("gateway background {0}")]
    Task(#[source] service::supervise::TaskFailure),
}

impl service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Start(StartError::Config(_)))
    }
}

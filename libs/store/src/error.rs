//! Errors at the store's two boundaries: connecting, and every call after that.
//!
//! Sources are boxed so backend types (`redis::RedisError`) stay out of the public API; the
//! chain survives through `#[source]`.

use std::error::Error as StdError;
use std::time::Duration;

/// A boxed error from a backend, kept as the source of a store error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why [`Store::connect_redis`](crate::Store::connect_redis) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a valid Redis URL.
    #[error("invalid redis url")]
    InvalidUrl(#[source] BoxError),
    /// Redis refused the connection, closed it, or rejected the handshake.
    #[error("redis unavailable")]
    Unavailable(#[source] BoxError),
    /// Redis did not answer within the configured connect timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Why a store call failed. The in-memory backend never fails.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The connection to Redis is down or being re-established, or Redis cannot serve the
    /// call for now (loading its data set, or a replica after a failover).
    #[error("redis unavailable")]
    Unavailable(#[source] BoxError),
    /// Redis did not answer within the configured response timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error (out of memory, a script error, a wrong key type).
    #[error("redis rejected the command")]
    Rejected(#[source] BoxError),
    /// A stored value or a reply did not have the expected shape.
    #[error("corrupt {what} in store")]
    Corrupt {
        /// What could not be read, for example `gateway info`.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Classifies an error from the Redis client by its cause.
    pub(crate) fn from_redis(error: redis::RedisError, response_timeout: Duration) -> Self {
        use redis::{ErrorKind, ServerErrorKind};

        if error.is_timeout() {
            return Self::Timeout(response_timeout);
        }
        match error.kind() {
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => Self::Corrupt {
                what: "redis reply",
                source: Box::new(error),
            },
            ErrorKind::Io
            | ErrorKind::AuthenticationFailed
            | ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown,
            ) => Self::Unavailable(Box::new(error)),
            _ if error.is_connection_dropped() || error.is_unrecoverable_error() => {
                Self::Unavailable(Box::new(error))
            }
            _ => Self::Rejected(Box::new(error)),
        }
    }

    /// Wraps a JSON decoding failure of a stored value.
    pub(crate) fn corrupt(what: &'static str, error: serde_json::Error) -> Self {
        Self::Corrupt {
            what,
            source: Box::new(error),
        }
    }
}

impl ConnectError {
    /// Classifies an error from the Redis client met while connecting.
    pub(crate) fn from_redis(error: redis::RedisError, connect_timeout: Duration) -> Self {
        if error.is_timeout() {
            return Self::Timeout(connect_timeout);
        }
        match error.kind() {
            redis::ErrorKind::InvalidClientConfig => Self::InvalidUrl(Box::new(error)),
            _ => Self::Unavailable(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_timeouts_are_timeouts() {
        let timeout = Duration::from_millis(5);
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            StoreError::from_redis(refused, timeout),
            StoreError::Unavailable(_)
        ));
        let timed_out = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(
            StoreError::from_redis(timed_out, timeout),
            StoreError::Timeout(t) if t == timeout
        ));
    }
}

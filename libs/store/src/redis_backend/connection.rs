//! The connection to Redis: one auto-reconnecting `ConnectionManager` and a deadline on
//! every round trip.
//!
//! The manager's own response timeout does not cover the time a call spends waiting for a
//! pending reconnect, so each round trip is also wrapped in
//! `tokio::time::timeout(response_timeout)`: an outage costs a caller at most that long.
//!
//! The manager reconnects only when a connection reports an I/O error. A Redis that stops
//! answering without closing the socket (a host gone from the network, a frozen process)
//! only ever produces timeouts, so after [`TIMEOUTS_BEFORE_RECONNECT`] timeouts in a row
//! the manager is replaced with a fresh one.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{ConnectError, StoreError};
use crate::types::RedisOptions;

/// Connection attempts per reconnect. The manager makes every call wait for the pending
/// reconnect, so with backoff retries each call during an outage would sit out the whole
/// response timeout. With a single attempt a refused connection fails the waiting calls at
/// once, and the next call starts a new attempt: calls fail fast while Redis is down, and
/// the first call after it is back reconnects.
const RECONNECT_RETRIES: usize = 0;
/// Consecutive timeouts after which the connection is presumed dead and replaced. One or two
/// can be a slow command; three in a row, with nothing succeeding in between, is a dead link.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;

/// A replaceable connection manager plus the deadline applied to each round trip.
pub(crate) struct Connection {
    client: redis::Client,
    manager_config: ConnectionManagerConfig,
    /// Cloned out for each round trip; the lock is never held across an `.await`.
    manager: Mutex<ConnectionManager>,
    consecutive_timeouts: AtomicU32,
    response_timeout: Duration,
}

impl Connection {
    /// Connects to `url` and checks that Redis answers PING.
    pub(crate) async fn open(url: &str, options: &RedisOptions) -> Result<Self, ConnectError> {
        let client =
            redis::Client::open(url).map_err(|error| ConnectError::InvalidUrl(Box::new(error)))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(RECONNECT_RETRIES);
        let connecting = client.get_connection_manager_with_config(manager_config.clone());
        let manager = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_elapsed| ConnectError::Timeout(options.connect_timeout))?
            .map_err(|error| ConnectError::from_redis(error, options.connect_timeout))?;
        let connection = Self {
            client,
            manager_config,
            manager: Mutex::new(manager),
            consecutive_timeouts: AtomicU32::new(0),
            response_timeout: options.response_timeout,
        };
        let ping = redis::cmd("PING");
        let mut handle = connection.handle();
        connection
            .call(ping.query_async::<()>(&mut handle))
            .await
            .map_err(|error| match error {
                StoreError::Timeout(after) => ConnectError::Timeout(after),
                other => ConnectError::Unavailable(Box::new(other)),
            })?;
        Ok(connection)
    }

    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Returns a handle to the current manager, for one round trip.
    pub(crate) fn handle(&self) -> ConnectionManager {
        // Only clones and swaps happen under the lock, neither of which panics, so a
        // poisoned lock still holds a usable manager.
        self.manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Awaits one round trip under the response deadline and classifies its error.
    pub(crate) async fn call<T>(
        &self,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(self.response_timeout, request).await {
            Ok(reply) => {
                reply.map_err(|error| StoreError::from_redis(error, self.response_timeout))
            }
            Err(_elapsed) => Err(StoreError::Timeout(self.response_timeout)),
        };
        if matches!(outcome, Err(StoreError::Timeout(_))) {
            self.count_timeout();
        } else {
            self.consecutive_timeouts.store(0, Ordering::Relaxed);
        }
        outcome
    }

    fn count_timeout(&self) {
        let timeouts = self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if timeouts < TIMEOUTS_BEFORE_RECONNECT {
            return;
        }
        // A lazy manager connects on its first round trip, so nothing waits here.
        let fresh = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config.clone(),
        );
        match fresh {
            Ok(fresh) => {
                *self.manager.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                tracing::warn!(
                    timeouts,
                    "redis stopped answering, replacing the connection"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "redis connection could not be replaced");
            }
        }
    }
}

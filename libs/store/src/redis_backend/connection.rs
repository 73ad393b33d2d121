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
//!
//! Behind Sentinel (`redis+sentinel://`), the primary's address comes from the sentinels. A
//! call that finds the primary gone (connection refused or dropped), read-only (a demoted
//! primary) or silent wakes a task that asks the sentinels again, retrying with a short
//! backoff while the failover is under way, and swaps in a manager for the new primary as
//! soon as one is confirmed. Calls made in between fail within the response timeout, as in
//! any outage.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use settings::SentinelUrl;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::sentinel::{PrimaryLocator, node_address};
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
/// First wait between two sentinel lookups while no primary is confirmed. A failover takes
/// Sentinel's `down-after-milliseconds` plus an election (a few seconds), so short waits
/// find the promoted replica soon after it is promoted.
const LOOKUP_RETRY_MIN: Duration = Duration::from_millis(100);
/// How often the sentinels are asked even when every call succeeds. A primary demoted by a
/// manual failover or cut off by a partition keeps answering until Sentinel reconfigures
/// it (about 10 s in Redis 7); what is written to it meanwhile never reaches the new
/// primary, so the store looks for a new primary this often instead of waiting for that.
/// The check is one `SENTINEL get-master-addr-by-name` over a kept connection.
const PRIMARY_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between two lookups, so that a long outage of every sentinel costs little.
const LOOKUP_RETRY_MAX: Duration = Duration::from_millis(500);

/// A replaceable connection manager plus the deadline applied to each round trip.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    /// Follows failovers behind Sentinel; aborted when the connection is dropped.
    failover_follower: Option<JoinHandle<()>>,
}

struct Shared {
    /// Cloned out for each round trip; the lock is never held across an `.await`.
    current: Mutex<Current>,
    manager_config: ConnectionManagerConfig,
    consecutive_timeouts: AtomicU32,
    response_timeout: Duration,
    /// Woken when a call suggests the primary is gone; only read behind Sentinel.
    primary_suspect: Notify,
    sentinel: bool,
}

/// The node connected to and the manager connected to it.
struct Current {
    client: redis::Client,
    manager: ConnectionManager,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(follower) = &self.failover_follower {
            follower.abort();
        }
    }
}

impl Connection {
    /// Connects to `url` and checks that Redis answers PING. A `redis+sentinel://` URL asks
    /// the sentinels for the primary first and follows its failovers afterwards.
    pub(crate) async fn open(url: &str, options: &RedisOptions) -> Result<Self, ConnectError> {
        let (client, locator) = if SentinelUrl::is_sentinel_url(url) {
            let parsed = SentinelUrl::parse(url)
                .map_err(|error| ConnectError::InvalidUrl(Box::new(error)))?;
            let mut locator = PrimaryLocator::new(&parsed, options.connect_timeout)?;
            let client = locator.locate().await?;
            tracing::info!(
                master_name = locator.master_name(),
                primary = %node_address(&client),
                "redis primary found through sentinel"
            );
            (client, Some(locator))
        } else {
            let client = redis::Client::open(url)
                .map_err(|error| ConnectError::InvalidUrl(Box::new(error)))?;
            (client, None)
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(RECONNECT_RETRIES);
        let connecting = client.get_connection_manager_with_config(manager_config.clone());
        let manager = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_elapsed| ConnectError::Timeout(options.connect_timeout))?
            .map_err(|error| ConnectError::from_redis(error, options.connect_timeout))?;
        let shared = Arc::new(Shared {
            current: Mutex::new(Current { client, manager }),
            manager_config,
            consecutive_timeouts: AtomicU32::new(0),
            response_timeout: options.response_timeout,
            primary_suspect: Notify::new(),
            sentinel: locator.is_some(),
        });
        let failover_follower =
            locator.map(|locator| tokio::spawn(follow_failovers(Arc::clone(&shared), locator)));
        let connection = Self {
            shared,
            failover_follower,
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
        self.shared.response_timeout
    }

    /// Returns a handle to the current manager, for one round trip.
    pub(crate) fn handle(&self) -> ConnectionManager {
        self.shared.lock_current().manager.clone()
    }

    /// Awaits one round trip under the response deadline and classifies its error.
    pub(crate) async fn call<T>(
        &self,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        self.shared.call(request).await
    }
}

impl Shared {
    fn lock_current(&self) -> std::sync::MutexGuard<'_, Current> {
        // Only clones and swaps happen under the lock, neither of which panics, so a
        // poisoned lock still holds a usable manager.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn call<T>(
        &self,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(self.response_timeout, request).await {
            Ok(reply) => {
                reply.map_err(|error| StoreError::from_redis(error, self.response_timeout))
            }
            Err(_elapsed) => Err(StoreError::Timeout(self.response_timeout)),
        };
        match &outcome {
            Err(StoreError::Timeout(_)) => self.count_timeout(),
            Err(StoreError::Unavailable(_)) => {
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                self.suspect_primary();
            }
            _ => self.consecutive_timeouts.store(0, Ordering::Relaxed),
        }
        outcome
    }

    /// Behind Sentinel, has the sentinels asked again for the primary. One stored wake-up
    /// covers any number of failed calls.
    fn suspect_primary(&self) {
        if self.sentinel {
            self.primary_suspect.notify_one();
        }
    }

    /// Connects to `client`'s node from now on, unless it is the node already in use (whose
    /// manager reconnects by itself).
    fn switch_to(&self, client: redis::Client) {
        let mut current = self.lock_current();
        let from = node_address(&current.client);
        let to = node_address(&client);
        if from == to {
            return;
        }
        // A lazy manager connects on its first round trip, so nothing waits here.
        match ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config.clone()) {
            Ok(manager) => {
                *current = Current { client, manager };
                drop(current);
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                tracing::warn!(%from, %to, "redis primary changed, following the failover");
            }
            Err(error) => {
                tracing::warn!(%error, %to, "cannot connect to the new redis primary");
            }
        }
    }

    fn count_timeout(&self) {
        let timeouts = self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if timeouts < TIMEOUTS_BEFORE_RECONNECT {
            return;
        }
        // A frozen primary may also be one Sentinel is failing over.
        self.suspect_primary();
        let mut current = self.lock_current();
        // A lazy manager connects on its first round trip, so nothing waits here.
        let fresh = ConnectionManager::new_lazy_with_config(
            current.client.clone(),
            self.manager_config.clone(),
        );
        match fresh {
            Ok(fresh) => {
                current.manager = fresh;
                drop(current);
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                tracing::warn!(
                    timeouts,
                    "redis stopped answering, replacing the connection"
                );
            }
            Err(error) => {
                drop(current);
                tracing::warn!(%error, "redis connection could not be replaced");
            }
        }
    }
}

/// Waits for calls to suspect the primary (or for the next periodic check), then asks the
/// sentinels until one names a confirmed primary, and switches to it. Runs until the
/// connection is dropped.
async fn follow_failovers(shared: Arc<Shared>, mut locator: PrimaryLocator) {
    loop {
        let suspected = tokio::select! {
            () = shared.primary_suspect.notified() => true,
            () = tokio::time::sleep(PRIMARY_CHECK_INTERVAL) => false,
        };
        if !suspected {
            // The periodic check only asks a sentinel over a kept connection; the full
            // lookup (which connects to the primary to check its role) runs only when the
            // sentinels name another node. Sentinels that do not answer teach nothing.
            let named = locator.named_primary().await;
            let current = node_address(&shared.lock_current().client);
            if named.is_none_or(|named| named == current) {
                continue;
            }
        }
        let mut retry_after = LOOKUP_RETRY_MIN;
        loop {
            match locator.locate().await {
                Ok(client) => {
                    shared.switch_to(client);
                    break;
                }
                Err(error) => {
                    // Expected for the seconds a failover takes; the calls report the outage.
                    tracing::debug!(%error, master_name = locator.master_name(), "no redis primary yet");
                    tokio::time::sleep(retry_after).await;
                    retry_after = (retry_after * 2).min(LOOKUP_RETRY_MAX);
                }
            }
        }
    }
}

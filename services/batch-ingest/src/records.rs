//! Content-hash records: which batches are stored, kept much longer than JetStream's
//! duplicate window, so a batch resent after the window is still recognised.
//!
//! On Redis each record is one key, `<prefix>:batch:<hash hex>`, written with
//! `SET … NX PX <ttl>` (the value is the batch's stream sequence, for debugging) and read
//! with `EXISTS`; Redis expires it. In memory it is a map with expiry times, swept as records
//! are added. `libs/store` has no set-if-absent-with-TTL primitive yet, so this module talks
//! to Redis itself; it belongs in `store` once one exists there.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use protocol::batch::ContentHash;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::error::StepTimeout;

/// Why [`HashRecords::connect_redis`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error("invalid redis url")]
    InvalidUrl(#[source] redis::RedisError),
    /// Redis refused or did not answer.
    #[error("redis unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Redis answered with an error or the connection failed.
    #[error("redis call failed")]
    Redis(#[source] redis::RedisError),
    /// Redis did not answer within this long.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Handle to the content-hash records; clones share one backend.
#[derive(Clone)]
pub struct HashRecords {
    backend: Arc<Backend>,
}

enum Backend {
    Memory(Mutex<MemoryRecords>),
    Redis(RedisRecords),
}

impl fmt::Debug for HashRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashRecords")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl HashRecords {
    /// Returns empty in-memory records, private to this process (the embedded engine).
    pub fn memory() -> Self {
        Self {
            backend: Arc::new(Backend::Memory(Mutex::new(MemoryRecords::default()))),
        }
    }

    /// Connects to Redis at `url`; keys start with `<key_prefix>:batch:`. Every later call
    /// waits at most `response_timeout`.
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`] for a malformed URL, [`ConnectError::Unavailable`] when
    /// Redis does not answer within `response_timeout`.
    pub async fn connect_redis(
        url: &str,
        key_prefix: &str,
        response_timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let client = redis::Client::open(url).map_err(ConnectError::InvalidUrl)?;
        // One attempt per reconnect: a call during an outage fails at once (and the delivery
        // is answered 503) instead of waiting out retries.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(response_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(0);
        let manager = tokio::time::timeout(
            response_timeout,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| ConnectError::Unavailable(Box::new(StepTimeout(response_timeout))))?
        .map_err(|error| ConnectError::Unavailable(Box::new(error)))?;
        let records = Self {
            backend: Arc::new(Backend::Redis(RedisRecords {
                manager,
                key_prefix: format!("{key_prefix}:batch:"),
                response_timeout,
            })),
        };
        records
            .ping()
            .await
            .map_err(|error| ConnectError::Unavailable(Box::new(error)))?;
        Ok(records)
    }

    /// Returns `"memory"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        match *self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Checks that the backend answers.
    ///
    /// # Errors
    /// A [`RecordError`] when Redis is unreachable or slow.
    pub async fn ping(&self) -> Result<(), RecordError> {
        match &*self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(redis) => redis.call(redis::cmd("PING")).await,
        }
    }

    /// Reports whether a batch with this hash was recorded as stored (and has not expired).
    ///
    /// # Errors
    /// A [`RecordError`] when Redis is unreachable or slow.
    pub async fn contains(&self, hash: &ContentHash) -> Result<bool, RecordError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(lock(memory).contains(hash, Instant::now())),
            Backend::Redis(redis) => {
                let mut exists = redis::cmd("EXISTS");
                exists.arg(redis.key(hash));
                let count: u64 = redis.call(exists).await?;
                Ok(count > 0)
            }
        }
    }

    /// Records that the batch with this hash is stored at `sequence`, for `ttl`. Keeps an
    /// existing record (and its expiry) untouched, so two paths racing on one batch agree.
    ///
    /// # Errors
    /// A [`RecordError`] when Redis is unreachable or slow.
    pub async fn record(
        &self,
        hash: &ContentHash,
        sequence: u64,
        ttl: Duration,
    ) -> Result<(), RecordError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                lock(memory).insert(*hash, Instant::now() + ttl);
                Ok(())
            }
            Backend::Redis(redis) => {
                let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let mut set = redis::cmd("SET");
                set.arg(redis.key(hash))
                    .arg(sequence)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms);
                // `OK` when written, nil when a record existed: both mean "recorded".
                let _written: Option<String> = redis.call(set).await?;
                Ok(())
            }
        }
    }
}

fn lock(memory: &Mutex<MemoryRecords>) -> std::sync::MutexGuard<'_, MemoryRecords> {
    // Only map and queue operations happen under the lock; none panics mid-update.
    memory.lock().unwrap_or_else(PoisonError::into_inner)
}

struct RedisRecords {
    manager: ConnectionManager,
    key_prefix: String,
    response_timeout: Duration,
}

impl RedisRecords {
    fn key(&self, hash: &ContentHash) -> String {
        format!("{}{}", self.key_prefix, hash.to_hex())
    }

    async fn call<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, RecordError> {
        let mut connection = self.manager.clone();
        tokio::time::timeout(self.response_timeout, command.query_async(&mut connection))
            .await
            .map_err(|_| RecordError::Timeout(self.response_timeout))?
            .map_err(RecordError::Redis)
    }
}

/// Records with expiry times; `order` lists them by expiry so a sweep pops from the front.
/// Every record has the same TTL within a process, so insertion order is expiry order.
#[derive(Default)]
struct MemoryRecords {
    expiry: HashMap<ContentHash, Instant>,
    order: VecDeque<(Instant, ContentHash)>,
}

impl MemoryRecords {
    fn contains(&mut self, hash: &ContentHash, now: Instant) -> bool {
        self.sweep(now);
        self.expiry.get(hash).is_some_and(|expires| *expires > now)
    }

    fn insert(&mut self, hash: ContentHash, expires: Instant) {
        self.sweep(Instant::now());
        if self.expiry.contains_key(&hash) {
            return;
        }
        self.expiry.insert(hash, expires);
        self.order.push_back((expires, hash));
    }

    fn sweep(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(expires, _)| *expires <= now)
        {
            if let Some((_, hash)) = self.order.pop_front() {
                self.expiry.remove(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::batch::{Batch, GeneratedBatch};

    fn hash(n: u64) -> ContentHash {
        Batch::Generated(GeneratedBatch {
            public_key: "k".into(),
            block_hash: "h".into(),
            block_height: 1,
            nonces: vec![],
            dist: vec![],
            node_id: n,
        })
        .content_hash()
    }

    #[tokio::test(start_paused = true)]
    async fn memory_records_expire_after_their_ttl_and_keep_the_first_expiry() {
        let records = HashRecords::memory();
        let ttl = Duration::from_secs(60);
        assert!(!records.contains(&hash(1)).await.unwrap());
        records.record(&hash(1), 1, ttl).await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        records.record(&hash(1), 2, ttl).await.unwrap();
        records.record(&hash(2), 3, ttl).await.unwrap();
        assert!(records.contains(&hash(1)).await.unwrap());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(!records.contains(&hash(1)).await.unwrap());
        assert!(records.contains(&hash(2)).await.unwrap());
        assert_eq!(records.backend_name(), "memory");
    }
}

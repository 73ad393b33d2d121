//! Every open connection of this gateway, sharded so the heartbeat sweep can visit one
//! shard per tick instead of touching all connections at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::session::conn::Conn;

/// Number of shards; the heartbeat visits one shard per `heartbeat_interval / SHARDS`.
pub(crate) const SHARDS: usize = 16;

pub(crate) struct Connections {
    shards: [Mutex<HashMap<u64, Arc<Conn>>>; SHARDS],
    count: AtomicUsize,
}

impl Connections {
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            count: AtomicUsize::new(0),
        }
    }

    fn shard_of(key: u64) -> usize {
        // Keys are sequential, so the low bits spread connections evenly.
        (key % SHARDS as u64) as usize
    }

    pub fn insert(&self, conn: Arc<Conn>) {
        let shard = &self.shards[Self::shard_of(conn.key)];
        if shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conn.key, conn)
            .is_none()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn remove(&self, key: u64) {
        let shard = &self.shards[Self::shard_of(key)];
        if shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
            .is_some()
        {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Returns a snapshot of one shard's connections.
    pub fn shard(&self, index: usize) -> Vec<Arc<Conn>> {
        self.shards[index % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

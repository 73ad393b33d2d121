//! State shared by every handler and task of one gateway instance.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use auth::Verifier;
use bus::Bus;
use protocol::Subjects;
use settings::Secret;
use store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::connections::{Connections, SHARDS};
use crate::fanout::Rooms;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::session::conn::QueueLimits;

pub(crate) struct Shared {
    pub config: GatewayConfig,
    pub server_id: String,
    pub advertise_url: String,
    pub started_at_ms: u64,
    pub subjects: Subjects,
    pub bus: Bus,
    pub store: Store,
    pub verifier: Verifier,
    /// The key set `auth.jwks_url` names, set once in `bind` after its first fetch.
    pub jwks: std::sync::OnceLock<std::sync::Arc<auth::JwksSource>>,
    pub api_key: Option<Secret>,
    pub metrics: Metrics,
    pub connections: Connections,
    pub rooms: Rooms,
    pub presence: Presence,
    pub queue_limits: QueueLimits,
    /// Set when shutdown begins: readiness turns false and new connections are refused.
    pub draining: AtomicBool,
    /// Cancelled to ask every session to send `reconnect` and close.
    pub sessions_shutdown: CancellationToken,
    /// Owns every session and background task of this gateway.
    pub tasks: TaskTracker,
    pub next_key: AtomicU64,
    /// Room messages queued to clients since the last store flush.
    pub delivered_since_flush: AtomicU64,
    /// Outbound queue depth per connection shard, sampled by the heartbeat sweep.
    pub queued_per_shard: [AtomicUsize; SHARDS],
    /// Connections of seed 003's endpoints (their heartbeats differ).
    pub seed_connections: SeedConnections,
}

/// Keys of the connections on seed 003's endpoints. Kept apart from `Conn`, whose layout
/// the fan-out loop is sensitive to; the heartbeat sweep reads a snapshot per shard.
#[derive(Default)]
pub(crate) struct SeedConnections(std::sync::Mutex<std::collections::HashSet<u64>>);

impl SeedConnections {
    pub fn insert(&self, key: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    pub fn remove(&self, key: u64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    pub fn snapshot(&self) -> std::collections::HashSet<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

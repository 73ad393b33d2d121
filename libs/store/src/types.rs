//! The records the store keeps and the summaries it computes from them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A gateway replica as it announces itself in its liveness entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewayInfo {
    /// Unique id of the gateway process (for example a UUID or the pod name).
    pub id: String,
    /// Address clients or operators can reach the gateway at, as the gateway reports it.
    pub address: String,
    /// When the gateway started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
}

/// What a liveness refresh ([`crate::Store::refresh_gateway`]) found before it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayRefresh {
    /// The gateway's liveness entry was there and unexpired: the store still holds what the
    /// gateway wrote (as far as liveness can tell).
    Continued,
    /// The liveness entry was gone. Either it expired (the refresh came later than the TTL,
    /// and peers may have swept the gateway's entries) or the store lost its data without
    /// an error (a restarted Redis without persistence, a failover to a replica that lacked
    /// it, a flush). Either way the gateway's entries must be written again.
    Missing,
}

/// One connection's membership of one room, as [`crate::Store::join_rooms`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomJoin {
    /// The connection's public id.
    pub connection_id: String,
    /// The room it joined.
    pub room: String,
}

/// One client connection held by one gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionRecord {
    /// Unique id of the connection, as sent to the client in `connection_established`.
    pub connection_id: String,
    /// Id of the gateway that holds the connection.
    pub gateway_id: String,
    /// Subject of the client's token.
    pub user_id: String,
    /// Role from the client's token (for example `dashboard` or `node`).
    pub role: String,
    /// Node id, for node agents.
    pub node_id: Option<String>,
    /// When the connection was accepted, in milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
}

/// Cluster-wide figures for dashboards and the management API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ClusterStats {
    /// Connections ever opened (cumulative; survives gateway restarts, not a store wipe).
    pub total_connections: u64,
    /// Connections currently held by live gateways.
    pub active_connections: u64,
    /// Messages ever delivered, as reported by the gateways (cumulative).
    pub total_messages: u64,
    /// Subscriber count per room on live gateways; rooms without subscribers are omitted.
    pub rooms: BTreeMap<String, u64>,
    /// Live gateways, sorted by id.
    pub gateways: Vec<GatewayInfo>,
}

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// First segment of every key (`sb` gives `sb:gateways`). Change it to let several
    /// clusters share one Redis database; an empty prefix leaves keys unprefixed.
    pub key_prefix: String,
    /// How long [`Store::connect_redis`](crate::Store::connect_redis) may take to reach
    /// Redis, and how long each later reconnect attempt may take. Raise it for a Redis
    /// behind a slow network path.
    pub connect_timeout: Duration,
    /// How long one store call waits for Redis before it fails with
    /// [`StoreError::Timeout`](crate::StoreError::Timeout), reconnect time included. Keep
    /// it well below the gateway heartbeat interval so an outage never stalls a heartbeat.
    pub response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "sb".to_owned(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        }
    }
}

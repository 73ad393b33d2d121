//! Switchboard's cluster metadata: which gateways are alive, which connections each holds,
//! who is in which room, which gateway a node agent is connected to, and the cluster-wide
//! counters and rate-limit windows.
//!
//! [`Store`] is a cheap-to-clone handle over one of two backends with identical semantics
//! (one contract test suite runs against both):
//!
//! - [`Store::memory`]: in-process maps, for the embedded single-process engine and tests.
//! - [`Store::connect_redis`]: Redis, shared by every gateway replica of a cluster.
//!
//! # Liveness
//!
//! Each gateway calls [`Store::register_gateway`] at start and again on every heartbeat; the
//! entry lives for the given TTL. Everything else a gateway writes belongs to it until it
//! calls [`Store::remove_gateway`] on a clean shutdown. Readers ([`Store::cluster_stats`],
//! [`Store::user_connections`], [`Store::node_route`]) ignore the entries of gateways
//! whose liveness has expired, so a killed gateway drops out of every answer within one TTL
//! even before [`Store::sweep_dead_gateways`] deletes its leftovers. Register before adding
//! connections: a sweep may delete the entries of a gateway that has none.
//! [`Store::refresh_gateway`] also reports whether the liveness entry was still there, so a
//! gateway notices a store that lost its data without an error and writes its entries again.
//!
//! # Redis keys
//!
//! With the default key prefix `sb` (see [`RedisOptions::key_prefix`]):
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `sb:gateways` | set | ids of every gateway with entries, live or not yet swept |
//! | `sb:gw:<gid>:alive` | string, PX TTL | the gateway's [`GatewayInfo`] JSON |
//! | `sb:gw:<gid>:conns` | hash | connection id → [`ConnectionRecord`] JSON |
//! | `sb:gw:<gid>:rooms` | hash | room → number of the gateway's connections in it (no zeros) |
//! | `sb:gw:<gid>:room:<room>` | set | the gateway's connection ids in the room |
//! | `sb:gw:<gid>:conn:<cid>:rooms` | set | rooms of one connection, so removing it is O(its rooms) |
//! | `sb:gw:<gid>:nodes` | set | node ids routed to the gateway, so its routes can be removed |
//! | `sb:user:<uid>` | hash | connection id → gateway id; readers delete entries whose record is gone |
//! | `sb:node:<nid>` | string | id of the gateway holding the node's connection |
//! | `sb:rate:<key>:<window index>` | string, PX TTL | hits in one fixed window |
//! | `sb:stats:total_connections` | string | connections ever opened |
//! | `sb:stats:total_messages` | string | messages ever delivered |
//! | `sb:svc:<service>` | hash, PX TTL | liveness of the instances of another service (see [`liveness`]) |
//! | `sb:alert_rules` | string | the aggregator's threshold rules set at run time ([`Store::alert_rules`]) |
//!
//! Multi-key updates run as Lua scripts, so each call is atomic; [`Store::cluster_stats`]
//! costs one round trip and O(gateways + rooms) work in Redis, whatever the number of
//! connections. Some scripts build key names from ids they read, so the backend needs a
//! single Redis node (standalone or behind Sentinel), not Redis Cluster. Gateway ids must
//! not contain `:`, or their keys could overlap another gateway's.
//!
//! # Outages
//!
//! Every Redis call returns within [`RedisOptions::response_timeout`], with
//! [`StoreError::Timeout`] or [`StoreError::Unavailable`] if Redis is down, and the
//! connection is re-established in the background, so a Redis outage degrades presence
//! and stats but never blocks a caller for longer than that. Behind Sentinel the same holds
//! during a failover, and the connection moves to the promoted replica; what a failover can
//! lose (replication is asynchronous) is listed in `docs/configuration.md`.

#![warn(missing_docs)]

mod alert_rules;
mod error;
pub mod history;
mod lease;
pub mod liveness;
mod memory;
mod rate;
mod redis_backend;
#[cfg(feature = "test-util")]
pub mod test_util;
mod types;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use error::{BoxError, ConnectError, StoreError};
pub use lease::{Lease, TickClaim};
pub use liveness::{SERVICE_FORGET_AFTER, ServiceInstance};
pub use types::{
    ClusterStats, ConnectionRecord, GatewayInfo, GatewayRefresh, RedisOptions, RoomJoin,
};

use memory::MemoryStore;
use redis_backend::RedisStore;

/// Handle to the cluster metadata store; clones share one backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one instance per process, behind an Arc; boxing would only add an indirection"
)]
enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Store {
    /// Creates an empty in-memory store, private to this process.
    pub fn memory() -> Store {
        Store {
            backend: Arc::new(Backend::Memory(MemoryStore::new())),
        }
    }

    /// Connects the store a `[store]` section describes: Redis at `redis_url`, or the
    /// in-memory store when it is unset.
    ///
    /// # Errors
    /// [`ConnectError`] as for [`Store::connect_redis`].
    pub async fn connect(config: &settings::StoreConfig) -> Result<Store, ConnectError> {
        match &config.redis_url {
            None => Ok(Store::memory()),
            Some(url) => {
                let options = RedisOptions {
                    key_prefix: config.key_prefix.clone(),
                    response_timeout: config.response_timeout,
                    ..RedisOptions::default()
                };
                Store::connect_redis(url, options).await
            }
        }
    }

    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`) and checks
    /// that it answers. A `redis+sentinel://[user:password@]host1:26379,host2:26379/<master_name>[?db=N]`
    /// URL (see [`settings::SentinelUrl`]) asks those sentinels for the primary, and asks
    /// them again whenever the primary is lost, read-only or silent (and once a second), so
    /// the store follows a failover to the promoted replica within seconds.
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`] for a malformed URL, [`ConnectError::Unavailable`] if
    /// Redis refuses or rejects the connection, [`ConnectError::Timeout`] if it does not
    /// answer within [`RedisOptions::connect_timeout`].
    pub async fn connect_redis(url: &str, options: RedisOptions) -> Result<Store, ConnectError> {
        let redis = RedisStore::connect(url, options).await?;
        Ok(Store {
            backend: Arc::new(Backend::Redis(redis)),
        })
    }

    /// Returns `"memory"` or `"redis"`, for logs and readiness reports.
    pub fn backend_name(&self) -> &'static str {
        match *self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Checks that the backend answers.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(redis) => redis.ping().await,
        }
    }

    /// Announces a live gateway for `ttl`; call it again before `ttl` runs out to stay live.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn register_gateway(
        &self,
        info: &GatewayInfo,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.refresh_gateway(info, ttl).await.map(|_| ())
    }

    /// [`Store::register_gateway`], reporting whether the gateway's liveness entry was still
    /// there. A gateway that refreshes every third of its TTL and finds its entry
    /// [`GatewayRefresh::Missing`] knows the store lost its data without reporting an error
    /// (a Redis restart without persistence, a failover, a flush) or that peers may have
    /// swept it, and writes its entries again.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn refresh_gateway(
        &self,
        info: &GatewayInfo,
        ttl: Duration,
    ) -> Result<GatewayRefresh, StoreError> {
        let was_live = match &*self.backend {
            Backend::Memory(memory) => memory.register_gateway(info, ttl),
            Backend::Redis(redis) => redis.register_gateway(info, ttl).await?,
        };
        Ok(if was_live {
            GatewayRefresh::Continued
        } else {
            GatewayRefresh::Missing
        })
    }

    /// Returns the connection records the store holds for `gateway_id`, sorted by
    /// connection id, whether or not the gateway is live. A gateway compares them with its
    /// open connections to remove records whose removal was lost during an outage.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow, or holds a corrupt record.
    pub async fn gateway_connections(
        &self,
        gateway_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.gateway_connections(gateway_id)),
            Backend::Redis(redis) => redis.gateway_connections(gateway_id).await,
        }
    }

    /// Returns the room memberships the store holds for `gateway_id`, sorted by room and
    /// connection id, whether or not the gateway is live. A gateway compares them with its
    /// own to remove memberships whose `leave` was lost during an outage.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn gateway_memberships(&self, gateway_id: &str) -> Result<Vec<RoomJoin>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.gateway_memberships(gateway_id)),
            Backend::Redis(redis) => redis.gateway_memberships(gateway_id).await,
        }
    }

    /// Makes the store lose its data without an error, as a restarted Redis without
    /// persistence does (tests of recovery only). Redis: `FLUSHDB`. Memory: every gateway,
    /// connection, membership, route, rate window and counter is forgotten.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    #[cfg(feature = "test-util")]
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.flush();
                Ok(())
            }
            Backend::Redis(redis) => redis.flush().await,
        }
    }

    /// Deletes a gateway's liveness and every entry it owns: its connections, their room
    /// memberships and user index entries, and the node routes that still point at it.
    /// Called on a clean shutdown.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn remove_gateway(&self, gateway_id: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.remove_gateway(gateway_id);
                Ok(())
            }
            Backend::Redis(redis) => redis.remove_gateway(gateway_id).await,
        }
    }

    /// Returns the gateways whose liveness has not expired, sorted by id.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow, or holds a corrupt entry.
    pub async fn live_gateways(&self) -> Result<Vec<GatewayInfo>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.live_gateways()),
            Backend::Redis(redis) => redis.live_gateways().await,
        }
    }

    /// Deletes every entry of each gateway whose liveness has expired, as
    /// [`Store::remove_gateway`] would, and returns how many gateways were swept. Any
    /// gateway may run it periodically; concurrent sweeps are safe.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; gateways swept before the
    /// failure stay swept.
    pub async fn sweep_dead_gateways(&self) -> Result<usize, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.sweep_dead_gateways()),
            Backend::Redis(redis) => redis.sweep_dead_gateways().await,
        }
    }

    /// Records a connection on its gateway and in its user's index, and counts it in
    /// [`ClusterStats::total_connections`] (once, even if added again).
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn add_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.add_connections(std::slice::from_ref(record)).await
    }

    /// [`Store::add_connection`] for many records at once, in one round trip.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; then none or only some of
    /// the records were added (adding them again is harmless).
    pub async fn add_connections(&self, records: &[ConnectionRecord]) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.add_connections(records);
                Ok(())
            }
            Backend::Redis(redis) => redis.add_connections(records).await,
        }
    }

    /// Deletes a connection, its user index entry and all its room memberships. Idempotent.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn remove_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.remove_connections(std::slice::from_ref(record)).await
    }

    /// [`Store::remove_connection`] for many records at once, in one round trip.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; then none or only some of
    /// the records were removed (removing them again is harmless).
    pub async fn remove_connections(&self, records: &[ConnectionRecord]) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                for record in records {
                    memory.remove_connection(record);
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.remove_connections(records).await,
        }
    }

    /// Adds a connection to a room. Idempotent: joining twice counts once.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn join_room(
        &self,
        gateway_id: &str,
        connection_id: &str,
        room: &str,
    ) -> Result<(), StoreError> {
        let join = RoomJoin {
            connection_id: connection_id.to_owned(),
            room: room.to_owned(),
        };
        self.join_rooms(gateway_id, std::slice::from_ref(&join))
            .await
    }

    /// [`Store::join_room`] for many memberships of one gateway at once, in one round trip.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; then none or only some of
    /// the memberships were recorded (joining again is harmless).
    pub async fn join_rooms(&self, gateway_id: &str, joins: &[RoomJoin]) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                for join in joins {
                    memory.join_room(gateway_id, &join.connection_id, &join.room);
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.join_rooms(gateway_id, joins).await,
        }
    }

    /// Removes a connection from a room. Idempotent: leaving a room one is not in does
    /// nothing.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn leave_room(
        &self,
        gateway_id: &str,
        connection_id: &str,
        room: &str,
    ) -> Result<(), StoreError> {
        let leave = RoomJoin {
            connection_id: connection_id.to_owned(),
            room: room.to_owned(),
        };
        self.leave_rooms(gateway_id, std::slice::from_ref(&leave))
            .await
    }

    /// [`Store::leave_room`] for many memberships of one gateway at once, in one round trip.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; then none or only some of
    /// the memberships were removed (leaving again is harmless).
    pub async fn leave_rooms(
        &self,
        gateway_id: &str,
        leaves: &[RoomJoin],
    ) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                for leave in leaves {
                    memory.leave_room(gateway_id, &leave.connection_id, &leave.room);
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.leave_rooms(gateway_id, leaves).await,
        }
    }

    /// Returns a user's connections on live gateways, sorted by connection id.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow, or holds a corrupt record.
    pub async fn user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.user_connections(user_id)),
            Backend::Redis(redis) => redis.user_connections(user_id).await,
        }
    }

    /// Routes commands for `node_id` to `gateway_id`, replacing any earlier route.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn set_node_route(&self, node_id: &str, gateway_id: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.set_node_route(node_id, gateway_id);
                Ok(())
            }
            Backend::Redis(redis) => redis.set_node_route(node_id, gateway_id).await,
        }
    }

    /// Deletes the route of `node_id` if it still points at `gateway_id`, so a gateway
    /// the node has left cannot delete the route a newer gateway set.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn remove_node_route(
        &self,
        node_id: &str,
        gateway_id: &str,
    ) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.remove_node_route(node_id, gateway_id);
                Ok(())
            }
            Backend::Redis(redis) => redis.remove_node_route(node_id, gateway_id).await,
        }
    }

    /// Returns the gateway holding `node_id`, or `None` if there is no route or that
    /// gateway is not alive.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn node_route(&self, node_id: &str) -> Result<Option<String>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.node_route(node_id)),
            Backend::Redis(redis) => redis.node_route(node_id).await,
        }
    }

    /// Counts one hit for `key` in the current fixed window of length `window` and returns
    /// the window's count so far, this hit included. Windows are aligned to the Unix epoch
    /// (wall clock), so every gateway counts into the same window; a new window starts at
    /// zero and old ones expire. Use one window length per key.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; callers usually fail open.
    pub async fn hit_rate_counter(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.hit_rate_counter(key, window)),
            Backend::Redis(redis) => redis.hit_rate_counter(key, window).await,
        }
    }

    /// Adds `count` delivered messages to [`ClusterStats::total_messages`].
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; the count is then lost
    /// unless the caller keeps it for the next call.
    pub async fn add_messages(&self, count: u64) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.add_messages(count);
                Ok(())
            }
            Backend::Redis(redis) => redis.add_messages(count).await,
        }
    }

    /// Returns the cluster-wide counters and the connections and rooms of live gateways.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow, or holds a corrupt entry.
    pub async fn cluster_stats(&self) -> Result<ClusterStats, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.cluster_stats()),
            Backend::Redis(redis) => redis.cluster_stats().await,
        }
    }
}

//! The Redis backend: Lua scripts for every multi-key update, so each store call is one
//! atomic round trip (two for a sweep, plus one per dead gateway), over a [`Connection`]
//! that bounds every round trip by the response timeout.

mod connection;
mod keys;
mod scripts;
mod sentinel;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, Pipeline, ScriptInvocation};

use self::connection::Connection;
use self::keys::Keys;
use self::scripts::Scripts;
use crate::error::{ConnectError, StoreError};
use crate::rate::rate_window;
use crate::types::{ClusterStats, ConnectionRecord, GatewayInfo, RedisOptions, RoomJoin};

/// The reply of `cluster_stats.lua`: counters, then per live gateway its info JSON,
/// connection count and flat `room, count` list.
type StatsReply = (
    Option<u64>,
    Option<u64>,
    Vec<(String, u64, Vec<(String, i64)>)>,
);

/// The Redis store.
pub(crate) struct RedisStore {
    connection: Connection,
    keys: Keys,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .field("response_timeout", &self.connection.response_timeout())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    pub(crate) async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        Ok(Self {
            connection: Connection::open(url, &options).await?,
            keys: Keys::new(&options.key_prefix),
            scripts: Scripts::new(),
        })
    }

    pub(crate) async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, StoreError> {
        let mut handle = self.connection.handle();
        self.connection.call(command.query_async(&mut handle)).await
    }

    async fn query_pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        let mut handle = self.connection.handle();
        self.connection.call(pipe.query_async(&mut handle)).await
    }

    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut handle = self.connection.handle();
        self.connection
            .call(invocation.invoke_async(&mut handle))
            .await
    }

    /// The prefix every key starts with (`"sb:"`), for modules that name their own keys.
    pub(crate) fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.query(&redis::cmd("PING")).await
    }

    /// Writes the liveness entry; returns whether it was there before (`EXISTS` and `SET`
    /// in one transaction, so no other client's write falls between them).
    pub(crate) async fn register_gateway(
        &self,
        info: &GatewayInfo,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let info_json = serde_json::to_string(info).expect("GatewayInfo always serialises");
        // `PX 0` is an error in Redis; a zero TTL means "expires at once", so 1 ms.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let alive_key = self.keys.alive(&info.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .exists(&alive_key)
            .sadd(self.keys.gateways(), &info.id)
            .ignore()
            .cmd("SET")
            .arg(&alive_key)
            .arg(info_json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        let (was_live,): (bool,) = self.query_pipeline(&pipe).await?;
        Ok(was_live)
    }

    pub(crate) async fn gateway_connections(
        &self,
        gateway_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut hvals = redis::cmd("HVALS");
        hvals.arg(self.keys.conns(gateway_id));
        let records: Vec<String> = self.query(&hvals).await?;
        let mut records = records
            .iter()
            .map(|record| {
                serde_json::from_str::<ConnectionRecord>(record)
                    .map_err(|error| StoreError::corrupt("connection record", error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        Ok(records)
    }

    pub(crate) async fn gateway_memberships(
        &self,
        gateway_id: &str,
    ) -> Result<Vec<RoomJoin>, StoreError> {
        let mut hkeys = redis::cmd("HKEYS");
        hkeys.arg(self.keys.rooms(gateway_id));
        let rooms: Vec<String> = self.query(&hkeys).await?;
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for room in &rooms {
            pipe.smembers(self.keys.room(gateway_id, room));
        }
        let members: Vec<Vec<String>> = self.query_pipeline(&pipe).await?;
        let mut joins: Vec<RoomJoin> = rooms
            .into_iter()
            .zip(members)
            .flat_map(|(room, connection_ids)| {
                connection_ids
                    .into_iter()
                    .map(move |connection_id| RoomJoin {
                        connection_id,
                        room: room.clone(),
                    })
            })
            .collect();
        joins.sort_by(|a, b| (&a.room, &a.connection_id).cmp(&(&b.room, &b.connection_id)));
        Ok(joins)
    }

    /// `FLUSHDB`: the database forgets everything, as after a restart without persistence.
    #[cfg(feature = "test-util")]
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        self.query(&redis::cmd("FLUSHDB")).await
    }

    pub(crate) async fn remove_gateway(&self, gateway_id: &str) -> Result<(), StoreError> {
        self.purge_gateway(gateway_id, false).await.map(|_| ())
    }

    /// Runs `purge_gateway.lua`; returns whether the gateway was purged.
    async fn purge_gateway(
        &self,
        gateway_id: &str,
        only_if_dead: bool,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.purge_gateway.prepare_invoke();
        invocation
            .key(self.keys.gateways())
            .key(self.keys.alive(gateway_id))
            .key(self.keys.conns(gateway_id))
            .key(self.keys.rooms(gateway_id))
            .key(self.keys.nodes(gateway_id))
            .arg(gateway_id)
            .arg(self.keys.prefix())
            .arg(if only_if_dead { "1" } else { "0" });
        let purged: i64 = self.invoke(&invocation).await?;
        Ok(purged == 1)
    }

    pub(crate) async fn live_gateways(&self) -> Result<Vec<GatewayInfo>, StoreError> {
        let mut invocation = self.scripts.live_gateways.prepare_invoke();
        invocation.key(self.keys.gateways()).arg(self.keys.prefix());
        let infos: Vec<String> = self.invoke(&invocation).await?;
        let mut gateways = infos
            .iter()
            .map(|info| parse_gateway_info(info))
            .collect::<Result<Vec<_>, _>>()?;
        gateways.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(gateways)
    }

    pub(crate) async fn sweep_dead_gateways(&self) -> Result<usize, StoreError> {
        let mut smembers = redis::cmd("SMEMBERS");
        smembers.arg(self.keys.gateways());
        let gateway_ids: Vec<String> = self.query(&smembers).await?;
        if gateway_ids.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for gateway_id in &gateway_ids {
            pipe.exists(self.keys.alive(gateway_id));
        }
        let alive: Vec<bool> = self.query_pipeline(&pipe).await?;
        let mut swept = 0;
        // One script per dead gateway keeps each blocking script short; the script checks
        // liveness again, so a gateway that refreshed since the EXISTS above is kept.
        for (gateway_id, is_alive) in gateway_ids.iter().zip(alive) {
            if !is_alive && self.purge_gateway(gateway_id, true).await? {
                tracing::info!(gateway_id, "swept dead gateway");
                swept += 1;
            }
        }
        Ok(swept)
    }

    pub(crate) async fn add_connections(
        &self,
        records: &[ConnectionRecord],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.add_connections.prepare_invoke();
        invocation
            .key(self.keys.gateways())
            .key(self.keys.total_connections());
        for record in records {
            let record_json =
                serde_json::to_string(record).expect("ConnectionRecord always serialises");
            invocation
                .key(self.keys.conns(&record.gateway_id))
                .key(self.keys.user(&record.user_id))
                .arg(&record.gateway_id)
                .arg(&record.connection_id)
                .arg(record_json);
        }
        self.invoke::<i64>(&invocation).await.map(|_| ())
    }

    pub(crate) async fn remove_connections(
        &self,
        records: &[ConnectionRecord],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.remove_connection.prepare_invoke();
        for record in records {
            let gateway_id = record.gateway_id.as_str();
            invocation
                .key(self.keys.conns(gateway_id))
                .key(self.keys.user(&record.user_id))
                .key(self.keys.conn_rooms(gateway_id, &record.connection_id))
                .key(self.keys.rooms(gateway_id))
                .arg(&record.connection_id)
                .arg(gateway_id)
                .arg(self.keys.room_prefix(gateway_id));
        }
        self.invoke::<i64>(&invocation).await.map(|_| ())
    }

    pub(crate) async fn join_rooms(
        &self,
        gateway_id: &str,
        joins: &[RoomJoin],
    ) -> Result<(), StoreError> {
        if joins.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.join_rooms.prepare_invoke();
        invocation
            .key(self.keys.gateways())
            .key(self.keys.rooms(gateway_id))
            .arg(gateway_id);
        for join in joins {
            invocation
                .key(self.keys.room(gateway_id, &join.room))
                .key(self.keys.conn_rooms(gateway_id, &join.connection_id))
                .arg(&join.connection_id)
                .arg(&join.room);
        }
        self.invoke::<i64>(&invocation).await.map(|_| ())
    }

    pub(crate) async fn leave_rooms(
        &self,
        gateway_id: &str,
        leaves: &[RoomJoin],
    ) -> Result<(), StoreError> {
        if leaves.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.leave_room.prepare_invoke();
        invocation.key(self.keys.rooms(gateway_id));
        for leave in leaves {
            invocation
                .key(self.keys.room(gateway_id, &leave.room))
                .key(self.keys.conn_rooms(gateway_id, &leave.connection_id))
                .arg(&leave.connection_id)
                .arg(&leave.room);
        }
        self.invoke::<i64>(&invocation).await.map(|_| ())
    }

    pub(crate) async fn user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut invocation = self.scripts.user_connections.prepare_invoke();
        invocation
            .key(self.keys.user(user_id))
            .arg(self.keys.prefix());
        let records: Vec<String> = self.invoke(&invocation).await?;
        let mut records = records
            .iter()
            .map(|record| {
                serde_json::from_str::<ConnectionRecord>(record)
                    .map_err(|error| StoreError::corrupt("connection record", error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        Ok(records)
    }

    pub(crate) async fn set_node_route(
        &self,
        node_id: &str,
        gateway_id: &str,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.keys.node(node_id), gateway_id)
            .ignore()
            .sadd(self.keys.nodes(gateway_id), node_id)
            .ignore()
            .sadd(self.keys.gateways(), gateway_id)
            .ignore();
        self.query_pipeline(&pipe).await
    }

    pub(crate) async fn remove_node_route(
        &self,
        node_id: &str,
        gateway_id: &str,
    ) -> Result<(), StoreError> {
        let mut invocation = self.scripts.remove_node_route.prepare_invoke();
        invocation
            .key(self.keys.node(node_id))
            .key(self.keys.nodes(gateway_id))
            .arg(gateway_id)
            .arg(node_id);
        self.invoke::<i64>(&invocation).await.map(|_| ())
    }

    pub(crate) async fn node_route(&self, node_id: &str) -> Result<Option<String>, StoreError> {
        let mut invocation = self.scripts.node_route.prepare_invoke();
        invocation
            .key(self.keys.node(node_id))
            .arg(self.keys.prefix());
        self.invoke(&invocation).await
    }

    pub(crate) async fn hit_rate_counter(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<u64, StoreError> {
        let rate = rate_window(window);
        let expire_after_ms = u64::try_from(rate.expire_after.as_millis()).unwrap_or(u64::MAX);
        let key = self.keys.rate(key, rate.index);
        // A pipeline of two plain commands costs Redis a fraction of a script call; this runs
        // on every WebSocket handshake. `NX` sets the expiry only on the window's first hit.
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(expire_after_ms)
            .arg("NX")
            .ignore();
        let (count,): (u64,) = self.query_pipeline(&pipe).await?;
        Ok(count)
    }

    pub(crate) async fn add_messages(&self, count: u64) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        // INCRBY takes a signed 64-bit increment.
        let increment = i64::try_from(count).unwrap_or(i64::MAX);
        let mut incrby = redis::cmd("INCRBY");
        incrby.arg(self.keys.total_messages()).arg(increment);
        self.query::<i64>(&incrby).await.map(|_| ())
    }

    pub(crate) async fn cluster_stats(&self) -> Result<ClusterStats, StoreError> {
        let mut invocation = self.scripts.cluster_stats.prepare_invoke();
        invocation
            .key(self.keys.gateways())
            .key(self.keys.total_connections())
            .key(self.keys.total_messages())
            .arg(self.keys.prefix());
        let (total_connections, total_messages, live): StatsReply =
            self.invoke(&invocation).await?;
        let mut stats = ClusterStats {
            total_connections: total_connections.unwrap_or(0),
            total_messages: total_messages.unwrap_or(0),
            ..ClusterStats::default()
        };
        let mut rooms = BTreeMap::new();
        for (info, connection_count, room_counts) in live {
            stats.gateways.push(parse_gateway_info(&info)?);
            stats.active_connections += connection_count;
            for (room, count) in room_counts {
                let count = u64::try_from(count).unwrap_or(0);
                *rooms.entry(room).or_insert(0) += count;
            }
        }
        rooms.retain(|_, count| *count > 0);
        stats.rooms = rooms;
        stats.gateways.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(stats)
    }
}

fn parse_gateway_info(info: &str) -> Result<GatewayInfo, StoreError> {
    serde_json::from_str(info).map_err(|error| StoreError::corrupt("gateway info", error))
}

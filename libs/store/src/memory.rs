//! The in-memory backend: the embedded single-process engine's store.
//!
//! It keeps the same entries as the Redis backend (see the crate docs) in one `HashMap`
//! tree behind a `std::sync::Mutex`. Every operation is synchronous and short, so the lock
//! is never held across an `.await`. Liveness and rate windows expire by comparing
//! `tokio::time::Instant`s, so tests with a paused clock see them expire too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::rate::{RateWindow, rate_window};
use crate::types::{ClusterStats, ConnectionRecord, GatewayInfo, RoomJoin};

/// Rate counters are pruned once the map holds at least this many entries, and then again
/// each time it doubles, so pruning costs amortised O(1) per hit.
const MIN_RATE_PRUNE_LEN: usize = 1024;

/// The in-memory store.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    state: Mutex<State>,
    pub(crate) history: crate::history::MemoryHistory,
    pub(crate) leases: crate::lease::MemoryLeases,
    pub(crate) liveness: crate::liveness::MemoryLiveness,
    pub(crate) alert_rules: crate::alert_rules::MemoryAlertRules,
}

#[derive(Debug)]
struct State {
    gateways: HashMap<String, GatewayEntry>,
    /// user id → connection id → gateway id.
    users: HashMap<String, HashMap<String, String>>,
    /// node id → gateway id.
    node_routes: HashMap<String, String>,
    /// `<key>:<window index>` → counter.
    rate_counters: HashMap<String, RateCounter>,
    rate_prune_at_len: usize,
    total_connections: u64,
    total_messages: u64,
}

/// Everything one gateway owns. It exists from the gateway's first entry until it is
/// removed or swept, whether or not its liveness has expired in between.
#[derive(Debug, Default)]
struct GatewayEntry {
    liveness: Option<Liveness>,
    connections: HashMap<String, ConnectionRecord>,
    /// room → connection ids.
    room_members: HashMap<String, HashSet<String>>,
    /// connection id → rooms, so removing a connection touches only its own rooms.
    connection_rooms: HashMap<String, HashSet<String>>,
    /// Nodes routed here at some point; a route is only removed if it still points here.
    nodes: HashSet<String>,
}

#[derive(Debug)]
struct Liveness {
    info: GatewayInfo,
    expires_at: Instant,
}

#[derive(Debug)]
struct RateCounter {
    count: u64,
    expires_at: Instant,
}

impl GatewayEntry {
    fn live_info(&self, now: Instant) -> Option<&GatewayInfo> {
        self.liveness
            .as_ref()
            .filter(|liveness| liveness.expires_at > now)
            .map(|liveness| &liveness.info)
    }

    fn is_alive(&self, now: Instant) -> bool {
        self.live_info(now).is_some()
    }
}

impl MemoryStore {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                gateways: HashMap::new(),
                users: HashMap::new(),
                node_routes: HashMap::new(),
                rate_counters: HashMap::new(),
                rate_prune_at_len: MIN_RATE_PRUNE_LEN,
                total_connections: 0,
                total_messages: 0,
            }),
            history: crate::history::MemoryHistory::default(),
            leases: crate::lease::MemoryLeases::default(),
            liveness: crate::liveness::MemoryLiveness::default(),
            alert_rules: crate::alert_rules::MemoryAlertRules::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock, and every mutation keeps the maps
        // consistent step by step, so a poisoned lock still guards usable state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the liveness entry; returns whether an unexpired one was there before.
    pub(crate) fn register_gateway(&self, info: &GatewayInfo, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        let entry = state.gateways.entry(info.id.clone()).or_default();
        let was_live = entry.is_alive(now);
        entry.liveness = Some(Liveness {
            info: info.clone(),
            expires_at: now + ttl,
        });
        was_live
    }

    pub(crate) fn gateway_connections(&self, gateway_id: &str) -> Vec<ConnectionRecord> {
        let state = self.lock();
        let mut records: Vec<ConnectionRecord> = state
            .gateways
            .get(gateway_id)
            .map(|entry| entry.connections.values().cloned().collect())
            .unwrap_or_default();
        records.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        records
    }

    pub(crate) fn gateway_memberships(&self, gateway_id: &str) -> Vec<RoomJoin> {
        let state = self.lock();
        let mut joins: Vec<RoomJoin> = state
            .gateways
            .get(gateway_id)
            .map(|entry| {
                entry
                    .room_members
                    .iter()
                    .flat_map(|(room, members)| {
                        members.iter().map(|connection_id| RoomJoin {
                            connection_id: connection_id.clone(),
                            room: room.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        joins.sort_by(|a, b| (&a.room, &a.connection_id).cmp(&(&b.room, &b.connection_id)));
        joins
    }

    /// Forgets every gateway, connection, membership, route, rate window and counter, as a
    /// restarted Redis without persistence would (history and leases are kept).
    #[cfg(feature = "test-util")]
    pub(crate) fn flush(&self) {
        let mut state = self.lock();
        state.gateways.clear();
        state.users.clear();
        state.node_routes.clear();
        state.rate_counters.clear();
        state.rate_prune_at_len = MIN_RATE_PRUNE_LEN;
        state.total_connections = 0;
        state.total_messages = 0;
    }

    pub(crate) fn remove_gateway(&self, gateway_id: &str) {
        self.lock().purge_gateway(gateway_id);
    }

    pub(crate) fn live_gateways(&self) -> Vec<GatewayInfo> {
        let now = Instant::now();
        let state = self.lock();
        let mut gateways: Vec<GatewayInfo> = state
            .gateways
            .values()
            .filter_map(|entry| entry.live_info(now).cloned())
            .collect();
        gateways.sort_by(|a, b| a.id.cmp(&b.id));
        gateways
    }

    pub(crate) fn sweep_dead_gateways(&self) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        let dead: Vec<String> = state
            .gateways
            .iter()
            .filter(|(_, entry)| !entry.is_alive(now))
            .map(|(gateway_id, _)| gateway_id.clone())
            .collect();
        for gateway_id in &dead {
            state.purge_gateway(gateway_id);
            tracing::info!(gateway_id, "swept dead gateway");
        }
        dead.len()
    }

    pub(crate) fn add_connections(&self, records: &[ConnectionRecord]) {
        let mut state = self.lock();
        for record in records {
            let entry = state.gateways.entry(record.gateway_id.clone()).or_default();
            let is_new = entry
                .connections
                .insert(record.connection_id.clone(), record.clone())
                .is_none();
            if is_new {
                state.total_connections = state.total_connections.saturating_add(1);
            }
            state
                .users
                .entry(record.user_id.clone())
                .or_default()
                .insert(record.connection_id.clone(), record.gateway_id.clone());
        }
    }

    pub(crate) fn remove_connection(&self, record: &ConnectionRecord) {
        let mut state = self.lock();
        let connection_id = record.connection_id.as_str();
        if let Some(entry) = state.gateways.get_mut(&record.gateway_id) {
            entry.connections.remove(connection_id);
            let rooms = entry
                .connection_rooms
                .remove(connection_id)
                .unwrap_or_default();
            for room in rooms {
                remove_member(&mut entry.room_members, &room, connection_id);
            }
        }
        state.forget_user_connection(&record.user_id, connection_id, &record.gateway_id);
    }

    pub(crate) fn join_room(&self, gateway_id: &str, connection_id: &str, room: &str) {
        let mut state = self.lock();
        let entry = state.gateways.entry(gateway_id.to_owned()).or_default();
        let newly_joined = entry
            .room_members
            .entry(room.to_owned())
            .or_default()
            .insert(connection_id.to_owned());
        if newly_joined {
            entry
                .connection_rooms
                .entry(connection_id.to_owned())
                .or_default()
                .insert(room.to_owned());
        }
    }

    pub(crate) fn leave_room(&self, gateway_id: &str, connection_id: &str, room: &str) {
        let mut state = self.lock();
        let Some(entry) = state.gateways.get_mut(gateway_id) else {
            return;
        };
        remove_member(&mut entry.room_members, room, connection_id);
        remove_member(&mut entry.connection_rooms, connection_id, room);
    }

    pub(crate) fn user_connections(&self, user_id: &str) -> Vec<ConnectionRecord> {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(connections) = state.users.get_mut(user_id) else {
            return Vec::new();
        };
        let mut records = Vec::new();
        // Entries whose record is gone (its gateway was removed or swept) are stale and
        // dropped here; entries of a gateway that is merely expired stay until a sweep, in
        // case the gateway comes back.
        connections.retain(|connection_id, gateway_id| {
            let Some(entry) = state.gateways.get(gateway_id.as_str()) else {
                return false;
            };
            let Some(record) = entry.connections.get(connection_id) else {
                return false;
            };
            if entry.is_alive(now) {
                records.push(record.clone());
            }
            true
        });
        if connections.is_empty() {
            state.users.remove(user_id);
        }
        records.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        records
    }

    pub(crate) fn set_node_route(&self, node_id: &str, gateway_id: &str) {
        let mut state = self.lock();
        state
            .node_routes
            .insert(node_id.to_owned(), gateway_id.to_owned());
        let entry = state.gateways.entry(gateway_id.to_owned()).or_default();
        entry.nodes.insert(node_id.to_owned());
    }

    pub(crate) fn remove_node_route(&self, node_id: &str, gateway_id: &str) {
        let mut state = self.lock();
        if state.node_routes.get(node_id).map(String::as_str) == Some(gateway_id) {
            state.node_routes.remove(node_id);
        }
        if let Some(entry) = state.gateways.get_mut(gateway_id) {
            entry.nodes.remove(node_id);
        }
    }

    pub(crate) fn node_route(&self, node_id: &str) -> Option<String> {
        let now = Instant::now();
        let state = self.lock();
        let gateway_id = state.node_routes.get(node_id)?;
        let gateway_is_alive = state
            .gateways
            .get(gateway_id)
            .is_some_and(|entry| entry.is_alive(now));
        gateway_is_alive.then(|| gateway_id.clone())
    }

    pub(crate) fn hit_rate_counter(&self, key: &str, window: Duration) -> u64 {
        let RateWindow {
            index,
            expire_after,
        } = rate_window(window);
        let now = Instant::now();
        let counter_key = format!("{key}:{index}");
        let mut state = self.lock();
        state.prune_expired_rate_counters(now);
        let counter = state
            .rate_counters
            .entry(counter_key)
            .or_insert(RateCounter {
                count: 0,
                expires_at: now + expire_after,
            });
        if counter.expires_at <= now {
            *counter = RateCounter {
                count: 0,
                expires_at: now + expire_after,
            };
        }
        counter.count = counter.count.saturating_add(1);
        counter.count
    }

    pub(crate) fn add_messages(&self, count: u64) {
        let mut state = self.lock();
        state.total_messages = state.total_messages.saturating_add(count);
    }

    pub(crate) fn cluster_stats(&self) -> ClusterStats {
        let now = Instant::now();
        let state = self.lock();
        let mut stats = ClusterStats {
            total_connections: state.total_connections,
            total_messages: state.total_messages,
            ..ClusterStats::default()
        };
        let mut rooms = BTreeMap::new();
        for entry in state.gateways.values() {
            let Some(info) = entry.live_info(now) else {
                continue;
            };
            stats.gateways.push(info.clone());
            stats.active_connections += entry.connections.len() as u64;
            for (room, members) in &entry.room_members {
                *rooms.entry(room.clone()).or_insert(0) += members.len() as u64;
            }
        }
        rooms.retain(|_, count| *count > 0);
        stats.rooms = rooms;
        stats.gateways.sort_by(|a, b| a.id.cmp(&b.id));
        stats
    }
}

impl State {
    /// Deletes every entry of `gateway_id`: liveness, connections, memberships, the user
    /// index entries of its connections and the node routes that still point at it.
    fn purge_gateway(&mut self, gateway_id: &str) {
        let Some(entry) = self.gateways.remove(gateway_id) else {
            return;
        };
        for (connection_id, record) in &entry.connections {
            self.forget_user_connection(&record.user_id, connection_id, gateway_id);
        }
        for node_id in &entry.nodes {
            if self.node_routes.get(node_id).map(String::as_str) == Some(gateway_id) {
                self.node_routes.remove(node_id);
            }
        }
    }

    fn forget_user_connection(&mut self, user_id: &str, connection_id: &str, gateway_id: &str) {
        let Some(connections) = self.users.get_mut(user_id) else {
            return;
        };
        if connections.get(connection_id).map(String::as_str) == Some(gateway_id) {
            connections.remove(connection_id);
        }
        if connections.is_empty() {
            self.users.remove(user_id);
        }
    }

    fn prune_expired_rate_counters(&mut self, now: Instant) {
        if self.rate_counters.len() < self.rate_prune_at_len {
            return;
        }
        self.rate_counters
            .retain(|_, counter| counter.expires_at > now);
        self.rate_prune_at_len = (self.rate_counters.len() * 2).max(MIN_RATE_PRUNE_LEN);
    }
}

/// Removes `member` from the set under `key`, dropping the set once it is empty.
fn remove_member(sets: &mut HashMap<String, HashSet<String>>, key: &str, member: &str) {
    if let Some(members) = sets.get_mut(key) {
        members.remove(member);
        if members.is_empty() {
            sets.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_rate_counters_are_pruned_once_the_map_grows() {
        let store = MemoryStore::new();
        let window = Duration::from_secs(1);
        for index in 0..MIN_RATE_PRUNE_LEN {
            store.hit_rate_counter(&format!("client-{index}"), window);
        }
        tokio::time::advance(window * 3).await;
        store.hit_rate_counter("late", window);
        let remaining = store.lock().rate_counters.len();
        assert_eq!(remaining, 1, "only the fresh counter should remain");
    }

    #[tokio::test(start_paused = true)]
    async fn gateway_liveness_follows_the_tokio_clock() {
        let store = MemoryStore::new();
        let info = GatewayInfo {
            id: "gw-1".to_owned(),
            address: "127.0.0.1:1".to_owned(),
            started_at_ms: 1,
        };
        store.register_gateway(&info, Duration::from_secs(5));
        assert_eq!(store.live_gateways(), vec![info]);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(store.live_gateways().is_empty());
        assert_eq!(store.sweep_dead_gateways(), 1);
    }
}

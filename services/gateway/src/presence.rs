//! This gateway's footprint in the store: liveness, connection records, room membership,
//! node routes and the message counter.
//!
//! Store writes never sit on a session's path: sessions hand operations to one writer task
//! through a bounded queue. When the store is slow or down the queue fills and further
//! operations are dropped and counted (`switchboard_gateway_store_errors_total`) — presence
//! and stats degrade, delivery does not.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use store::{ConnectionRecord, GatewayInfo, RoomJoin, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::state::Shared;

/// Operations waiting for the store; enough for a reconnect storm of a full gateway.
const PRESENCE_QUEUE_CAPACITY: usize = 32 * 1024;

/// One store write.
#[derive(Debug)]
pub(crate) enum PresenceOp {
    AddConnection(ConnectionRecord),
    RemoveConnection(ConnectionRecord),
    Join { connection_id: String, room: String },
    Leave { connection_id: String, room: String },
    SetNodeRoute(String),
    RemoveNodeRoute(String),
}

/// The sending side of the presence writer.
pub(crate) struct Presence {
    ops_tx: mpsc::Sender<PresenceOp>,
}

impl Presence {
    /// Creates the queue; the receiver goes to [`run_writer`].
    pub fn new() -> (Self, mpsc::Receiver<PresenceOp>) {
        let (ops_tx, ops_rx) = mpsc::channel(PRESENCE_QUEUE_CAPACITY);
        (Self { ops_tx }, ops_rx)
    }

    /// Queues a store write; drops it (counted) when the writer is far behind.
    pub fn submit(&self, op: PresenceOp, metrics: &Metrics) {
        if self.ops_tx.try_send(op).is_err() {
            metrics.store_errors.inc();
        }
    }
}

/// Applies presence operations in order until the queue closes. What has queued up is taken
/// together, and its connection adds and room joins go to the store as one batch each: a
/// reconnect storm costs the store a round trip per batch, not per connection.
pub(crate) async fn run_writer(
    shared: Arc<Shared>,
    mut ops_rx: mpsc::Receiver<PresenceOp>,
    cancel: CancellationToken,
) {
    let gateway_id = shared.server_id.clone();
    let mut ops = Vec::with_capacity(PRESENCE_BATCH_OPS);
    let mut batch = Batch::default();
    loop {
        // At shutdown the gateway's entries are removed wholesale, so pending ops can go.
        let received = tokio::select! {
            () = cancel.cancelled() => break,
            received = ops_rx.recv_many(&mut ops, PRESENCE_BATCH_OPS) => received,
        };
        if received == 0 {
            break;
        }
        for op in ops.drain(..) {
            batch.apply(&shared, &gateway_id, op).await;
        }
        batch.flush(&shared, &gateway_id).await;
    }
}

/// Connection adds and room joins waiting to go out together. The two commute (an add
/// writes the connection's record, a join its room sets), so a storm of connect + subscribe
/// pairs becomes two store calls per batch.
#[derive(Default)]
struct Batch {
    adds: Vec<ConnectionRecord>,
    joins: Vec<RoomJoin>,
}

impl Batch {
    /// Adds and joins wait in the batch; any other operation flushes the batch first, since
    /// it may concern a connection whose add or join is still waiting.
    async fn apply(&mut self, shared: &Shared, gateway_id: &str, op: PresenceOp) {
        let store = &shared.store;
        let result = match op {
            PresenceOp::AddConnection(record) => {
                self.adds.push(record);
                return;
            }
            PresenceOp::Join {
                connection_id,
                room,
            } => {
                self.joins.push(RoomJoin {
                    connection_id,
                    room,
                });
                return;
            }
            PresenceOp::RemoveConnection(record) => {
                self.flush(shared, gateway_id).await;
                store.remove_connection(&record).await
            }
            PresenceOp::Leave {
                connection_id,
                room,
            } => {
                self.flush(shared, gateway_id).await;
                store.leave_room(gateway_id, &connection_id, &room).await
            }
            PresenceOp::SetNodeRoute(node_id) => {
                self.flush(shared, gateway_id).await;
                store.set_node_route(&node_id, gateway_id).await
            }
            PresenceOp::RemoveNodeRoute(node_id) => {
                self.flush(shared, gateway_id).await;
                store.remove_node_route(&node_id, gateway_id).await
            }
        };
        if let Err(error) = result {
            shared.metrics.store_errors.inc();
            debug!(error = %error, "presence write failed");
        }
    }

    async fn flush(&mut self, shared: &Shared, gateway_id: &str) {
        if !self.adds.is_empty() {
            if let Err(error) = shared.store.add_connections(&self.adds).await {
                shared.metrics.store_errors.inc_by(self.adds.len() as u64);
                debug!(error = %error, connections = self.adds.len(), "presence write failed");
            }
            self.adds.clear();
        }
        if !self.joins.is_empty() {
            if let Err(error) = shared.store.join_rooms(gateway_id, &self.joins).await {
                shared.metrics.store_errors.inc_by(self.joins.len() as u64);
                debug!(error = %error, joins = self.joins.len(), "presence write failed");
            }
            self.joins.clear();
        }
    }
}

/// Most queued operations taken at once.
const PRESENCE_BATCH_OPS: usize = 256;

/// Returns how this gateway describes itself in the store.
pub(crate) fn gateway_info(shared: &Shared) -> GatewayInfo {
    GatewayInfo {
        id: shared.server_id.clone(),
        address: shared.advertise_url.clone(),
        started_at_ms: shared.started_at_ms,
    }
}

/// Keeps the liveness key fresh, flushes the delivered-message counter and sweeps dead
/// gateways, every third of the liveness TTL, until `cancel`.
pub(crate) async fn run_liveness(shared: Arc<Shared>, cancel: CancellationToken) {
    let ttl = shared.config.liveness_ttl;
    let info = gateway_info(&shared);
    let mut ticker = tokio::time::interval(ttl / 3);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store_was_down = false;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        ticks += 1;
        let refreshed = refresh_once(&shared.store, &info, ttl, &shared).await;
        match (refreshed, store_was_down) {
            (Err(error), false) => {
                warn!(error = %error, "store unreachable; presence and stats degraded, delivery continues");
                store_was_down = true;
            }
            (Ok(()), true) => {
                // The store may have lost this gateway's entries (restart, or swept while
                // unreachable): write them again from what is live here.
                match resync(&shared).await {
                    Ok(()) => info!("store reachable again; presence re-registered"),
                    Err(error) => {
                        warn!(error = %error, "store reachable again but re-registration failed")
                    }
                }
                store_was_down = false;
            }
            _ => {}
        }
        // Sweeping is idempotent across gateways; doing it once per TTL is plenty.
        if ticks.is_multiple_of(3) && !store_was_down {
            match shared.store.sweep_dead_gateways().await {
                Ok(0) => {}
                Ok(swept) => info!(swept, "removed entries of dead gateways"),
                Err(error) => debug!(error = %error, "sweep failed"),
            }
        }
    }
}

/// Writes every live connection, room membership and node route of this gateway to the store.
async fn resync(shared: &Shared) -> Result<(), store::StoreError> {
    let store = &shared.store;
    let gateway_id = &shared.server_id;
    for shard in 0..crate::connections::SHARDS {
        for conn in shared.connections.shard(shard) {
            store.add_connection(&conn.record(gateway_id)).await?;
            if let (Some(node_id), "node") = (&conn.owner.node_id, conn.owner.role) {
                store.set_node_route(node_id, gateway_id).await?;
            }
        }
    }
    for (room, connection_ids) in shared.rooms.memberships() {
        for connection_id in connection_ids {
            store.join_room(gateway_id, &connection_id, &room).await?;
        }
    }
    Ok(())
}

async fn refresh_once(
    store: &Store,
    info: &GatewayInfo,
    ttl: Duration,
    shared: &Shared,
) -> Result<(), store::StoreError> {
    store.register_gateway(info, ttl).await?;
    let delivered = shared.delivered_since_flush.swap(0, Ordering::Relaxed);
    if delivered > 0
        && let Err(error) = store.add_messages(delivered).await
    {
        // Put the count back so the next refresh carries it.
        shared
            .delivered_since_flush
            .fetch_add(delivered, Ordering::Relaxed);
        return Err(error);
    }
    Ok(())
}

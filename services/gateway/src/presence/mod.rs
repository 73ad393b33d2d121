//! This gateway's footprint in the store: liveness, connection records, room membership,
//! node routes and the message counter.
//!
//! Store writes never sit on a session's path: sessions hand operations to one writer task
//! through a bounded queue. When the store is slow or down the queue fills and further
//! operations are dropped and counted (`switchboard_gateway_store_errors_total`) — presence
//! and stats degrade, delivery does not.
//!
//! # Resync
//!
//! When the store may have lost or missed this gateway's entries, the writer writes them
//! all again from what is live here (a *resync*). It is requested by the liveness task when
//! a refresh finds the gateway's liveness entry gone although it was written (Redis
//! restarted or failed over without its data, a flush, or a refresh later than the TTL) or
//! when the store answers again after failing, and by [`Presence::submit`] when it had to
//! drop an operation. A request is a flag and a wake-up, never a queued message, so it
//! cannot be dropped by a full queue.
//!
//! The resync runs *inside* the writer, between two batches of operations, so it is ordered
//! with them. Sessions change the local maps (connections, rooms) before they queue the
//! matching operation, so the snapshot the resync takes contains exactly the connections
//! whose removal has not been queued yet — a removal queued later is applied after the
//! resync's writes and cannot be undone by them, and a closed connection cannot reappear.
//! Records and memberships the store holds that are not in the snapshot (removals and
//! leaves lost during an outage) are deleted. The writes go out in batches through the store's batch calls, and
//! the liveness refresh runs in its own task, never waiting for a resync.

mod liveness;
mod resync;

use std::sync::Arc;

use store::{ConnectionRecord, RoomJoin};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(crate) use self::liveness::{gateway_info, run_liveness};
pub(crate) use self::resync::ResyncReason;
use self::resync::{ResyncMetrics, ResyncRequest, resync};
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
    resync: ResyncRequest,
}

impl Presence {
    /// Creates the queue; the receiver goes to [`run_writer`].
    pub fn new() -> (Self, mpsc::Receiver<PresenceOp>) {
        let (ops_tx, ops_rx) = mpsc::channel(PRESENCE_QUEUE_CAPACITY);
        let presence = Self {
            ops_tx,
            resync: ResyncRequest::default(),
        };
        (presence, ops_rx)
    }

    /// Queues a store write; drops it (counted) when the writer is far behind. A drop leaves
    /// the store wrong, so it also marks a resync, started by the next successful liveness
    /// refresh (not at once: the writer is behind already).
    pub fn submit(&self, op: PresenceOp, metrics: &Metrics) {
        if self.ops_tx.try_send(op).is_err() {
            metrics.store_errors.inc();
            self.resync.mark(ResyncReason::OperationsDropped);
        }
    }

    /// Asks the writer to write every entry of this gateway again, after the operations it
    /// is applying now.
    pub fn request_resync(&self, reason: ResyncReason) {
        self.resync.mark(reason);
        self.resync.wake.notify_one();
    }

    /// Wakes the writer for a resync that was marked but not started (an operation was
    /// dropped) or that failed; the liveness task calls it after each successful refresh.
    fn retry_pending_resync(&self) {
        if self.resync.is_pending() {
            self.resync.wake.notify_one();
        }
    }
}

/// What the writer does next.
enum Next {
    Apply,
    Resync,
    Stop,
}

/// Applies presence operations in order until the queue closes. What has queued up is taken
/// together, and its connection adds and room joins go to the store as one batch each: a
/// reconnect storm costs the store a round trip per batch, not per connection. A requested
/// resync runs between two batches (see the module docs for why that order matters).
pub(crate) async fn run_writer(
    shared: Arc<Shared>,
    mut ops_rx: mpsc::Receiver<PresenceOp>,
    cancel: CancellationToken,
) {
    let gateway_id = shared.server_id.clone();
    let metrics = ResyncMetrics::register(&shared.metrics.registry);
    let mut ops = Vec::with_capacity(PRESENCE_BATCH_OPS);
    let mut batch = Batch::default();
    loop {
        // At shutdown the gateway's entries are removed wholesale, so pending ops can go.
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => Next::Stop,
            () = shared.presence.resync.wake.notified() => Next::Resync,
            received = ops_rx.recv_many(&mut ops, PRESENCE_BATCH_OPS) => {
                if received == 0 { Next::Stop } else { Next::Apply }
            }
        };
        match next {
            Next::Stop => break,
            Next::Apply => {
                for op in ops.drain(..) {
                    batch.apply(&shared, &gateway_id, op).await;
                }
                batch.flush(&shared, &gateway_id).await;
            }
            Next::Resync => {
                let Some(reason) = shared.presence.resync.take() else {
                    continue;
                };
                batch.flush(&shared, &gateway_id).await;
                let started = Instant::now();
                let outcome = resync(&shared).await;
                let elapsed = started.elapsed();
                match outcome {
                    Ok(written) => {
                        metrics.record_success(reason, elapsed);
                        info!(
                            reason = reason.as_str(),
                            connections = written.connections,
                            memberships = written.memberships,
                            node_routes = written.node_routes,
                            stale_removed = written.stale_removed,
                            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                            "presence resynced: this gateway's entries written to the store again"
                        );
                    }
                    Err(error) => {
                        metrics.failures.inc();
                        shared.metrics.store_errors.inc();
                        // Retried after the next successful liveness refresh.
                        shared.presence.resync.mark(reason);
                        warn!(
                            reason = reason.as_str(),
                            error = %error,
                            "presence resync failed; retried after the next successful liveness refresh"
                        );
                    }
                }
            }
        }
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

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

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use store::{ConnectionRecord, GatewayInfo, GatewayRefresh, RoomJoin, Store, StoreError};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::state::Shared;

/// Operations waiting for the store; enough for a reconnect storm of a full gateway.
const PRESENCE_QUEUE_CAPACITY: usize = 32 * 1024;
/// Connection records or room memberships per store call of a resync: one round trip per
/// thousand keeps a resync of 20,000 connections to a few dozen calls, while each Lua call
/// stays short enough not to stall Redis for other clients.
const RESYNC_BATCH: usize = 1000;

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

/// Why the store's copy of this gateway's entries is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResyncReason {
    /// The liveness entry was gone within its TTL: the store lost its data without an error.
    StoreLostData,
    /// The liveness entry had expired (a refresh came too late); peers may have swept us.
    LivenessExpired,
    /// The store answers again after failing; writes in between were lost.
    StoreReachableAgain,
    /// An operation was dropped because the writer's queue was full.
    OperationsDropped,
}

impl ResyncReason {
    /// The metric label and log field.
    fn as_str(self) -> &'static str {
        match self {
            Self::StoreLostData => "store_lost_data",
            Self::LivenessExpired => "liveness_expired",
            Self::StoreReachableAgain => "store_reachable_again",
            Self::OperationsDropped => "operations_dropped",
        }
    }
}

/// A pending resync: the reason, and a wake-up for the writer (a `Notify` keeps one permit,
/// so a request made while the writer is busy is seen when it next waits).
#[derive(Default)]
struct ResyncRequest {
    pending: Mutex<Option<ResyncReason>>,
    wake: Notify,
}

impl ResyncRequest {
    fn mark(&self, reason: ResyncReason) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep the first reason: it says what went wrong; later ones are consequences.
        pending.get_or_insert(reason);
    }

    fn is_pending(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn take(&self) -> Option<ResyncReason> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
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

/// The resync counters and timing, registered on the gateway's registry by the writer.
struct ResyncMetrics {
    completed: IntCounterVec,
    failures: IntCounter,
    duration: Histogram,
}

impl ResyncMetrics {
    fn register(registry: &Registry) -> Self {
        let completed = IntCounterVec::new(
            Opts::new(
                "switchboard_gateway_presence_resyncs_total",
                "Completed presence resyncs (this gateway's entries written to the store again), by reason",
            ),
            &["reason"],
        )
        .expect("the metric definition is valid");
        let failures = IntCounter::new(
            "switchboard_gateway_presence_resync_failures_total",
            "Presence resyncs that failed on a store error (retried after the next liveness refresh)",
        )
        .expect("the metric definition is valid");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_gateway_presence_resync_seconds",
                "Duration of completed presence resyncs",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("the metric definition is valid");
        for (name, collector) in [
            (
                "resyncs",
                Box::new(completed.clone()) as Box<dyn prometheus::core::Collector>,
            ),
            ("resync failures", Box::new(failures.clone())),
            ("resync duration", Box::new(duration.clone())),
        ] {
            if let Err(error) = registry.register(collector) {
                // Only a second writer on one registry gets here; its figures go unexported.
                warn!(metric = name, error = %error, "presence metric not registered");
            }
        }
        Self {
            completed,
            failures,
            duration,
        }
    }

    fn record_success(&self, reason: ResyncReason, elapsed: Duration) {
        self.completed.with_label_values(&[reason.as_str()]).inc();
        self.duration.observe(elapsed.as_secs_f64());
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
/// gateways until `cancel`. The refresh runs every third of the liveness TTL (sooner after a
/// failure) and waits for nothing but its own store call: sweeping runs beside it, and a
/// resync it asks for runs in the presence writer.
pub(crate) async fn run_liveness(shared: Arc<Shared>, cancel: CancellationToken) {
    tokio::join!(
        refresh_liveness(&shared, &cancel),
        sweep_dead_gateways(&shared, &cancel)
    );
}

async fn refresh_liveness(shared: &Shared, cancel: &CancellationToken) {
    let ttl = shared.config.liveness_ttl;
    let info = gateway_info(shared);
    // After a failure the next attempt comes sooner, so a store that is back is noticed
    // (and a resync started) long before the TTL runs out.
    let retry_after = (ttl / 15).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(ttl / 3);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store_was_down = false;
    // `serve` registered the gateway just before this task started, unless the store was
    // unreachable then: a first refresh that finds no entry means that.
    let mut last_written: Option<Instant> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let attempted_at = Instant::now();
        match refresh_once(&shared.store, &info, ttl, shared).await {
            Err(error) => {
                if !store_was_down {
                    warn!(error = %error, "store unreachable; presence and stats degraded, delivery continues");
                    store_was_down = true;
                }
                ticker.reset_after(retry_after);
                continue;
            }
            Ok(GatewayRefresh::Missing) => {
                let reason = match last_written {
                    None => {
                        info!("store reachable; writing this gateway's entries");
                        ResyncReason::StoreReachableAgain
                    }
                    Some(at) if attempted_at.duration_since(at) < ttl => {
                        warn!(
                            "store lost this gateway's entries without an error (restart, failover or flush); writing them again"
                        );
                        ResyncReason::StoreLostData
                    }
                    Some(_) => {
                        warn!("this gateway's liveness had expired; writing its entries again");
                        ResyncReason::LivenessExpired
                    }
                };
                shared.presence.request_resync(reason);
            }
            Ok(GatewayRefresh::Continued) if store_was_down => {
                info!("store reachable again; writing this gateway's entries again");
                shared
                    .presence
                    .request_resync(ResyncReason::StoreReachableAgain);
            }
            Ok(GatewayRefresh::Continued) => {}
        }
        store_was_down = false;
        last_written = Some(attempted_at);
        shared.presence.retry_pending_resync();
    }
}

/// Sweeping is idempotent across gateways; doing it once per TTL is plenty.
async fn sweep_dead_gateways(shared: &Shared, cancel: &CancellationToken) {
    let mut ticker = tokio::time::interval(shared.config.liveness_ttl);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the first sweep comes a TTL after start.
    ticker.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match shared.store.sweep_dead_gateways().await {
            Ok(0) => {}
            Ok(swept) => info!(swept, "removed entries of dead gateways"),
            Err(error) => debug!(error = %error, "sweep failed"),
        }
    }
}

/// What a resync wrote.
struct Resynced {
    connections: usize,
    memberships: usize,
    node_routes: usize,
    stale_removed: usize,
}

/// Writes every live connection, room membership and node route of this gateway to the
/// store in batches, and deletes the records of connections that are no longer open and
/// memberships that no longer hold. Runs
/// in the presence writer only (see the module docs).
async fn resync(shared: &Shared) -> Result<Resynced, StoreError> {
    let store = &shared.store;
    let gateway_id = shared.server_id.as_str();
    // Liveness first: entries of a gateway without it may be swept while they are written.
    store
        .register_gateway(&gateway_info(shared), shared.config.liveness_ttl)
        .await?;

    // The snapshot: connections before memberships, both taken without awaiting. A
    // connection leaves its rooms before it leaves the connection map, so no membership of
    // a connection missing from the first list is in the second.
    let mut records = Vec::new();
    let mut node_ids = Vec::new();
    for shard in 0..crate::connections::SHARDS {
        for conn in shared.registry.connections.shard(shard) {
            records.push(conn.record(gateway_id));
            if let (Some(node_id), "node") = (&conn.owner.node_id, conn.owner.role) {
                node_ids.push(node_id.clone());
            }
        }
    }
    let joins: Vec<RoomJoin> = shared
        .fanout
        .memberships()
        .into_iter()
        .flat_map(|(room, connection_ids)| {
            connection_ids
                .into_iter()
                .map(move |connection_id| RoomJoin {
                    connection_id,
                    room: room.clone(),
                })
        })
        .collect();

    let open: HashSet<&str> = records
        .iter()
        .map(|record| record.connection_id.as_str())
        .collect();
    let stale_connections: Vec<ConnectionRecord> = store
        .gateway_connections(gateway_id)
        .await?
        .into_iter()
        .filter(|stored| !open.contains(stored.connection_id.as_str()))
        .collect();
    for chunk in stale_connections.chunks(RESYNC_BATCH) {
        store.remove_connections(chunk).await?;
    }
    // Read after the stale connections went, which took their memberships with them.
    let joined: HashSet<(&str, &str)> = joins
        .iter()
        .map(|join| (join.room.as_str(), join.connection_id.as_str()))
        .collect();
    let stale_memberships: Vec<RoomJoin> = store
        .gateway_memberships(gateway_id)
        .await?
        .into_iter()
        .filter(|stored| !joined.contains(&(stored.room.as_str(), stored.connection_id.as_str())))
        .collect();
    for chunk in stale_memberships.chunks(RESYNC_BATCH) {
        store.leave_rooms(gateway_id, chunk).await?;
    }
    for chunk in records.chunks(RESYNC_BATCH) {
        store.add_connections(chunk).await?;
    }
    for node_id in &node_ids {
        store.set_node_route(node_id, gateway_id).await?;
    }
    for chunk in joins.chunks(RESYNC_BATCH) {
        store.join_rooms(gateway_id, chunk).await?;
    }
    Ok(Resynced {
        connections: records.len(),
        memberships: joins.len(),
        node_routes: node_ids.len(),
        stale_removed: stale_connections.len() + stale_memberships.len(),
    })
}

async fn refresh_once(
    store: &Store,
    info: &GatewayInfo,
    ttl: Duration,
    shared: &Shared,
) -> Result<GatewayRefresh, StoreError> {
    let refresh = store.refresh_gateway(info, ttl).await?;
    let delivered = shared.fanout.take_delivered();
    if delivered > 0
        && let Err(error) = store.add_messages(delivered).await
    {
        // Put the count back so the next refresh carries it.
        shared.fanout.restore_delivered(delivered);
        return Err(error);
    }
    Ok(refresh)
}

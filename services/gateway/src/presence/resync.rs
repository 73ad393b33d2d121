//! The resync: this gateway's entries written to the store again from what is live here
//! (see the parent module's docs for when and why it runs inside the writer).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use store::{ConnectionRecord, RoomJoin, StoreError};
use tokio::sync::Notify;
use tracing::warn;

use super::gateway_info;
use crate::state::Shared;

/// Connection records or room memberships per store call of a resync: one round trip per
/// thousand keeps a resync of 20,000 connections to a few dozen calls, while each Lua call
/// stays short enough not to stall Redis for other clients.
const RESYNC_BATCH: usize = 1000;

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
    pub(super) fn as_str(self) -> &'static str {
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
pub(super) struct ResyncRequest {
    pending: Mutex<Option<ResyncReason>>,
    pub(super) wake: Notify,
}

impl ResyncRequest {
    pub(super) fn mark(&self, reason: ResyncReason) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep the first reason: it says what went wrong; later ones are consequences.
        pending.get_or_insert(reason);
    }

    pub(super) fn is_pending(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    pub(super) fn take(&self) -> Option<ResyncReason> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The resync counters and timing, registered on the gateway's registry by the writer.
pub(super) struct ResyncMetrics {
    completed: IntCounterVec,
    pub(super) failures: IntCounter,
    duration: Histogram,
}

impl ResyncMetrics {
    pub(super) fn register(registry: &Registry) -> Self {
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

    pub(super) fn record_success(&self, reason: ResyncReason, elapsed: Duration) {
        self.completed.with_label_values(&[reason.as_str()]).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// What a resync wrote.
pub(super) struct Resynced {
    pub(super) connections: usize,
    pub(super) memberships: usize,
    pub(super) node_routes: usize,
    pub(super) stale_removed: usize,
}

/// Writes every live connection, room membership and node route of this gateway to the
/// store in batches, and deletes the records of connections that are no longer open and
/// memberships that no longer hold. Runs
/// in the presence writer only (see the module docs).
pub(super) async fn resync(shared: &Shared) -> Result<Resynced, StoreError> {
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

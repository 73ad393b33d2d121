//! `GET /api/ws/stats`: cluster-wide statistics.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::STORE_PROBE_TIMEOUT;
use crate::state::Shared;

/// Cluster-wide statistics from the store; when the store is unreachable, this gateway's
/// own figures with `"degraded": true`.
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, shared.store.cluster_stats()).await {
        Ok(Ok(stats)) => Json(json!({
            "total_connections": stats.total_connections,
            "active_connections": stats.active_connections,
            "total_messages": stats.total_messages,
            "rooms_created": stats.rooms.len(),
            "rooms": stats.rooms,
            "gateways": stats.gateways,
            "live_gateways": stats.gateways.len(),
            "server_id": shared.server_id,
            "degraded": false,
        })),
        _ => {
            shared.metrics.store_errors.inc();
            let rooms: BTreeMap<String, usize> = shared.fanout.local_counts().into_iter().collect();
            Json(json!({
                "total_connections": shared.metrics.connections_opened.get(),
                "active_connections": shared.registry.connections.len(),
                "total_messages": shared.metrics.messages_out.with_label_values(&["room"]).get(),
                "rooms_created": rooms.len(),
                "rooms": rooms,
                "gateways": [],
                "live_gateways": null,
                "server_id": shared.server_id,
                "degraded": true,
            }))
        }
    }
}

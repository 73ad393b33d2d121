//! `GET /api/ws/stats`: cluster-wide statistics.
//!
//! `publishers_active` (seed 001) counts the publisher replicas whose liveness in the store
//! has not expired: the leader that publishes the six streams and its standbys alike, as
//! every replica announces itself under `sb:svc:publisher`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use protocol::streams::components;
use serde_json::{Value, json};

use super::STORE_PROBE_TIMEOUT;
use crate::state::Shared;

/// Cluster-wide statistics from the store; when the store is unreachable, this gateway's
/// own figures with `"degraded": true` (and `publishers_active: null`).
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let from_store = async {
        let stats = shared.store.cluster_stats().await?;
        let publishers = shared
            .store
            .service_instances(components::PUBLISHER)
            .await?;
        Ok::<_, store::StoreError>((stats, publishers))
    };
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, from_store).await {
        Ok(Ok((stats, publishers))) => Json(json!({
            "total_connections": stats.total_connections,
            "active_connections": stats.active_connections,
            "total_messages": stats.total_messages,
            "rooms_created": stats.rooms.len(),
            "rooms": stats.rooms,
            "gateways": stats.gateways,
            "live_gateways": stats.gateways.len(),
            "publishers_active": publishers.iter().filter(|publisher| publisher.live).count(),
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
                "publishers_active": null,
                "server_id": shared.server_id,
                "degraded": true,
            }))
        }
    }
}

//! Kubernetes probes (`/healthz`, `/readyz`) and Prometheus `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::STORE_PROBE_TIMEOUT;
use crate::state::Shared;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let draining = shared.drain.is_draining();
    let bus_connected = shared.bus.is_connected();
    let store_reachable = matches!(
        tokio::time::timeout(STORE_PROBE_TIMEOUT, shared.store.ping()).await,
        Ok(Ok(()))
    );
    // Readiness follows draining and NATS only. A Redis blip degrades stats, presence and
    // cluster-wide limits but never delivery, and it hits every gateway at once: were it part
    // of readiness, the load balancer would drop the whole fleet together.
    let ready = !draining && bus_connected;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "bus": { "backend": shared.bus.backend_name(), "connected": bus_connected },
        "store": {
            "backend": shared.store.backend_name(),
            "reachable": store_reachable,
            "affects_readiness": false,
        },
        "draining": draining,
    });
    (status, Json(body)).into_response()
}

pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = telemetry::encode_metrics(&shared.metrics.registry);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

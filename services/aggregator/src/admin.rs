//! The admin server (`telemetry.admin_listen`): `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bus::Bus;
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How long `/readyz` waits for the store.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct AdminState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) bus: Bus,
    pub(crate) store: Store,
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::warn!(error = %error, "admin server failed");
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    state
        .metrics
        .bus_dropped
        .set(i64::try_from(state.bus.dropped_messages()).unwrap_or(i64::MAX));
    (
        [(header::CONTENT_TYPE, telemetry::METRICS_CONTENT_TYPE)],
        telemetry::encode_metrics(&state.metrics.registry),
    )
        .into_response()
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let bus_connected = state.bus.is_connected();
    let store_reachable = matches!(
        tokio::time::timeout(STORE_PROBE_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let status = if bus_connected && store_reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "bus": { "backend": state.bus.backend_name(), "connected": bus_connected },
        "store": { "backend": state.store.backend_name(), "reachable": store_reachable },
    });
    (status, axum::Json(body)).into_response()
}

//! The HTTP listener: the ML nodes' callbacks (`POST /v1/poc-batches/generated|validated`,
//! one handler), the node management API (`/v1/nodes`), `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use protocol::ErrorCode;
use protocol::batch::{
    ApiError, Batch, BatchKind, CALLBACK_PATH_GENERATED, CALLBACK_PATH_VALIDATED, NodeReply,
    NodeRequest,
};
use serde_json::json;
use tokio::time::Instant;

use crate::error::IngestError;
use crate::nodes::NodeError;
use crate::pipeline::{Delivery, DuplicateBy, Outcome, Path};
use crate::server::App;

/// How long readiness waits for the hash-record store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Seconds a node should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "5";

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(CALLBACK_PATH_GENERATED, post(generated))
        .route(CALLBACK_PATH_VALIDATED, post(validated))
        .route("/v1/nodes", get(list_nodes).post(register_node))
        .route("/v1/nodes/{id}", delete(remove_node))
        .route("/v1/nodes/{id}/start", post(start_node))
        .route("/v1/nodes/{id}/stop", post(stop_node))
        .route("/v1/progress", get(progress))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// `{"error": {"code", "message", "reason"?}}` with the code's HTTP status.
fn error_response(code: ErrorCode, message: &str, reason: Option<&str>) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut error = json!({ "code": code.as_str(), "message": message });
    if let Some(reason) = reason {
        error["reason"] = json!(reason);
    }
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    if code == ErrorCode::Unavailable
        && let Ok(value) = header::HeaderValue::from_str(RETRY_AFTER_SECONDS)
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn generated(State(app): State<Arc<App>>, body: Body) -> Response {
    callback(&app, BatchKind::Generated, body).await
}

async fn validated(State(app): State<Arc<App>>, body: Body) -> Response {
    callback(&app, BatchKind::Validated, body).await
}

/// The one callback handler: read (bounded), decode, store once, answer.
async fn callback(app: &App, kind: BatchKind, body: Body) -> Response {
    let received_at = Instant::now();
    let metrics = app.pipeline.metrics();
    let invalid = |reason: &str| metrics.invalid.with_label_values(&["http", reason]).inc();
    let limit = app.config.max_batch_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        invalid("too_large");
        return error_response(
            ErrorCode::MessageTooLarge,
            &format!("batch exceeds {limit} bytes"),
            Some("too_large"),
        );
    };
    let batch = match Batch::from_json(kind, &bytes) {
        Ok(batch) => batch,
        Err(error) => {
            invalid(error.reason());
            return error_response(
                ErrorCode::InvalidMessage,
                &error.to_string(),
                Some(error.reason()),
            );
        }
    };
    // Lossless: a request waits for a slot rather than being refused.
    let Ok(_slot) = app.http_slots.acquire().await else {
        return error_response(
            ErrorCode::ShuttingDown,
            ErrorCode::ShuttingDown.description(),
            None,
        );
    };
    let hash = batch.content_hash().to_hex();
    let in_flight = metrics.in_flight.with_label_values(&["http"]);
    in_flight.inc();
    let delivery = Delivery {
        batch,
        path: Path::Http,
        node: None,
    };
    let result = app.pipeline.process_next_batch(delivery).await;
    in_flight.dec();
    let body = match result {
        Ok(Outcome::Stored { sequence }) => {
            json!({ "status": "stored", "hash": hash, "sequence": sequence })
        }
        Ok(Outcome::Duplicate { by }) => {
            let by = match by {
                DuplicateBy::Record => "record",
                DuplicateBy::Window => "window",
            };
            json!({ "status": "duplicate", "hash": hash, "by": by })
        }
        Err(IngestError::TooLarge(_)) => {
            invalid("too_large");
            return error_response(
                ErrorCode::MessageTooLarge,
                "batch exceeds the bus message limit",
                Some("too_large"),
            );
        }
        Err(IngestError::Unavailable { .. }) => {
            return error_response(
                ErrorCode::Unavailable,
                "batch store unavailable; retry later",
                None,
            );
        }
    };
    metrics
        .ack_seconds
        .with_label_values(&["http"])
        .observe(received_at.elapsed().as_secs_f64());
    (StatusCode::OK, Json(body)).into_response()
}

fn node_reply(result: Result<Vec<protocol::batch::NodeInfo>, NodeError>) -> Response {
    match result {
        Ok(nodes) => Json(NodeReply {
            ok: true,
            nodes,
            error: None,
        })
        .into_response(),
        Err(error) => {
            let (status, code) = node_error_code(&error);
            let reply = NodeReply {
                ok: false,
                nodes: Vec::new(),
                error: Some(ApiError {
                    code,
                    message: error.to_string(),
                }),
            };
            (status, Json(reply)).into_response()
        }
    }
}

/// Maps a management error to the closed code set: a malformed request is
/// `invalid_message`, an unknown node `node_not_connected` (404).
pub(crate) fn node_error_code(error: &NodeError) -> (StatusCode, ErrorCode) {
    let code = match error {
        NodeError::Invalid(_) => ErrorCode::InvalidMessage,
        NodeError::NotFound(_) => ErrorCode::NodeNotConnected,
    };
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, code)
}

async fn list_nodes(State(app): State<Arc<App>>) -> Response {
    node_reply(Ok(app.nodes.list()))
}

async fn register_node(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let request: NodeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return node_reply(Err(NodeError::Invalid(error.to_string()))),
    };
    node_reply(crate::api::register(&app.nodes, &request).map(|node| vec![node]))
}

async fn remove_node(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    node_reply(app.nodes.remove(&id).map(|node| vec![node]))
}

async fn start_node(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    node_reply(app.nodes.start(&id).map(|node| vec![node]))
}

async fn stop_node(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    node_reply(app.nodes.stop(&id).map(|node| vec![node]))
}

/// Every node's totals, as in the `batch_progress` events.
async fn progress(State(app): State<Arc<App>>) -> Response {
    Json(app.progress.snapshot()).into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let draining = app.draining.load(Ordering::Relaxed);
    let bus_connected = app.bus.is_connected();
    let records_reachable = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, app.records.ping()).await,
        Ok(Ok(()))
    );
    let ready = !draining && bus_connected && records_reachable;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "bus": { "backend": app.bus.backend_name(), "connected": bus_connected },
        "records": { "backend": app.records.backend_name(), "reachable": records_reachable },
        "nodes": app.nodes.list(),
        "draining": draining,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = telemetry::encode_metrics(&app.pipeline.metrics().registry);
    (
        [(header::CONTENT_TYPE, telemetry::METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

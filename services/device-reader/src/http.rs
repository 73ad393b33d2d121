//! The HTTP listener: the management API (`/v1/devices`, the same operations as over NATS),
//! `/metrics`, `/healthz`, `/readyz`.
//!
//! Replies are the bare result (`[DeviceStatus…]` or one `DeviceStatus`); refusals are
//! `{"error": {"code", "message"}}` with the code's HTTP status (`device_not_found` 404,
//! `invalid_message` 400).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::device::{DeviceStatus, FaultRequest};
use serde_json::json;

use crate::api::{error_code, manage};
use crate::config::DeviceConfig;
use crate::devices::{Control, DeviceError};
use crate::server::App;

/// How long readiness waits for the store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/devices", get(list_devices).post(add_device))
        .route("/v1/devices/{id}", get(get_device))
        .route("/v1/devices/{id}/start", post(start_device))
        .route("/v1/devices/{id}/stop", post(stop_device))
        .route("/v1/devices/{id}/faults", post(inject_fault))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

fn count(app: &App, method: &str, ok: bool) {
    app.context
        .metrics
        .api_requests
        .with_label_values(&["http", method, if ok { "ok" } else { "error" }])
        .inc();
}

fn reply(app: &App, method: &str, result: Result<DeviceStatus, DeviceError>) -> Response {
    count(app, method, result.is_ok());
    match result {
        Ok(status) => Json(status).into_response(),
        Err(error) => refuse(&error),
    }
}

fn refuse(error: &DeviceError) -> Response {
    let code = error_code(error);
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": { "code": code.as_str(), "message": error.to_string() } });
    (status, Json(body)).into_response()
}

async fn list_devices(State(app): State<Arc<App>>) -> Response {
    count(&app, "list_devices", true);
    Json(app.devices.list()).into_response()
}

async fn get_device(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let result = app.devices.get(&id);
    reply(&app, "get_device", result)
}

async fn add_device(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let result = match serde_json::from_slice::<DeviceConfig>(&body) {
        Ok(device) => manage(&app, Control::Add(Box::new(device))).await,
        Err(error) => Err(DeviceError::Invalid(format!(
            "malformed device configuration: {error}"
        ))),
    };
    let created = result.is_ok();
    let response = reply(&app, "add_device", result);
    if created {
        (StatusCode::CREATED, response).into_response()
    } else {
        response
    }
}

async fn start_device(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let result = manage(&app, Control::Start(id)).await;
    reply(&app, "start_device", result)
}

async fn stop_device(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let result = manage(&app, Control::Stop(id)).await;
    reply(&app, "stop_device", result)
}

/// Body: the switches to change (`fault_rate`, `stuck`, `disconnected`, `fail_next`); the
/// device comes from the path.
async fn inject_fault(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let parsed = if body.is_empty() {
        Ok(serde_json::Map::new())
    } else {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
    };
    let result = match parsed {
        Ok(mut fields) => {
            fields.insert("device_id".into(), json!(id));
            match serde_json::from_value::<FaultRequest>(serde_json::Value::Object(fields)) {
                Ok(request) => manage(&app, Control::Fault(request)).await,
                Err(error) => Err(DeviceError::Invalid(format!(
                    "malformed fault request: {error}"
                ))),
            }
        }
        Err(error) => Err(DeviceError::Invalid(format!(
            "malformed fault request: {error}"
        ))),
    };
    reply(&app, "inject_fault", result)
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let draining = app.draining.load(Ordering::Relaxed);
    let bus_connected = app.context.bus.is_connected();
    let store_reachable = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, app.context.store.ping()).await,
        Ok(Ok(()))
    );
    let ready = !draining && bus_connected && store_reachable;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "instance_id": app.context.instance_id,
        "bus": { "backend": app.context.bus.backend_name(), "connected": bus_connected },
        "store": { "backend": app.context.store.backend_name(), "reachable": store_reachable },
        "devices": app.devices.list(),
        "draining": draining,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = telemetry::encode_metrics(&app.context.metrics.registry);
    (
        [(header::CONTENT_TYPE, telemetry::METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

//! The HTTP side of the gateway (seed 001), one module per concern: the dashboard page,
//! probes and Prometheus metrics, the stream catalogue, cluster stats, and the server publish
//! API with the access check of operational endpoints, operator commands to nodes, and CORS
//! for the browser-facing API.

mod catalogue;
mod commands;
mod dashboard;
mod nodes;
mod probes;
mod publish;
mod rules;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::ErrorCode;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::handshake;
use crate::state::Shared;

pub(crate) use catalogue::{streams, subscription_info};
pub(crate) use dashboard::DashboardAssets;
pub use dashboard::DashboardError;
pub(crate) use probes::{healthz, metrics, readyz};
pub(crate) use publish::{operations_access, publish};
pub(crate) use stats::stats;

/// The gateway's routes: the WebSocket endpoints, the HTTP API, probes and the dashboard.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let dashboard_enabled = shared.config.dashboard;
    // What an operator reads; behind a key or token when `gateway.private_operations` is on.
    let operations = Router::new()
        .route("/api/ws/stats", get(stats))
        .route("/api/ws/metrics/history", get(crate::metrics_api::history))
        .route(
            "/api/ws/metrics/statistics",
            get(crate::metrics_api::statistics),
        )
        .route("/api/ws/metrics/summary", get(crate::metrics_api::summary))
        .route(
            "/api/ws/metrics/rules",
            get(rules::list).put(rules::replace).delete(rules::reset),
        )
        .route("/api/ws/devices", get(crate::devices_api::list))
        .route("/api/ws/devices/{id}", get(crate::devices_api::get))
        .route("/api/ws/nodes", get(nodes::list))
        .route("/api/ws/nodes/{node_id}", get(nodes::get))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            operations_access,
        ));
    // The API a control panel on another site calls from a browser (CORS when configured).
    let browser_api = Router::new()
        .merge(operations)
        .route("/api/ws/streams", get(streams))
        .route("/api/ws/publish", post(publish))
        .route("/api/ws/nodes/{node_id}/commands", post(commands::send));
    let browser_api = match cors_layer(&shared.config.cors_allowed_origins) {
        Some(cors) => browser_api.layer(cors),
        None => browser_api,
    };
    let prometheus = Router::new().route("/metrics", get(metrics)).route_layer(
        axum::middleware::from_fn_with_state(shared.clone(), operations_access),
    );
    let router = Router::new()
        .merge(browser_api)
        .merge(prometheus)
        .route("/api/ws/connect", get(handshake::connect))
        .route("/api/ws/subscribe", post(subscription_info))
        .route("/api/ws/unsubscribe", post(subscription_info))
        .route("/api/v1/ws/v2/power", get(crate::compat::power))
        .route("/api/v1/ws/v2/health", get(crate::compat::health))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let router = if dashboard_enabled {
        router
            .route("/", get(dashboard::dashboard))
            .route("/assets/{*path}", get(dashboard::asset))
    } else {
        router
    };
    router.with_state(shared)
}

/// CORS for `gateway.cors_allowed_origins`; `None` (no CORS headers at all) when it is empty.
/// Origins were checked by `Config::validate`; one that still does not parse is skipped.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// Reads a JSON body of at most `max_message_bytes` within `request_body_timeout` and parses
/// it as `T`; on failure, the answer to send (413 `message_too_large` or 400
/// `invalid_message`). Call it after the credentials are checked.
pub(crate) async fn read_json_body<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<T, Response> {
    let body = http_front::read_body(
        headers,
        body,
        shared.config.max_message_bytes,
        shared.config.request_body_timeout,
    )
    .await
    .map_err(|error| match error {
        http_front::BodyError::TooLarge => error_response(ErrorCode::MessageTooLarge),
        http_front::BodyError::Timeout | http_front::BodyError::Read(_) => {
            error_response(ErrorCode::InvalidMessage)
        }
    })?;
    serde_json::from_slice(&body).map_err(|_| error_response(ErrorCode::InvalidMessage))
}

/// How long readiness and stats wait for the store before answering without it.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers with the code's HTTP status and `{"error": {"code", "message"}}`.
pub(crate) fn error_response(code: ErrorCode) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": { "code": code.as_str(), "message": code.description() } });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_carries_code_and_status() {
        let response = error_response(ErrorCode::TokenExpired);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

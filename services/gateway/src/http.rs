//! The HTTP side of the gateway (seed 001): streams, stats, server publish, health, metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bus::Headers;
use http_front::BodyError;
use protocol::envelope::{HEADER_ORIGIN_SERVER, encode_bus};
use protocol::room::STANDARD_ROOMS;
use protocol::{ErrorCode, RoomEnvelope, RoomName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::Shared;

/// How long readiness and stats wait for the store before answering without it.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers with the code's HTTP status and `{"error": {"code", "message"}}`.
pub(crate) fn error_response(code: ErrorCode) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": { "code": code.as_str(), "message": code.description() } });
    (status, Json(body)).into_response()
}

/// The dashboard: one static page; it connects back to `/api/ws/connect` with the token from
/// its URL (`/?token=…`).
pub(crate) async fn dashboard() -> Response {
    const PAGE: &str = include_str!("../assets/dashboard.html");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let draining = shared.draining.load(Ordering::Relaxed);
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

/// The streams of seed 001 with their event types and intervals.
const STREAMS: [(&str, &str, Option<u64>, &str); 6] = [
    (
        "nodes",
        "node_status_update",
        Some(5_000),
        "Node status: active and offline nodes, per-node state",
    ),
    (
        "tasks",
        "task_progress_update",
        Some(2_000),
        "Task progress and job queue statistics",
    ),
    (
        "metrics",
        "metrics_update",
        Some(10_000),
        "System health metrics and service status",
    ),
    (
        "alerts",
        "alert",
        None,
        "Threshold violations and anomaly detections, sent immediately",
    ),
    (
        "resources",
        "resource_update",
        Some(15_000),
        "Device resource utilisation",
    ),
    (
        "topology",
        "topology_change",
        None,
        "Network topology changes, sent on change",
    ),
];

pub(crate) async fn streams(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let local: BTreeMap<String, usize> = shared.rooms.local_counts().into_iter().collect();
    let mut streams: Vec<Value> = STREAMS
        .iter()
        .map(|(room, event, interval_ms, description)| {
            json!({
                "room": room,
                "event": event,
                "interval_ms": interval_ms,
                "description": description,
                "local_subscribers": local.get(*room).copied().unwrap_or(0),
            })
        })
        .collect();
    for (room, count) in local
        .iter()
        .filter(|(room, _)| !STANDARD_ROOMS.contains(&room.as_str()))
    {
        streams.push(json!({ "room": room, "event": null, "interval_ms": null, "description": "custom room", "local_subscribers": count }));
    }
    Json(json!({ "streams": streams }))
}

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
            let rooms: BTreeMap<String, usize> = shared.rooms.local_counts().into_iter().collect();
            Json(json!({
                "total_connections": shared.metrics.connections_opened.get(),
                "active_connections": shared.connections.len(),
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

/// Body of `POST /api/ws/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    room: String,
    #[serde(rename = "type")]
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    priority: Option<String>,
}

#[derive(Debug, Serialize)]
struct PublishAccepted {
    room: String,
    #[serde(rename = "type")]
    event: String,
    timestamp: String,
}

/// Lets a request to an operational endpoint through when `gateway.private_operations` is
/// off, or when it carries `Authorization: Bearer` with the API key or a token that verifies
/// (any role: a dashboard's viewer token reads the stats it shows).
pub(crate) async fn operations_access(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !shared.config.private_operations {
        return next.run(request).await;
    }
    let Some(presented) = http_front::bearer(request.headers()) else {
        shared
            .metrics
            .auth_failures
            .with_label_values(&["operations_missing"])
            .inc();
        return error_response(ErrorCode::TokenMissing);
    };
    let is_api_key = shared
        .api_key
        .as_ref()
        .is_some_and(|key| constant_time_eq(presented.as_bytes(), key.expose().as_bytes()));
    if is_api_key || shared.verifier.verify(presented).is_ok() {
        return next.run(request).await;
    }
    shared
        .metrics
        .auth_failures
        .with_label_values(&["operations"])
        .inc();
    error_response(ErrorCode::TokenInvalid)
}

/// Server API: publishes `{room, type, data}` to the room, authorised by `Authorization: Bearer <api key>`.
///
/// The key is checked before a byte of the body is read; the body is then read up to
/// `max_message_bytes` within `request_body_timeout` (a longer declared length is refused
/// at once).
pub(crate) async fn publish(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(expected) = shared.api_key.as_ref() else {
        return error_response(ErrorCode::Forbidden);
    };
    let Some(presented) = http_front::bearer(&headers) else {
        shared
            .metrics
            .auth_failures
            .with_label_values(&["api_key_missing"])
            .inc();
        return error_response(ErrorCode::TokenMissing);
    };
    if !constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        shared
            .metrics
            .auth_failures
            .with_label_values(&["api_key"])
            .inc();
        return error_response(ErrorCode::TokenInvalid);
    }
    let body = match http_front::read_body(
        &headers,
        body,
        shared.config.max_message_bytes,
        shared.config.request_body_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return error_response(ErrorCode::MessageTooLarge),
        Err(BodyError::Timeout | BodyError::Read(_)) => {
            return error_response(ErrorCode::InvalidMessage);
        }
    };
    let Ok(request) = serde_json::from_slice::<PublishRequest>(&body) else {
        return error_response(ErrorCode::InvalidMessage);
    };
    let Ok(room) = RoomName::parse(&request.room) else {
        return error_response(ErrorCode::InvalidRoom);
    };
    if !protocol::message::is_valid_event_name(&request.event) {
        return error_response(ErrorCode::InvalidMessage);
    }
    let timestamp = protocol::time::now_rfc3339();
    let envelope = RoomEnvelope {
        event: request.event.clone(),
        data: request.data,
        timestamp: Some(timestamp.clone()),
        seq: None,
        priority: request.priority,
    };
    let Ok(payload) = encode_bus(&envelope) else {
        return error_response(ErrorCode::InvalidMessage);
    };
    let mut bus_headers = Headers::new();
    bus_headers.insert(HEADER_ORIGIN_SERVER, &shared.server_id);
    if shared
        .bus
        .publish_with_headers(&shared.subjects.room(&room), bus_headers, payload.into())
        .await
        .is_err()
    {
        return error_response(ErrorCode::Unavailable);
    }
    let accepted = PublishAccepted {
        room: request.room,
        event: request.event,
        timestamp,
    };
    (StatusCode::ACCEPTED, Json(accepted)).into_response()
}

/// Body of the informational `POST /api/ws/subscribe` and `/unsubscribe` (seed 001).
#[derive(Debug, Deserialize)]
pub(crate) struct RoomsRequest {
    rooms: Vec<String>,
}

/// Explains how to (un)subscribe and which of the given rooms are valid names.
pub(crate) async fn subscription_info(Json(request): Json<RoomsRequest>) -> Json<Value> {
    let (valid, invalid): (Vec<String>, Vec<String>) = request
        .rooms
        .into_iter()
        .partition(|room| RoomName::parse(room).is_ok());
    Json(json!({
        "valid_rooms": valid,
        "invalid_rooms": invalid,
        "how": "send {\"type\":\"subscribe\",\"rooms\":[...]} or {\"type\":\"unsubscribe\",\"rooms\":[...]} on /api/ws/connect",
        "available_rooms": STANDARD_ROOMS,
    }))
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn error_body_carries_code_and_status() {
        let response = error_response(ErrorCode::TokenExpired);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

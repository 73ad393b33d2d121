//! `POST /api/ws/publish` (the server API) and the access check of operational endpoints.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bus::Headers;
use protocol::envelope::{HEADER_ORIGIN_SERVER, encode_bus};
use protocol::{ErrorCode, RoomEnvelope, RoomName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{error_response, read_json_body};
use crate::state::Shared;

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
        .admission
        .api_key
        .as_ref()
        .is_some_and(|key| constant_time_eq(presented.as_bytes(), key.expose().as_bytes()));
    if is_api_key || shared.admission.verify(presented).await.is_ok() {
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
    let Some(expected) = shared.admission.api_key.as_ref() else {
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
    let request: PublishRequest = match read_json_body(&shared, &headers, body).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
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

pub(super) fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
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
}

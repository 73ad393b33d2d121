//! `POST /api/ws/publish` (the server API) and the access check of operational endpoints.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bus::Headers;
use protocol::direct::{self, DirectEnvelope};
use protocol::envelope::{HEADER_ORIGIN_SERVER, encode_bus};
use protocol::{ErrorCode, RoomEnvelope, RoomName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{error_response, read_json_body};
use crate::state::Shared;

/// Body of `POST /api/ws/publish`: exactly one target of `room`, `user`, `connection_id` and
/// `broadcast: true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    #[serde(default)]
    room: Option<String>,
    /// Every connection of this user (`sub`), on any gateway.
    #[serde(default)]
    user: Option<String>,
    /// One connection, on whichever gateway holds it.
    #[serde(default)]
    connection_id: Option<String>,
    /// Every connection of every gateway.
    #[serde(default)]
    broadcast: bool,
    /// With `broadcast` only: just the connections whose token has this role.
    #[serde(default)]
    role: Option<String>,
    #[serde(rename = "type")]
    event: String,
    #[serde(default)]
    data: Value,
    /// With `room` only.
    #[serde(default)]
    priority: Option<String>,
}

#[derive(Debug, Serialize)]
struct PublishAccepted {
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    broadcast: bool,
    #[serde(rename = "type")]
    event: String,
    timestamp: String,
}

/// A checked publish request: the subject and payload to put on the bus.
struct Checked {
    subject: String,
    payload: Vec<u8>,
}

/// Checks the target rules (exactly one target; `role` only with `broadcast`, `priority`
/// only with `room`) and builds the bus message.
fn check(
    subjects: &protocol::Subjects,
    request: &PublishRequest,
    timestamp: &str,
) -> Result<Checked, ErrorCode> {
    let targets = usize::from(request.room.is_some())
        + usize::from(request.user.is_some())
        + usize::from(request.connection_id.is_some())
        + usize::from(request.broadcast);
    if targets != 1
        || (request.role.is_some() && !request.broadcast)
        || (request.priority.is_some() && request.room.is_none())
    {
        return Err(ErrorCode::InvalidMessage);
    }
    // A broadcast `reconnect` asks every client to reconnect (see `crate::direct`).
    let broadcast_reconnect = request.broadcast && request.event == direct::RECONNECT_EVENT;
    if !protocol::message::is_valid_event_name(&request.event) && !broadcast_reconnect {
        return Err(ErrorCode::InvalidMessage);
    }
    if let Some(room) = &request.room {
        let room = RoomName::parse(room).map_err(|_| ErrorCode::InvalidRoom)?;
        let envelope = RoomEnvelope {
            event: request.event.clone(),
            data: request.data.clone(),
            timestamp: Some(timestamp.to_owned()),
            seq: None,
            priority: request.priority.clone(),
        };
        let payload = encode_bus(&envelope).map_err(|_| ErrorCode::InvalidMessage)?;
        return Ok(Checked {
            subject: subjects.room(&room),
            payload,
        });
    }
    let subject = match (&request.user, &request.connection_id) {
        (Some(user), _) if direct::is_valid_user(user) => subjects.user(user),
        (_, Some(id)) if direct::is_valid_connection_id(id) => subjects.connection(id),
        (None, None) => subjects.broadcast(),
        _ => return Err(ErrorCode::InvalidMessage),
    };
    if let Some(role) = &request.role
        && !direct::ROLES.contains(&role.as_str())
    {
        return Err(ErrorCode::InvalidMessage);
    }
    let envelope = DirectEnvelope {
        event: request.event.clone(),
        data: request.data.clone(),
        timestamp: Some(timestamp.to_owned()),
        role: request.role.clone(),
    };
    let payload = encode_bus(&envelope).map_err(|_| ErrorCode::InvalidMessage)?;
    Ok(Checked { subject, payload })
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

/// Server API: publishes `{room, type, data}` to the room, or `{user | connection_id |
/// broadcast: true, type, data, role?}` to a user, a connection or everyone (see
/// [`crate::direct`]), authorised by `Authorization: Bearer <api key>`.
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
    let timestamp = protocol::time::now_rfc3339();
    let checked = match check(&shared.subjects, &request, &timestamp) {
        Ok(checked) => checked,
        Err(code) => return error_response(code),
    };
    let mut bus_headers = Headers::new();
    bus_headers.insert(HEADER_ORIGIN_SERVER, &shared.server_id);
    if shared
        .bus
        .publish_with_headers(&checked.subject, bus_headers, checked.payload.into())
        .await
        .is_err()
    {
        return error_response(ErrorCode::Unavailable);
    }
    let accepted = PublishAccepted {
        room: request.room,
        user: request.user,
        connection_id: request.connection_id,
        broadcast: request.broadcast,
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

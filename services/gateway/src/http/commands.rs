//! `POST /api/ws/nodes/{node_id}/commands`: an operator's command to a node agent, sent over
//! the cluster's command path (`sb.node.<node_id>.cmd`), so the node may be connected to any
//! gateway. Answers with the node's `ack`.

use std::sync::Arc;
use std::time::Duration;

use auth::Role;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::{CommandRequest, ErrorCode};
use serde::Deserialize;
use serde_json::Value;
use tracing::info;

use super::publish::constant_time_eq;
use super::{error_response, read_json_body};
use crate::nodes::{CommandOutcome, send_command};
use crate::state::Shared;

/// Longest accepted command name, in bytes.
const MAX_COMMAND_NAME_BYTES: usize = 64;

/// Body of `POST /api/ws/nodes/{node_id}/commands`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    name: String,
    #[serde(default)]
    params: Value,
    /// How long to wait for the node's `ack`; clamped to `gateway.command_timeout`.
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Sends `{name, params, timeout_ms?}` to the node and answers 200 with its `ack`
/// `{id, ok, result?, error?}`.
///
/// Authorised by `Authorization: Bearer` with the API key or a token with role `admin`,
/// checked before the body is read (at most `max_message_bytes`, within
/// `request_body_timeout`). `timeout_ms` defaults to, and is clamped to,
/// `gateway.command_timeout`.
pub(crate) async fn send(
    State(shared): State<Arc<Shared>>,
    Path(node_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let operator = match authorise(&shared, &headers).await {
        Ok(operator) => operator,
        Err(refusal) => return error_response(refusal),
    };
    if protocol::room::validate_node_id(&node_id).is_err() {
        return error_response(ErrorCode::InvalidMessage);
    }
    let request: CommandBody = match read_json_body(&shared, &headers, body).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    if !is_valid_command_name(&request.name) || request.timeout_ms == Some(0) {
        return error_response(ErrorCode::InvalidMessage);
    }
    let timeout = request
        .timeout_ms
        .map_or(shared.config.command_timeout, |millis| {
            Duration::from_millis(millis).min(shared.config.command_timeout)
        });
    let id = uuid::Uuid::new_v4().to_string();
    let command = CommandRequest {
        id: Some(id.clone()),
        name: request.name,
        params: request.params,
    };
    let outcome = send_command(&shared, &node_id, &command, timeout).await;
    shared
        .metrics
        .node_commands
        .with_label_values(&[outcome.label()])
        .inc();
    info!(
        node_id,
        command = %command.name,
        command_id = %id,
        operator = %operator,
        outcome = outcome.label(),
        "operator command"
    );
    match outcome {
        CommandOutcome::Acked(ack) => (StatusCode::OK, Json(ack)).into_response(),
        CommandOutcome::NotConnected => error_response(ErrorCode::NodeNotConnected),
        CommandOutcome::TimedOut => error_response(ErrorCode::CommandTimeout),
        CommandOutcome::Busy | CommandOutcome::Unavailable => {
            error_response(ErrorCode::Unavailable)
        }
    }
}

/// Lets the API key or an admin token through and names the operator for the log (`api_key`
/// or the token's `sub`); 401 without valid credentials, 403 for a valid token of another
/// role. Also the check of the alert rules API's writes.
pub(super) async fn authorise(shared: &Shared, headers: &HeaderMap) -> Result<String, ErrorCode> {
    let Some(presented) = http_front::bearer(headers) else {
        shared
            .metrics
            .auth_failures
            .with_label_values(&["commands_missing"])
            .inc();
        return Err(ErrorCode::TokenMissing);
    };
    let is_api_key = shared
        .admission
        .api_key
        .as_ref()
        .is_some_and(|key| constant_time_eq(presented.as_bytes(), key.expose().as_bytes()));
    if is_api_key {
        return Ok("api_key".to_owned());
    }
    match shared.admission.verify(presented).await {
        Ok(claims) if claims.role == Role::Admin => Ok(claims.sub),
        Ok(_) => Err(ErrorCode::Forbidden),
        Err(_) => {
            shared
                .metrics
                .auth_failures
                .with_label_values(&["commands"])
                .inc();
            Err(ErrorCode::TokenInvalid)
        }
    }
}

/// A command name: 1–64 bytes of ASCII letters, digits, `_`, `-` and `.`.
fn is_valid_command_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMMAND_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_short_plain_words() {
        assert!(is_valid_command_name("set_interval"));
        assert!(is_valid_command_name("report_now"));
        assert!(!is_valid_command_name(""));
        assert!(!is_valid_command_name("two words"));
        assert!(!is_valid_command_name(&"a".repeat(65)));
    }
}

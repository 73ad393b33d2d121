//! `GET /api/ws/connect`: origin check, connection cap, subprotocol, token, per-user
//! connection rate — then the upgrade.
//!
//! Refusals that a browser could not read from an HTTP status (token and rate problems) are
//! delivered on the WebSocket itself: the upgrade completes, the client gets an `error`
//! frame and a close with the code's close code (4401, 4402, 4429). Origin, cap and drain
//! refusals are plain HTTP errors, because those connections should cost nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use auth::Claims;
use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use axum::response::Response;
use futures_util::FutureExt;
use http_front::ConnectionSlot;
use protocol::codec::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use protocol::{Codec, ErrorCode, ServerMessage};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use crate::config::GatewayConfig;
use crate::frames::encode_frame;
use crate::http::error_response;
use crate::session::{self, Socket};
use crate::state::Shared;

/// The window of the per-user connection limit (seed 001: 10 per minute).
const CONNECTION_RATE_WINDOW: Duration = Duration::from_secs(60);

/// Query parameters of the connect endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct ConnectQuery {
    token: Option<String>,
}

pub(crate) async fn connect(
    State(shared): State<Arc<Shared>>,
    Extension(slot): Extension<ConnectionSlot>,
    Query(query): Query<ConnectQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let permit = match admission(&shared, &slot, &headers) {
        Ok(permit) => permit,
        Err(code) => return error_response(code),
    };
    let upgrade = upgrade.protocols([SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON]);
    let codec = upgrade
        .selected_protocol()
        .and_then(|value| value.to_str().ok())
        .and_then(Codec::from_subprotocol)
        .unwrap_or(Codec::Json);
    let token = query.token.or_else(|| bearer_token(&headers));
    let verdict = admit(&shared, token.as_deref()).await;

    let upgrade = sized(upgrade, &shared.config);
    let task_shared = shared.clone();
    upgrade
        .on_failed_upgrade(|error| debug!(error = %error, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            // The connection gets a task of its own, and axum's upgrade task ends here:
            // kept alive for the connection's life it would cost ~0.8 KiB per connection
            // on top of the session (measured with massif).
            let tasks = task_shared.drain.tasks.clone();
            match verdict {
                Ok(claims) => {
                    let session = session::run(task_shared, socket, claims, codec);
                    tasks.spawn(holding(permit, session));
                }
                Err(code) => {
                    tasks.spawn(holding(permit, refuse(socket, codec, code)));
                }
            }
            std::future::ready(())
        })
}

/// The checks every upgrade passes first: not draining, an allowed origin, a slot under the
/// connection cap. The slot is the connection's own, taken at accept; a connection served
/// from the probe headroom has none to hand over.
pub(crate) fn admission(
    shared: &Shared,
    slot: &ConnectionSlot,
    headers: &HeaderMap,
) -> Result<OwnedSemaphorePermit, ErrorCode> {
    if shared.drain.is_draining() {
        return Err(ErrorCode::ShuttingDown);
    }
    if !origin_allowed(&shared.config.allowed_origins, headers) {
        shared
            .metrics
            .auth_failures
            .with_label_values(&["origin"])
            .inc();
        return Err(ErrorCode::OriginNotAllowed);
    }
    slot.take().ok_or_else(|| {
        shared
            .metrics
            .rate_limited
            .with_label_values(&["connection_cap"])
            .inc();
        ErrorCode::TooManyConnections
    })
}

/// Applies the configured buffer and message sizes to an upgrade.
pub(crate) fn sized(upgrade: WebSocketUpgrade, config: &GatewayConfig) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        // tungstenite requires the cap to exceed the flush threshold.
        .max_write_buffer_size(
            config.write_buffer_bytes + config.outbound_queue_bytes + config.max_message_bytes,
        )
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
}

/// Runs `connection`, then frees its slot of the connection cap.
///
/// A combinator, not an `async fn`: an `async fn` would keep its argument and the awaited
/// future in two slots, doubling every idle connection's task (measured: 2.1 KiB → 1.1 KiB).
pub(crate) fn holding(
    permit: OwnedSemaphorePermit,
    connection: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    connection.map(move |()| drop(permit))
}

/// Verifies the token (counting failures by reason).
pub(crate) async fn verify_token(
    shared: &Shared,
    token: Option<&str>,
) -> Result<Claims, ErrorCode> {
    let Some(token) = token.filter(|token| !token.is_empty()) else {
        shared
            .metrics
            .auth_failures
            .with_label_values(&["missing"])
            .inc();
        return Err(ErrorCode::TokenMissing);
    };
    shared.admission.verify(token).await.map_err(|error| {
        shared
            .metrics
            .auth_failures
            .with_label_values(&[error.reason_label()])
            .inc();
        error.code()
    })
}

/// Verifies the token and applies the cluster-wide per-user connection limit.
pub(crate) async fn admit(shared: &Shared, token: Option<&str>) -> Result<Claims, ErrorCode> {
    let claims = verify_token(shared, token).await?;
    let key = format!("conn:{}", claims.sub);
    match shared
        .store
        .hit_rate_counter(&key, CONNECTION_RATE_WINDOW)
        .await
    {
        Ok(count) if count > u64::from(shared.config.connections_per_user_per_minute) => {
            shared
                .metrics
                .rate_limited
                .with_label_values(&["connections"])
                .inc();
            Err(ErrorCode::ConnectionRateLimited)
        }
        Ok(_) => Ok(claims),
        // A store outage degrades the cluster-wide limit; it never blocks connections.
        Err(error) => {
            shared.metrics.store_errors.inc();
            debug!(error = %error, "connection rate not checked");
            Ok(claims)
        }
    }
}

/// Sends `error` and closes with the code's close code.
pub(crate) async fn refuse<S: Socket>(mut socket: S, codec: Codec, code: ErrorCode) {
    let frame = encode_frame(codec, &ServerMessage::error(code, None)).map(|(frame, _)| frame);
    session::close_gracefully(&mut socket, frame, code.close_code(), code.as_str()).await;
}

/// The token of `Authorization: Bearer …` (the scheme in any case, RFC 9110).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    http_front::bearer(headers).map(str::to_owned)
}

pub(crate) fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    // Non-browser clients send no Origin; the allowlist protects browsers from cross-site use.
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    allowed
        .iter()
        .any(|entry| entry == "*" || entry.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::AUTHORIZATION;

    use super::*;

    #[test]
    fn origin_allowlist_matches_exactly_or_star() {
        let mut headers = HeaderMap::new();
        assert!(origin_allowed(&["https://a.example".into()], &headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://a.example"));
        assert!(origin_allowed(&[], &headers));
        assert!(origin_allowed(&["https://a.example".into()], &headers));
        assert!(!origin_allowed(&["https://b.example".into()], &headers));
        assert!(origin_allowed(&["*".into()], &headers));
    }

    #[test]
    fn holding_a_permit_does_not_copy_the_connection_future() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let Ok(permit) = slots.try_acquire_owned() else {
            panic!("a fresh semaphore has a permit");
        };
        let big = async {
            let state = [0u8; 1000];
            std::future::ready(()).await;
            std::hint::black_box(&state);
        };
        let alone = std::mem::size_of_val(&big);
        let held = holding(permit, big);
        // Every connection's task carries this for its whole life.
        assert!(
            std::mem::size_of_val(&held) <= alone + 32,
            "{} bytes held vs {alone} alone",
            std::mem::size_of_val(&held)
        );
    }

    #[test]
    fn bearer_token_is_read_from_authorization() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_token(&headers).as_deref(), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("BEARER abc"));
        assert_eq!(bearer_token(&headers).as_deref(), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }
}

//! The HTTP side of the gateway (seed 001), one module per concern: the dashboard page,
//! probes and Prometheus metrics, the stream catalogue, cluster stats, and the server publish
//! API with the access check of operational endpoints.

mod catalogue;
mod dashboard;
mod probes;
mod publish;
mod stats;

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use serde_json::json;

pub(crate) use catalogue::{streams, subscription_info};
pub(crate) use dashboard::dashboard;
pub(crate) use probes::{healthz, metrics, readyz};
pub(crate) use publish::{operations_access, publish};
pub(crate) use stats::stats;

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

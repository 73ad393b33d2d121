//! Queries to other services' request/reply APIs on `sb.api.<service>.<method>`
//! (MessagePack request, [`ApiReply`] answer), and their HTTP answers: the result as JSON,
//! the service's error with its code's HTTP status, or 503 `unavailable` when no replica
//! answered. The metrics API (aggregator) and the devices API (device reader) both go
//! through here.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bus::{Headers, RequestError};
use protocol::ErrorCode;
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::{ApiError, ApiReply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, warn};

use crate::state::Shared;

/// Why a query has no result.
#[derive(Debug)]
pub(crate) enum AskError {
    /// No replica of the service answered (none running, or none within the timeout).
    NoAnswer,
    /// The service answered with an error (its code and public reason are passed on).
    Refused(ApiError),
    /// The request could not be encoded or the answer decoded; details are in the log.
    Internal,
}

impl AskError {
    /// The HTTP answer of this failure; `service` names who did not answer ("no device reader answered").
    pub fn into_response(self, service: &str) -> Response {
        match self {
            AskError::NoAnswer => refuse(ErrorCode::Unavailable, &format!("no {service} answered")),
            AskError::Refused(error) => refuse(error.code, &error.message),
            AskError::Internal => refuse(ErrorCode::Internal, ErrorCode::Internal.description()),
        }
    }
}

/// Answers with `code`'s HTTP status and `{"error": {"code", "message"}}`.
pub(crate) fn refuse(code: ErrorCode, message: &str) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": { "code": code.as_str(), "message": message } });
    (status, Json(body)).into_response()
}

/// Sends `request` to `sb.api.<service>.<method>` and decodes the [`ApiReply`].
pub(crate) async fn ask<Q: Serialize, R: DeserializeOwned>(
    shared: &Shared,
    service: &str,
    method: &str,
    request: &Q,
    timeout: Duration,
) -> Result<R, AskError> {
    let Ok(payload) = encode_bus(request) else {
        return Err(AskError::Internal);
    };
    let subject = shared.subjects.api(service, method);
    let reply = match shared
        .bus
        .request(&subject, Headers::new(), payload.into(), timeout)
        .await
    {
        Ok(reply) => reply,
        Err(error) => {
            if matches!(error, RequestError::NoResponders | RequestError::Timeout) {
                debug!(service, method, error = %error, "no replica answered");
            } else {
                warn!(service, method, error = %error, "api query failed");
            }
            return Err(AskError::NoAnswer);
        }
    };
    match decode_bus::<ApiReply<R>>(&reply.payload).map(ApiReply::into_result) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(error)) => Err(AskError::Refused(error)),
        Err(error) => {
            warn!(service, method, error = %error, "api reply cannot be decoded");
            Err(AskError::Internal)
        }
    }
}

/// [`ask`], answered over HTTP: the result as JSON, or the failure's response.
pub(crate) async fn proxy<Q: Serialize, R: Serialize + DeserializeOwned>(
    shared: &Shared,
    (service, who): (&str, &str),
    method: &str,
    request: &Q,
    timeout: Duration,
) -> Response {
    match ask::<Q, R>(shared, service, method, request, timeout).await {
        Ok(result) => Json(result).into_response(),
        Err(error) => error.into_response(who),
    }
}

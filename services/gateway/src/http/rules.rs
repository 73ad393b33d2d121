//! `GET|PUT|DELETE /api/ws/metrics/rules`: the aggregator's threshold alert rules, listed and
//! changed at run time. The aggregator keeps them in the store (`sb:alert_rules`), so every
//! replica applies a change within its `rules_refresh_interval` and restarts keep it.
//!
//! - `GET` (the access of `/api/ws/metrics/history`): `{"rules": [...], "source":
//!   "store" | "file" | "defaults"}`.
//! - `PUT {"rules": [...]}` replaces the set; a bad rule is 400 `invalid_rule` with the
//!   problem's `reason` and the rule's `index`, checked here before anything is sent.
//! - `DELETE` drops the stored set: the file's rules, or seed 001's defaults, are back.
//!
//! Writes take the API key or a token with role `admin` (the check of the node commands
//! API), before the body is read. Every write answers with the rules in force after it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use protocol::metrics::api;
use protocol::metrics::rules::{
    PutRulesRequest, RuleProblem, RulesReply, RulesRequest, validate_rules,
};
use serde_json::json;
use tracing::info;

use super::commands::authorise;
use super::{error_response, read_json_body};
use crate::metrics_api::ask;
use crate::state::Shared;

/// `GET /api/ws/metrics/rules`: the rules in force and their source.
pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Response {
    ask::<_, RulesReply>(&shared, api::RULES, &RulesRequest {}).await
}

/// `PUT /api/ws/metrics/rules` with `{"rules": [{name, metric, op, threshold, severity,
/// cooldown_ms?}, ...]}`: replaces the stored set.
pub(crate) async fn replace(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let operator = match authorise(&shared, &headers).await {
        Ok(operator) => operator,
        Err(refusal) => return error_response(refusal),
    };
    let request: PutRulesRequest = match read_json_body(&shared, &headers, body).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    if let Err(problem) = validate_rules(&request.rules) {
        return invalid_rule(&problem);
    }
    info!(operator = %operator, rules = request.rules.len(), "alert rules replaced by operator");
    ask::<_, RulesReply>(&shared, api::PUT_RULES, &request).await
}

/// `DELETE /api/ws/metrics/rules`: back to the file's or the default rules.
pub(crate) async fn reset(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let operator = match authorise(&shared, &headers).await {
        Ok(operator) => operator,
        Err(refusal) => return error_response(refusal),
    };
    info!(operator = %operator, "alert rules reset by operator");
    ask::<_, RulesReply>(&shared, api::RESET_RULES, &RulesRequest {}).await
}

/// 400 `{"error": {"code": "invalid_rule", "message", "reason", "index"?}}`.
fn invalid_rule(problem: &RuleProblem) -> Response {
    let code = ErrorCode::InvalidRule;
    let mut error = json!({
        "code": code.as_str(),
        "message": problem.to_string(),
        "reason": problem.reason(),
    });
    if let Some(index) = problem.index() {
        error["index"] = json!(index);
    }
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({ "error": error }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_rule_is_answered_with_its_reason_and_index() {
        let problem = RuleProblem::UnknownOp { index: 2 };
        let response = invalid_rule(&problem);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

//! The metrics HTTP API of seed 001, answered by the aggregator over the bus:
//! `GET /api/ws/metrics/history?metric=&hours=`, `/api/ws/metrics/statistics?metric=&window=`
//! and `/api/ws/metrics/summary` become requests on `sb.api.aggregator.<method>`.
//!
//! The threshold rules (`/api/ws/metrics/rules`, `http::rules`) go the same way, with
//! [`AGGREGATOR_TIMEOUT`].
//!
//! Bad parameters are refused here with 400 `invalid_message` before anything is sent; no
//! aggregator answering (none running, or none within [`AGGREGATOR_TIMEOUT`]) is 503
//! `unavailable`; an aggregator error keeps its code and public reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use protocol::ErrorCode;
use protocol::metrics::{
    HistoryReply, HistoryRequest, MAX_HISTORY_HOURS, StatisticsReply, StatisticsRequest,
    SummaryReply, SummaryRequest, Window, api, is_valid_metric_name,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bus_api::refuse;
use crate::state::Shared;

/// How long a query waits for an aggregator. Answers come from Redis in milliseconds; a
/// replica that takes longer is stuck, and the caller is better served by a 503.
pub(crate) const AGGREGATOR_TIMEOUT: Duration = Duration::from_secs(5);

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn bad_request(message: &str) -> Response {
    refuse(ErrorCode::InvalidMessage, message)
}

/// The `metric` parameter, or why it is refused.
fn metric_param(params: &HashMap<String, String>) -> Result<String, &'static str> {
    match params.get("metric") {
        Some(metric) if is_valid_metric_name(metric) => Ok(metric.clone()),
        Some(_) => Err("metric must be a dotted name of A-Z a-z 0-9 _ - (at most 128 bytes)"),
        None => Err("the metric parameter is required"),
    }
}

/// `GET /api/ws/metrics/history?metric=<name>&hours=<1..168, default 1>`.
pub(crate) async fn history(State(shared): State<Arc<Shared>>, params: Params) -> Response {
    let Ok(Query(params)) = params else {
        return bad_request("malformed query string");
    };
    let metric = match metric_param(&params) {
        Ok(metric) => metric,
        Err(reason) => return bad_request(reason),
    };
    let hours = match params.get("hours").map(|hours| hours.parse::<u32>()) {
        None => 1,
        Some(Ok(hours)) if (1..=MAX_HISTORY_HOURS).contains(&hours) => hours,
        Some(_) => return bad_request("hours must be a whole number from 1 to 168"),
    };
    ask::<_, HistoryReply>(&shared, api::HISTORY, &HistoryRequest { metric, hours }).await
}

/// `GET /api/ws/metrics/statistics?metric=<name>&window=<1m|5m|1h, default all three>`.
pub(crate) async fn statistics(State(shared): State<Arc<Shared>>, params: Params) -> Response {
    let Ok(Query(params)) = params else {
        return bad_request("malformed query string");
    };
    let metric = match metric_param(&params) {
        Ok(metric) => metric,
        Err(reason) => return bad_request(reason),
    };
    let window = match params.get("window").map(|window| Window::parse(window)) {
        None => None,
        Some(Some(window)) => Some(window),
        Some(None) => return bad_request("window must be 1m, 5m or 1h"),
    };
    ask::<_, StatisticsReply>(
        &shared,
        api::STATISTICS,
        &StatisticsRequest { metric, window },
    )
    .await
}

/// `GET /api/ws/metrics/summary`: every metric with its latest value and window statistics.
pub(crate) async fn summary(State(shared): State<Arc<Shared>>) -> Response {
    ask::<_, SummaryReply>(&shared, api::SUMMARY, &SummaryRequest {}).await
}

/// Asks the aggregator `method` over the bus and answers with its reply (503 when none answers).
pub(crate) async fn ask<Q: Serialize, R: Serialize + DeserializeOwned>(
    shared: &Shared,
    method: &str,
    request: &Q,
) -> Response {
    crate::bus_api::proxy::<Q, R>(
        shared,
        (api::SERVICE, "aggregator"),
        method,
        request,
        AGGREGATOR_TIMEOUT,
    )
    .await
}

//! The query API: `sb.api.aggregator.{history,statistics,summary}`, MessagePack request and
//! [`ApiReply`], and the threshold rules API `sb.api.aggregator.{rules,put_rules,reset_rules}`
//! (the stored rule set; see `rules`).
//!
//! Every replica queue-subscribes (`sb-aggregator-api`), so each query is answered by one of
//! them, and every answer comes from the store, never from the answering replica's memory:
//! history from the stored roll-ups and raw samples, statistics recomputed exactly from the
//! stored raw last hour, the summary from the entries the owners write. So any replica
//! answers for any metric, also while a metric changes owner, without the gateway knowing
//! who owns what; the price is that answers trail ingestion by up to one `flush_interval`.

use std::sync::Arc;

use bus::{Bus, Headers, Message, Subscription};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::rules::{PutRulesRequest, RulesReply, validate_rules};
use protocol::metrics::{
    ApiReply, HistoryReply, HistoryRequest, HistorySample, MAX_HISTORY_HOURS, MetricSummary,
    Rollup, StatisticsReply, StatisticsRequest, SummaryReply, Window, api, is_valid_metric_name,
};
use protocol::{ErrorCode, Subjects};
use serde::Serialize;
use store::Store;
use store::history::{HOUR_MS, RAW_RETENTION_MS};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::error::RunError;
use crate::metrics::Metrics;
use crate::rules::{self, RuleSet};
use crate::stats::statistics;

/// What query handlers share.
pub(crate) struct QueryContext {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) metrics: Arc<Metrics>,
    /// Samples stamped up to this far in the future are accepted, so queries include them.
    pub(crate) max_skew_ms: u64,
    /// The rules in force when none are stored (file or defaults).
    pub(crate) configured_rules: RuleSet,
    /// Woken after this replica changed the stored rules, so it applies them at once.
    pub(crate) rules_changed: Arc<Notify>,
}

/// The subject pattern of every method: `sb.api.aggregator.*`.
pub(crate) fn subject_pattern(subjects: &Subjects) -> String {
    subjects.api(api::SERVICE, "*")
}

/// Answers queries until `shutdown`, at most `max_concurrent` at once; the rest wait in the
/// subscription (bounded by the bus; excess is dropped there and the caller times out).
///
/// # Errors
/// [`RunError::QueriesEnded`] when the bus ends the subscription (its connection closed for
/// good), after the queries in progress are answered.
pub(crate) async fn serve(
    context: Arc<QueryContext>,
    mut queries: Subscription,
    max_concurrent: usize,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let slots = Arc::new(Semaphore::new(max_concurrent));
    let tasks = TaskTracker::new();
    let mut outcome = Ok(());
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => break,
            next = queries.next() => match next {
                Some(request) => request,
                None => {
                    outcome = Err(RunError::QueriesEnded);
                    break;
                }
            },
        };
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let context = context.clone();
        tasks.spawn(async move {
            answer(&context, request).await;
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
    outcome
}

async fn answer(context: &QueryContext, request: Message) {
    let method = request.subject.rsplit('.').next().unwrap_or_default();
    let now_ms = protocol::time::now_unix_ms();
    let (payload, outcome) = match method {
        api::HISTORY => encode(history(context, &request.payload, now_ms).await),
        api::STATISTICS => encode(statistics_of(context, &request.payload, now_ms).await),
        api::SUMMARY => encode(summary(context, now_ms).await),
        api::RULES => encode(current_rules(context).await),
        api::PUT_RULES => encode(put_rules(context, &request.payload).await),
        api::RESET_RULES => encode(reset_rules(context).await),
        _ => encode::<()>(ApiReply::error(ErrorCode::InvalidMessage, "unknown method")),
    };
    context
        .metrics
        .queries
        .with_label_values(&[method_label(method), outcome])
        .inc();
    let Some(payload) = payload else {
        return;
    };
    if let Err(error) = context
        .bus
        .respond(&request, Headers::new(), payload.into())
        .await
    {
        debug!(method, error = %error, "query reply not delivered");
    }
}

fn method_label(method: &str) -> &'static str {
    match method {
        api::HISTORY => api::HISTORY,
        api::STATISTICS => api::STATISTICS,
        api::SUMMARY => api::SUMMARY,
        api::RULES => api::RULES,
        api::PUT_RULES => api::PUT_RULES,
        api::RESET_RULES => api::RESET_RULES,
        _ => "unknown",
    }
}

fn encode<T: Serialize>(reply: ApiReply<T>) -> (Option<Vec<u8>>, &'static str) {
    let outcome = if reply.error.is_some() { "error" } else { "ok" };
    match encode_bus(&reply) {
        Ok(bytes) => (Some(bytes), outcome),
        Err(error) => {
            warn!(error = %error, "query reply cannot be encoded");
            (None, "error")
        }
    }
}

fn invalid<T>(reason: &str) -> ApiReply<T> {
    ApiReply::error(ErrorCode::InvalidMessage, reason)
}

fn unavailable<T>(error: &store::StoreError) -> ApiReply<T> {
    warn!(error = %error, "store unavailable for a query");
    ApiReply::error(ErrorCode::Unavailable, "metric store unavailable")
}

async fn history(context: &QueryContext, payload: &[u8], now_ms: u64) -> ApiReply<HistoryReply> {
    let Ok(request) = decode_bus::<HistoryRequest>(payload) else {
        return invalid("malformed history request");
    };
    if !is_valid_metric_name(&request.metric) {
        return invalid("invalid metric name");
    }
    if !(1..=MAX_HISTORY_HOURS).contains(&request.hours) {
        return invalid("hours must be between 1 and 168");
    }
    let from_ms = now_ms.saturating_sub(u64::from(request.hours) * HOUR_MS);
    let raw_from_ms = now_ms.saturating_sub(RAW_RETENTION_MS);
    let stored = match context
        .store
        .metric_history(
            &request.metric,
            from_ms,
            raw_from_ms,
            now_ms + context.max_skew_ms,
        )
        .await
    {
        Ok(stored) => stored,
        Err(error) => return unavailable(&error),
    };
    ApiReply::ok(HistoryReply {
        metric: request.metric,
        from_ms,
        to_ms: now_ms,
        raw_from_ms,
        samples: stored
            .samples
            .into_iter()
            .map(|sample| HistorySample {
                ts_ms: sample.ts_ms,
                value: sample.value,
            })
            .collect(),
        rollups: stored
            .rollups
            .into_iter()
            .map(|rollup| Rollup {
                ts_ms: rollup.minute_start_ms,
                count: u64::from(rollup.count),
                min: rollup.min,
                max: rollup.max,
                avg: rollup.avg,
                stddev: rollup.stddev,
            })
            .collect(),
    })
}

async fn statistics_of(
    context: &QueryContext,
    payload: &[u8],
    now_ms: u64,
) -> ApiReply<StatisticsReply> {
    let Ok(request) = decode_bus::<StatisticsRequest>(payload) else {
        return invalid("malformed statistics request");
    };
    if !is_valid_metric_name(&request.metric) {
        return invalid("invalid metric name");
    }
    let stored = match context
        .store
        .raw_samples(
            std::slice::from_ref(&request.metric),
            now_ms.saturating_sub(RAW_RETENTION_MS),
            now_ms + context.max_skew_ms,
        )
        .await
    {
        Ok(mut stored) => stored.pop().unwrap_or_default(),
        Err(error) => return unavailable(&error),
    };
    let windows: Vec<Window> = match request.window {
        Some(window) => vec![window],
        None => Window::ALL.to_vec(),
    };
    let windows = windows
        .into_iter()
        .map(|window| {
            let cutoff = now_ms.saturating_sub(window.duration_ms());
            let mut values: Vec<f64> = stored
                .iter()
                .filter(|sample| sample.ts_ms > cutoff)
                .map(|sample| sample.value)
                .collect();
            (window, statistics(&mut values))
        })
        .collect();
    ApiReply::ok(StatisticsReply {
        metric: request.metric,
        as_of_ms: now_ms,
        windows,
    })
}

async fn summary(context: &QueryContext, now_ms: u64) -> ApiReply<SummaryReply> {
    let entries = match context.store.metric_summaries().await {
        Ok(entries) => entries,
        Err(error) => return unavailable(&error),
    };
    let metrics = entries
        .into_iter()
        .filter_map(
            |(metric, bytes)| match decode_bus::<MetricSummary>(&bytes) {
                Ok(summary) => Some(summary),
                Err(error) => {
                    warn!(metric, error = %error, "corrupt metric summary skipped");
                    None
                }
            },
        )
        .collect();
    ApiReply::ok(SummaryReply {
        generated_at_ms: now_ms,
        metrics,
    })
}

async fn current_rules(context: &QueryContext) -> ApiReply<RulesReply> {
    match context.store.alert_rules().await {
        Ok(stored) => {
            ApiReply::ok(RuleSet::resolve(stored.as_deref(), &context.configured_rules).reply())
        }
        Err(error) => unavailable(&error),
    }
}

async fn put_rules(context: &QueryContext, payload: &[u8]) -> ApiReply<RulesReply> {
    let Ok(request) = decode_bus::<PutRulesRequest>(payload) else {
        return invalid("malformed put_rules request");
    };
    let rules = match validate_rules(&request.rules) {
        Ok(rules) => rules,
        Err(problem) => return ApiReply::error(ErrorCode::InvalidRule, problem.to_string()),
    };
    let document = match rules::encode(&rules) {
        Ok(document) => document,
        Err(error) => {
            warn!(error = %error, "alert rules cannot be encoded");
            return ApiReply::error(ErrorCode::Internal, ErrorCode::Internal.description());
        }
    };
    if let Err(error) = context.store.put_alert_rules(&document).await {
        return unavailable(&error);
    }
    tracing::info!(rules = rules.len(), "alert rules replaced");
    context.rules_changed.notify_one();
    ApiReply::ok(RulesReply {
        rules,
        source: protocol::metrics::rules::RulesSource::Store,
    })
}

async fn reset_rules(context: &QueryContext) -> ApiReply<RulesReply> {
    match context.store.delete_alert_rules().await {
        Ok(existed) => {
            tracing::info!(existed, source = ?context.configured_rules.source, "stored alert rules removed");
            context.rules_changed.notify_one();
            ApiReply::ok(context.configured_rules.reply())
        }
        Err(error) => unavailable(&error),
    }
}

//! Metric samples on `sb.ingest.metric` (ARCHITECTURE.md § Subjects): what the publisher,
//! device readers and nodes send to the aggregator.
//!
//! A payload is one [`MetricSample`] or a list of them, as named MessagePack maps:
//! `{"metric": "nodes.active", "value": 3.0, "ts_ms": 1730000000000, "labels": {}}`.
//! Metric names are dotted lowercase (`node.cpu_percent`); what distinguishes series of one
//! metric (a node id, a device) goes into `labels`, not into the name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;
use crate::envelope::decode_bus;
use crate::error::ErrorCode;

pub mod rules;

/// One measurement of one metric at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Dotted metric name, e.g. `nodes.active` or `node.cpu_percent`.
    pub metric: String,
    /// The measured value.
    pub value: f64,
    /// When it was measured, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Series labels, e.g. `{"node_id": "node-1"}`; empty for cluster-wide figures.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl MetricSample {
    /// Returns a sample without labels.
    pub fn new(metric: impl Into<String>, value: f64, ts_ms: u64) -> Self {
        Self {
            metric: metric.into(),
            value,
            ts_ms,
            labels: BTreeMap::new(),
        }
    }

    /// Returns the sample with `name = value` added to its labels.
    #[must_use]
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }
}

/// A payload on `sb.ingest.metric`: one sample or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricPayload {
    /// A single sample (a MessagePack map).
    One(MetricSample),
    /// Several samples (a MessagePack array of maps).
    Many(Vec<MetricSample>),
}

impl MetricPayload {
    /// Decodes a bus payload, choosing the variant from the first MessagePack marker (map or
    /// array) instead of serde's untagged trial-and-error, which buffers the whole payload.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] when the bytes are neither a sample map nor an array of them.
    pub fn decode_bus(bytes: &[u8]) -> Result<MetricPayload, DecodeError> {
        match bytes.first() {
            Some(0x80..=0x8f | 0xde | 0xdf) => decode_bus(bytes).map(MetricPayload::One),
            Some(0x90..=0x9f | 0xdc | 0xdd) => decode_bus(bytes).map(MetricPayload::Many),
            _ => Err(DecodeError::Malformed(
                "metric payload is neither a sample map nor an array of samples".to_owned(),
            )),
        }
    }

    /// Returns the samples, in payload order.
    pub fn into_samples(self) -> Vec<MetricSample> {
        match self {
            MetricPayload::One(sample) => vec![sample],
            MetricPayload::Many(samples) => samples,
        }
    }
}

/// Longest accepted metric name, in bytes (the same limit as a room name).
pub const MAX_METRIC_NAME_BYTES: usize = 128;

/// Reports whether `name` is a valid metric name: dot-separated non-empty segments of
/// `[A-Za-z0-9_-]`, at most [`MAX_METRIC_NAME_BYTES`] (`proto/schemas/common.schema.json#/$defs/metric_name`).
pub fn is_valid_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_METRIC_NAME_BYTES
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        })
}

/// The aggregator's statistics windows (seed 001: 1 m, 5 m, 1 h), written `"1m"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Window {
    /// The last minute.
    #[serde(rename = "1m")]
    OneMinute,
    /// The last five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// The last hour.
    #[serde(rename = "1h")]
    OneHour,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 3] = [Window::OneMinute, Window::FiveMinutes, Window::OneHour];

    /// Returns the window's length in milliseconds.
    pub fn duration_ms(self) -> u64 {
        match self {
            Window::OneMinute => 60_000,
            Window::FiveMinutes => 300_000,
            Window::OneHour => 3_600_000,
        }
    }

    /// Returns the wire name (`1m`, `5m`, `1h`).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::OneMinute => "1m",
            Window::FiveMinutes => "5m",
            Window::OneHour => "1h",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Window> {
        Window::ALL
            .into_iter()
            .find(|window| window.as_str() == name)
    }
}

/// How bad an alert is. Thresholds name one in configuration; anomalies are `medium`
/// (|z| > 2.5) or `high` (|z| > 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Low,
    /// Unusual.
    Medium,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    High,
    /// Something is broken.
    Critical,
}

impl Severity {
    /// Returns the room message `priority` for this severity: `critical` for high and
    /// critical, `warning` for medium and warning, `info` for the rest.
    pub fn priority(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "critical",
            Severity::Warning | Severity::Medium => "warning",
            Severity::Info | Severity::Low => "info",
        }
    }
}

/// How a threshold rule compares a sample's value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// `value > threshold`
    Gt,
    /// `value >= threshold`
    Gte,
    /// `value < threshold`
    Lt,
    /// `value <= threshold`
    Lte,
}

impl Comparison {
    /// Reports whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Gte => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Lte => value <= threshold,
        }
    }
}

/// What raised a [`MetricAlert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The value's z-score against the recent window exceeded 2.5.
    AnomalyDetected,
    /// The value breached a configured threshold.
    ThresholdExceeded,
}

/// The `data` of an aggregator `alert` room message in room `alerts` (seed 001 shape); the
/// envelope's `priority` is [`Severity::priority`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricAlert {
    /// `anomaly_detected` or `threshold_exceeded`.
    #[serde(rename = "type")]
    pub kind: AlertKind,
    /// The metric concerned.
    pub metric: String,
    /// The sample value that raised the alert.
    pub value: f64,
    /// How bad it is.
    pub severity: Severity,
    /// Anomalies: the value's z-score against the recent window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z_score: Option<f64>,
    /// Thresholds: the configured threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Thresholds: how the value was compared with the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The sample's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the sample was measured (Unix ms).
    pub ts_ms: u64,
    /// One sentence for humans.
    pub message: String,
    /// When the alert was raised (RFC 3339).
    pub timestamp: String,
}

/// Names of the aggregator's query API: `sb.api.aggregator.<method>` (built with
/// [`Subjects::api`](crate::Subjects::api)), MessagePack request and [`ApiReply`].
pub mod api {
    /// The `<service>` token.
    pub const SERVICE: &str = "aggregator";
    /// `history`: [`HistoryRequest`](super::HistoryRequest) → [`HistoryReply`](super::HistoryReply).
    pub const HISTORY: &str = "history";
    /// `statistics`: [`StatisticsRequest`](super::StatisticsRequest) → [`StatisticsReply`](super::StatisticsReply).
    pub const STATISTICS: &str = "statistics";
    /// `summary`: [`SummaryRequest`](super::SummaryRequest) → [`SummaryReply`](super::SummaryReply).
    pub const SUMMARY: &str = "summary";
    /// `rules`: [`RulesRequest`](super::rules::RulesRequest) → [`RulesReply`](super::rules::RulesReply),
    /// the threshold rules in force.
    pub const RULES: &str = "rules";
    /// `put_rules`: [`PutRulesRequest`](super::rules::PutRulesRequest) → [`RulesReply`](super::rules::RulesReply),
    /// replaces the stored rule set.
    pub const PUT_RULES: &str = "put_rules";
    /// `reset_rules`: [`RulesRequest`](super::rules::RulesRequest) → [`RulesReply`](super::rules::RulesReply),
    /// drops the stored set (back to the file's or the default rules).
    pub const RESET_RULES: &str = "reset_rules";
    /// Queue group of the aggregator replicas: each query is answered by one of them.
    pub const QUEUE_GROUP: &str = "sb-aggregator-api";
}

/// Longest history a query may ask for: the seven days the aggregator keeps.
pub const MAX_HISTORY_HOURS: u32 = 7 * 24;

/// `history`: raw samples of the last hour and one-minute roll-ups before that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// The metric.
    pub metric: String,
    /// How far back, 1 to [`MAX_HISTORY_HOURS`].
    pub hours: u32,
}

/// One raw sample in a history reply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistorySample {
    /// When it was measured (Unix ms).
    pub ts_ms: u64,
    /// The value.
    pub value: f64,
}

/// One minute of samples, rolled up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// Start of the minute (Unix ms, a multiple of 60,000).
    pub ts_ms: u64,
    /// Samples in the minute.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub avg: f64,
    /// Population standard deviation.
    pub stddev: f64,
}

/// The reply to a [`HistoryRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReply {
    /// The metric.
    pub metric: String,
    /// Start of the requested range (`to_ms - hours`).
    pub from_ms: u64,
    /// When the reply was computed.
    pub to_ms: u64,
    /// Raw samples are those after this instant (`to_ms` − 1 h); roll-ups cover minutes
    /// starting in `[from_ms, raw_from_ms)`, so the last one may overlap the first samples.
    pub raw_from_ms: u64,
    /// Raw samples after `raw_from_ms`, oldest first.
    pub samples: Vec<HistorySample>,
    /// One-minute roll-ups before `raw_from_ms`, oldest first; minutes without samples are absent.
    pub rollups: Vec<Rollup>,
}

/// `statistics`: exact statistics over the raw samples of one window or all three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticsRequest {
    /// The metric.
    pub metric: String,
    /// One window; all three when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// Statistics over one window's samples; every figure is absent when `count` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Statistics {
    /// Samples in the window.
    pub count: u64,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean.
    pub avg: Option<f64>,
    /// Median (mean of the two middle values for an even count).
    pub median: Option<f64>,
    /// Population standard deviation.
    pub stddev: Option<f64>,
    /// 95th percentile, linear interpolation between closest ranks (numpy's default).
    pub p95: Option<f64>,
}

/// The reply to a [`StatisticsRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticsReply {
    /// The metric.
    pub metric: String,
    /// The instant the windows end at (Unix ms).
    pub as_of_ms: u64,
    /// Statistics per requested window.
    pub windows: BTreeMap<Window, Statistics>,
}

/// `summary`: every metric the aggregator has seen in the last seven days.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryRequest {}

/// One metric in a [`SummaryReply`], as its owning replica last wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// The metric.
    pub metric: String,
    /// The newest sample's value.
    pub latest_value: f64,
    /// The newest sample's time (Unix ms).
    pub latest_ts_ms: u64,
    /// Statistics per window as of `updated_ms`.
    pub windows: BTreeMap<Window, Statistics>,
    /// The aggregator replica that owns the metric.
    pub owner: String,
    /// When the owner computed this entry (Unix ms); it refreshes at least every flush
    /// interval while samples arrive or leave the windows.
    pub updated_ms: u64,
}

/// The reply to a [`SummaryRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryReply {
    /// When the reply was assembled (Unix ms).
    pub generated_at_ms: u64,
    /// One entry per metric, sorted by name.
    pub metrics: Vec<MetricSummary>,
}

/// Why a query failed: a code from the closed set and a short public reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// `invalid_message` for bad parameters, `unavailable` when the store cannot answer.
    pub code: ErrorCode,
    /// Short public reason.
    pub message: String,
}

/// Every `sb.api.aggregator.*` reply: `result` on success, `error` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiReply<T> {
    /// The answer (absent on failure; a missing `Option` field reads as `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    /// The failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl<T> ApiReply<T> {
    /// A successful reply.
    pub fn ok(result: T) -> Self {
        Self {
            result: Some(result),
            error: None,
        }
    }

    /// A failed reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            result: None,
            error: Some(ApiError {
                code,
                message: message.into(),
            }),
        }
    }

    /// Returns the result, or the error (an `internal` one when the reply carries neither).
    ///
    /// # Errors
    /// The reply's [`ApiError`].
    pub fn into_result(self) -> Result<T, ApiError> {
        match (self.result, self.error) {
            (_, Some(error)) => Err(error),
            (Some(result), None) => Ok(result),
            (None, None) => Err(ApiError {
                code: ErrorCode::Internal,
                message: "reply carries neither result nor error".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::envelope::encode_bus;

    #[test]
    fn payload_decodes_one_sample_or_a_list_by_its_first_marker() {
        let one = MetricSample::new("a.b", 1.5, 7).with_label("node_id", "n");
        let bytes = encode_bus(&MetricPayload::One(one.clone())).unwrap();
        assert_eq!(
            MetricPayload::decode_bus(&bytes).unwrap(),
            MetricPayload::One(one.clone())
        );
        let many = vec![one.clone(), MetricSample::new("c", -2.0, 8)];
        let bytes = encode_bus(&MetricPayload::Many(many.clone())).unwrap();
        assert_eq!(
            MetricPayload::decode_bus(&bytes).unwrap().into_samples(),
            many
        );
        assert!(MetricPayload::decode_bus(&[0xc3]).is_err());
        assert!(MetricPayload::decode_bus(&[]).is_err());
        // serde's untagged path accepts the same bytes
        let untagged: MetricPayload = crate::envelope::decode_bus(&bytes).unwrap();
        assert_eq!(untagged.into_samples(), many);
    }

    #[test]
    fn metric_names_follow_the_schema() {
        assert!(is_valid_metric_name("betanet.latency_ms"));
        assert!(is_valid_metric_name("device.ch1_power"));
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a b",
            "a.*",
            "a:b",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_metric_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn windows_severities_and_comparisons_use_their_wire_names() {
        assert_eq!(serde_json::to_value(Window::FiveMinutes).unwrap(), "5m");
        assert_eq!(Window::parse("1h"), Some(Window::OneHour));
        assert_eq!(Window::parse("2h"), None);
        assert_eq!(Severity::High.priority(), "critical");
        assert_eq!(Severity::Medium.priority(), "warning");
        assert!(Comparison::Gte.breached(90.0, 90.0));
        assert!(!Comparison::Gt.breached(90.0, 90.0));
        assert!(Comparison::Lt.breached(1.0, 2.0));
        let alert = MetricAlert {
            kind: AlertKind::ThresholdExceeded,
            metric: "cpu_usage".into(),
            value: 95.0,
            severity: Severity::Critical,
            z_score: None,
            threshold: Some(90.0),
            comparison: Some(Comparison::Gt),
            labels: BTreeMap::new(),
            ts_ms: 1,
            message: "m".into(),
            timestamp: "t".into(),
        };
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["type"], "threshold_exceeded");
        assert_eq!(json["severity"], "critical");
        assert!(json.get("z_score").is_none());
    }

    #[test]
    fn replies_carry_a_result_or_an_error() {
        let reply = ApiReply::ok(SummaryReply::default());
        let bytes = encode_bus(&reply).unwrap();
        let back: ApiReply<SummaryReply> = crate::envelope::decode_bus(&bytes).unwrap();
        assert_eq!(back.into_result().unwrap(), SummaryReply::default());
        let failed: ApiReply<SummaryReply> = ApiReply::error(ErrorCode::Unavailable, "down");
        assert_eq!(
            failed.into_result().unwrap_err().code,
            ErrorCode::Unavailable
        );
        let stats = StatisticsReply {
            metric: "m".into(),
            as_of_ms: 5,
            windows: [(Window::OneMinute, Statistics::default())].into(),
        };
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["windows"]["1m"]["count"], 0);
        assert!(json["windows"]["1m"]["avg"].is_null());
        let bytes = encode_bus(&stats).unwrap();
        assert_eq!(
            crate::envelope::decode_bus::<StatisticsReply>(&bytes).unwrap(),
            stats
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{decode_bus, encode_bus};

    #[test]
    fn a_list_of_samples_round_trips_as_named_msgpack() {
        let samples = vec![
            MetricSample::new("nodes.active", 3.0, 1_730_000_000_000),
            MetricSample::new("node.cpu_percent", 12.5, 1_730_000_000_000)
                .with_label("node_id", "n-1"),
        ];
        let bytes = encode_bus(&samples).unwrap();
        let back: Vec<MetricSample> = decode_bus(&bytes).unwrap();
        assert_eq!(back, samples);
    }

    #[test]
    fn labels_may_be_absent() {
        let bytes = encode_bus(&serde_json::json!({
            "metric": "x", "value": 1.5, "ts_ms": 7
        }))
        .unwrap();
        let sample: MetricSample = decode_bus(&bytes).unwrap();
        assert!(sample.labels.is_empty());
    }
}

//! Metric samples on `sb.ingest.metric` (ARCHITECTURE.md § Subjects): what the publisher,
//! device readers and nodes send to the aggregator.
//!
//! A payload is one [`MetricSample`] or a list of them, as named MessagePack maps:
//! `{"metric": "nodes.active", "value": 3.0, "ts_ms": 1730000000000, "labels": {}}`.
//! Metric names are dotted lowercase (`node.cpu_percent`); what distinguishes series of one
//! metric (a node id, a device) goes into `labels`, not into the name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

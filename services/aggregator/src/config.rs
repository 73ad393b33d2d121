//! The aggregator's configuration: shared sections from `settings` plus `[aggregator]`.

use std::time::Duration;

use protocol::metrics::{Comparison, Severity, Window};
use serde::{Deserialize, Serialize};
use settings::{BusConfig, StoreConfig, TelemetryConfig};

/// Everything `switchboard-aggregator` reads from defaults, `--config FILE` and `SWITCHBOARD__*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Windows, detection, thresholds, history and replication.
    pub aggregator: AggregatorConfig,
    /// The message bus (NATS, or the embedded in-memory bus when `nats_url` is unset).
    pub bus: BusConfig,
    /// History, membership and summaries (Redis, or in memory when `redis_url` is unset).
    pub store: StoreConfig,
    /// Logs, traces and the admin server (`/metrics`, `/healthz`, `/readyz`).
    pub telemetry: TelemetryConfig,
}

/// The `[aggregator]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// This replica's id among the aggregators; a random `agg-xxxxxxxx` when unset. Give each
    /// replica a stable one (the pod name) so a restart keeps its metrics.
    pub replica_id: Option<String>,
    /// How often raw samples, roll-ups and summaries are written to the store, and windows
    /// slide. Queries served from the store lag by at most this much.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// TTL of this replica's membership entry, refreshed every third of it. A replica that
    /// dies loses its metrics to the others within this time.
    #[serde(with = "humantime_serde")]
    pub liveness_ttl: Duration,
    /// How long a replica that gained a metric waits before loading its last hour from the
    /// store, so the previous owner can flush first. Must cover one membership refresh
    /// (`liveness_ttl / 3`) plus one `flush_interval` of the previous owner.
    #[serde(with = "humantime_serde")]
    pub handover_settle: Duration,
    /// How long samples of metrics this replica does not own are kept, so a replica that
    /// takes a metric over (even from one that crashed) has the samples nobody stored.
    /// Should exceed `liveness_ttl + handover_settle`.
    #[serde(with = "humantime_serde")]
    pub standby_retention: Duration,
    /// Cap on those samples across all metrics; beyond it the oldest are dropped and counted.
    /// About 100 bytes each.
    pub standby_max_samples: usize,
    /// Samples a window needs before z-scores are computed for new samples.
    pub min_samples: usize,
    /// The window new samples are compared with for anomaly detection.
    pub anomaly_window: Window,
    /// |z| above this is a `medium` anomaly.
    pub z_medium: f64,
    /// |z| above this is a `high` anomaly.
    pub z_high: f64,
    /// After an anomaly alert for a metric, further ones of the same or lower severity wait
    /// this long; a higher severity is still raised.
    #[serde(with = "humantime_serde")]
    pub anomaly_cooldown: Duration,
    /// Default cool-down of threshold rules: one breach is one alert per this long.
    #[serde(with = "humantime_serde")]
    pub threshold_cooldown: Duration,
    /// Samples stamped further in the future than this are rejected and counted.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// How often an owned metric's entry in the summary (`/api/ws/metrics/summary`) is
    /// rewritten while it changes. Each rewrite is one small hash write per metric; raise it
    /// with many thousands of metrics.
    #[serde(with = "humantime_serde")]
    pub summary_interval: Duration,
    /// Queries answered at once; more wait (NATS buffers them).
    pub max_concurrent_queries: usize,
    /// Threshold rules (`[[aggregator.thresholds]]`), in force while no rule set is stored
    /// through the rules API; seed 001's defaults (CPU and memory above 90 %) when empty.
    pub thresholds: Vec<ThresholdRule>,
    /// How often the rule set stored through the rules API is re-read, so a change made
    /// through another replica is applied here within this long.
    #[serde(with = "humantime_serde")]
    pub rules_refresh_interval: Duration,
}

/// One `[[aggregator.thresholds]]` rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    /// The rule's name in the rules API; `threshold_<position>` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A metric name, or a pattern with `*` (one segment) and `>` (the rest).
    pub metric: String,
    /// `gt`, `gte`, `lt` or `lte`.
    pub comparison: Comparison,
    /// The threshold.
    pub value: f64,
    /// `info`, `low`, `medium`, `warning`, `high` or `critical`.
    pub severity: Severity,
    /// This rule's cool-down; `aggregator.threshold_cooldown` when unset.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub cooldown: Option<Duration>,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            replica_id: None,
            flush_interval: Duration::from_secs(1),
            liveness_ttl: Duration::from_secs(6),
            handover_settle: Duration::from_secs(4),
            standby_retention: Duration::from_secs(15),
            standby_max_samples: 200_000,
            min_samples: 30,
            anomaly_window: Window::FiveMinutes,
            z_medium: 2.5,
            z_high: 3.5,
            anomaly_cooldown: Duration::from_secs(60),
            threshold_cooldown: Duration::from_secs(300),
            max_clock_skew: Duration::from_secs(60),
            summary_interval: Duration::from_secs(5),
            max_concurrent_queries: 32,
            thresholds: Vec::new(),
            rules_refresh_interval: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// Checks the configuration and lists every problem found.
    ///
    /// # Errors
    /// Returns all problems at once, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.bus.validate(&mut problems);
        self.store.validate(&mut problems);
        self.telemetry.validate(&mut problems);
        self.aggregator.validate(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl AggregatorConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if let Some(id) = &self.replica_id
            && (id.is_empty() || id.contains(|c: char| c.is_whitespace()))
        {
            problems.push("aggregator.replica_id must be non-empty without whitespace".into());
        }
        for (key, value) in [
            ("flush_interval", self.flush_interval),
            ("liveness_ttl", self.liveness_ttl),
            ("anomaly_cooldown", self.anomaly_cooldown),
            ("threshold_cooldown", self.threshold_cooldown),
            ("rules_refresh_interval", self.rules_refresh_interval),
        ] {
            if value.is_zero() {
                problems.push(format!("aggregator.{key} must be greater than zero"));
            }
        }
        if self.liveness_ttl < Duration::from_millis(300) {
            problems.push("aggregator.liveness_ttl must be at least 300ms".into());
        }
        if self.standby_retention < self.handover_settle {
            problems.push("aggregator.standby_retention must be at least handover_settle".into());
        }
        if self.min_samples < 2 {
            problems.push("aggregator.min_samples must be at least 2".into());
        }
        if !(self.z_medium.is_finite() && self.z_medium > 0.0 && self.z_high >= self.z_medium) {
            problems
                .push("aggregator.z_medium must be positive and z_high at least z_medium".into());
        }
        if self.max_concurrent_queries == 0 {
            problems.push("aggregator.max_concurrent_queries must be at least 1".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, rule) in self.thresholds.iter().enumerate() {
            let name = rule
                .name
                .clone()
                .unwrap_or_else(|| format!("threshold_{}", index + 1));
            let name_is_plain = !name.is_empty()
                && name.len() <= protocol::metrics::rules::MAX_RULE_NAME_BYTES
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !name_is_plain {
                problems.push(format!(
                    "aggregator.thresholds[{index}].name must be 1-64 of A-Z a-z 0-9 _ - ."
                ));
            } else if !names.insert(name) {
                problems.push(format!(
                    "aggregator.thresholds[{index}].name is used by another rule"
                ));
            }
            if !protocol::pattern::is_valid_pattern(&rule.metric) {
                problems.push(format!(
                    "aggregator.thresholds[{index}].metric {:?} is not a metric name or pattern",
                    rule.metric
                ));
            }
            if !rule.value.is_finite() {
                problems.push(format!(
                    "aggregator.thresholds[{index}].value must be a finite number"
                ));
            }
            if rule.cooldown.is_some_and(|cooldown| cooldown.is_zero()) {
                problems.push(format!(
                    "aggregator.thresholds[{index}].cooldown must be greater than zero"
                ));
            }
        }
    }
}

impl ::service::ServiceConfig for Config {
    /// [`Config::validate`], plus the NATS and Redis URLs the `switchboard-aggregator` process needs.
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        ::service::with_cluster_backends(
            self.validate(),
            "switchboard-aggregator",
            &self.bus,
            &self.store,
        )
    }

    fn telemetry(&self) -> &settings::TelemetryConfig {
        &self.telemetry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn thresholds_come_from_toml_and_every_problem_is_listed() {
        let toml = r#"
            [aggregator]
            flush_interval = "500ms"
            z_high = 1.0

            [[aggregator.thresholds]]
            metric = "node.*.cpu"
            comparison = "gte"
            value = 90
            severity = "critical"
            cooldown = "2m"

            [[aggregator.thresholds]]
            metric = "a..b"
            comparison = "lt"
            value = 1
            severity = "info"
        "#;
        let file = std::env::temp_dir().join(format!("agg-config-{}.toml", std::process::id()));
        std::fs::write(&file, toml).unwrap();
        let config: Config =
            settings::load(Some(&file), &std::collections::HashMap::new()).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(config.aggregator.flush_interval, Duration::from_millis(500));
        let rule = &config.aggregator.thresholds[0];
        assert_eq!(rule.comparison, Comparison::Gte);
        assert_eq!(rule.severity, Severity::Critical);
        assert_eq!(rule.cooldown, Some(Duration::from_secs(120)));
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}

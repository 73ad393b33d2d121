//! Alerts: z-score anomalies against a recent window, and configured threshold rules, each
//! with a cool-down so one breach (or one burst of outliers) is one alert.
//!
//! Cool-downs are tracked per metric here, and each alert is also claimed in the store for
//! its cool-down (see `Candidate::claim_key`) before it is published, so two replicas that
//! both process a metric during a handover, or a replica that restarted, still raise it once.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use protocol::metrics::rules::AlertRule;
use protocol::metrics::{AlertKind, Comparison, MetricAlert, Severity, Window};

use crate::config::AggregatorConfig;
use crate::series::{Point, Series};

/// An alert ready to be claimed and published.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) alert: MetricAlert,
    /// Store claim that makes the alert once-per-cool-down across replicas.
    pub(crate) claim_key: String,
    pub(crate) claim_ttl: Duration,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    comparison: Comparison,
    threshold: f64,
    severity: Severity,
    cooldown_ms: u64,
    /// Identifies the rule in claim keys, the same on every replica with the same config.
    id: String,
}

/// The alerting rules, shared by every metric.
#[derive(Debug, Clone)]
pub(crate) struct Detector {
    rules: Vec<Rule>,
    /// Cool-down of rules that set none (`threshold_cooldown`).
    default_cooldown_ms: u64,
    anomaly_window: Window,
    min_samples: u64,
    z_medium: f64,
    z_high: f64,
    anomaly_cooldown_ms: u64,
}

/// A sample as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation<'a> {
    pub(crate) metric: &'a str,
    pub(crate) point: Point,
    pub(crate) labels: &'a BTreeMap<String, String>,
}

/// One metric's alerting state.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlertState {
    /// The rules matching the metric, each with the time of its last alert.
    rules: Vec<RuleSlot>,
    /// Time and severity of the last anomaly alert.
    last_anomaly: Option<(u64, Severity)>,
    /// The anomaly baseline of each label set the metric is sampled with (say one per
    /// device and module of `device.ch1_power`): samples of different sources are different
    /// series, so each is compared only with its own recent samples. Samples without labels
    /// use the metric's window.
    labelled: BTreeMap<BTreeMap<String, String>, Baseline>,
}

/// One rule that applies to a metric.
#[derive(Debug, Clone)]
struct RuleSlot {
    /// Index into `Detector::rules`.
    index: usize,
    /// The rule's id, to recognise it across rule changes.
    id: String,
    /// When it last alerted for the metric.
    last_alert: Option<u64>,
}

/// Label sets per metric that get a baseline of their own; samples of further ones are
/// compared with the metric's window (bounds the memory a label explosion can take).
const MAX_LABEL_SETS: usize = 256;

/// Running moments of one label set's samples in the anomaly window.
#[derive(Debug, Clone, Default)]
struct Baseline {
    points: VecDeque<Point>,
    /// Subtracted from every value before summing (the first value), for precision.
    shift: f64,
    sum: f64,
    sum_sq: f64,
}

impl Baseline {
    /// Drops samples at or before `cutoff_ms`.
    fn advance(&mut self, cutoff_ms: u64) {
        while let Some(point) = self.points.front() {
            if point.ts_ms > cutoff_ms {
                break;
            }
            let delta = point.value - self.shift;
            self.sum -= delta;
            self.sum_sq -= delta * delta;
            self.points.pop_front();
        }
        if self.points.is_empty() {
            (self.sum, self.sum_sq) = (0.0, 0.0);
        }
    }

    fn push(&mut self, point: Point) {
        if self.points.is_empty() {
            self.shift = point.value;
        }
        let delta = point.value - self.shift;
        self.sum += delta;
        self.sum_sq += delta * delta;
        self.points.push_back(point);
    }

    /// `(count, mean, population stddev)`, as [`Series::moments`].
    fn moments(&self) -> (u64, f64, f64) {
        if self.points.is_empty() {
            return (0, 0.0, 0.0);
        }
        let n = self.points.len() as f64;
        let mean_delta = self.sum / n;
        let variance = (self.sum_sq / n - mean_delta * mean_delta).max(0.0);
        (
            self.points.len() as u64,
            self.shift + mean_delta,
            variance.sqrt(),
        )
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn comparison_symbol(comparison: Comparison) -> &'static str {
    match comparison {
        Comparison::Gt => ">",
        Comparison::Gte => ">=",
        Comparison::Lt => "<",
        Comparison::Lte => "<=",
    }
}

impl Detector {
    /// The detector of `config` with threshold rules `rules` (see `rules::RuleSet`).
    pub(crate) fn new(config: &AggregatorConfig, rules: &[AlertRule]) -> Self {
        let mut detector = Self {
            rules: Vec::new(),
            default_cooldown_ms: millis(config.threshold_cooldown),
            anomaly_window: config.anomaly_window,
            min_samples: config.min_samples as u64,
            z_medium: config.z_medium,
            z_high: config.z_high,
            anomaly_cooldown_ms: millis(config.anomaly_cooldown),
        };
        detector.set_rules(rules);
        detector
    }

    /// Replaces the threshold rules; states made before must be passed through
    /// [`Detector::rebind`].
    pub(crate) fn set_rules(&mut self, rules: &[AlertRule]) {
        self.rules = rules
            .iter()
            .map(|rule| Rule {
                pattern: rule.metric.clone(),
                comparison: rule.op,
                threshold: rule.threshold,
                severity: rule.severity,
                cooldown_ms: rule.cooldown_ms.unwrap_or(self.default_cooldown_ms),
                id: format!(
                    "{}|{}|{}|{}",
                    rule.name,
                    rule.metric,
                    comparison_symbol(rule.op),
                    rule.threshold
                ),
            })
            .collect();
    }

    /// Points a metric's state at the current rules, keeping the last alert time of every
    /// rule that is still there unchanged (same id), so a rule change does not reopen the
    /// cool-downs of the rules it kept.
    pub(crate) fn rebind(&self, state: &mut AlertState, metric: &str) {
        let mut fresh = self.state_for(metric).rules;
        for slot in &mut fresh {
            slot.last_alert = state
                .rules
                .iter()
                .find(|old| old.id == slot.id)
                .and_then(|old| old.last_alert);
        }
        state.rules = fresh;
    }

    /// Returns the alerting state of a metric: the rules that apply to it, no alert yet.
    pub(crate) fn state_for(&self, metric: &str) -> AlertState {
        AlertState {
            rules: self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| protocol::pattern::matches(&rule.pattern, metric))
                .map(|(index, rule)| RuleSlot {
                    index,
                    id: rule.id.clone(),
                    last_alert: None,
                })
                .collect(),
            last_anomaly: None,
            labelled: BTreeMap::new(),
        }
    }

    /// Checks a new sample against the metric's windows *before* it is inserted (so an
    /// outlier does not widen its own baseline) and against its threshold rules. Pushes the
    /// alerts due to `out`; returns how many were held back by a cool-down.
    pub(crate) fn check(
        &self,
        state: &mut AlertState,
        series: &Series,
        observation: Observation<'_>,
        now_ms: u64,
        out: &mut Vec<Candidate>,
    ) -> u64 {
        let Observation {
            metric,
            point: sample,
            labels,
        } = observation;
        let mut suppressed = 0;
        for RuleSlot {
            index, last_alert, ..
        } in &mut state.rules
        {
            let rule = &self.rules[*index];
            if !rule.comparison.breached(sample.value, rule.threshold) {
                continue;
            }
            if last_alert.is_some_and(|last| now_ms.saturating_sub(last) < rule.cooldown_ms) {
                suppressed += 1;
                continue;
            }
            *last_alert = Some(now_ms);
            out.push(Candidate {
                alert: MetricAlert {
                    kind: AlertKind::ThresholdExceeded,
                    metric: metric.to_owned(),
                    value: sample.value,
                    severity: rule.severity,
                    z_score: None,
                    threshold: Some(rule.threshold),
                    comparison: Some(rule.comparison),
                    labels: labels.clone(),
                    ts_ms: sample.ts_ms,
                    message: format!(
                        "{metric} = {} breached threshold {} {}",
                        sample.value,
                        comparison_symbol(rule.comparison),
                        rule.threshold
                    ),
                    timestamp: protocol::time::now_rfc3339(),
                },
                claim_key: format!("threshold:{}:{metric}", rule.id),
                claim_ttl: Duration::from_millis(rule.cooldown_ms),
            });
        }
        if !labels.is_empty()
            && state.labelled.len() < MAX_LABEL_SETS
            && !state.labelled.contains_key(labels)
        {
            state.labelled.insert(labels.clone(), Baseline::default());
        }
        let baseline = if labels.is_empty() {
            None
        } else {
            state.labelled.get_mut(labels)
        };
        let moments = match baseline {
            Some(baseline) => {
                baseline.advance(now_ms.saturating_sub(self.anomaly_window.duration_ms()));
                let moments = baseline.moments();
                baseline.push(sample);
                moments
            }
            None => series.moments(self.anomaly_window),
        };
        if let Some((z_score, mean)) = self.z_score(moments, sample.value) {
            let severity = if z_score.abs() > self.z_high {
                Some(Severity::High)
            } else if z_score.abs() > self.z_medium {
                Some(Severity::Medium)
            } else {
                None
            };
            if let Some(severity) = severity {
                let cooling = state.last_anomaly.is_some_and(|(last, last_severity)| {
                    now_ms.saturating_sub(last) < self.anomaly_cooldown_ms
                        && severity <= last_severity
                });
                if cooling {
                    suppressed += 1;
                } else {
                    state.last_anomaly = Some((now_ms, severity));
                    out.push(self.anomaly(metric, sample, labels, z_score, mean, severity));
                }
            }
        }
        suppressed
    }

    /// The sample's z-score and the window mean, once the window (`(count, mean, stddev)`)
    /// has `min_samples` samples that are not all equal.
    fn z_score(&self, moments: (u64, f64, f64), value: f64) -> Option<(f64, f64)> {
        let (count, mean, stddev) = moments;
        let spread_is_meaningful = stddev > 1e-12 * mean.abs().max(1.0);
        (count >= self.min_samples && spread_is_meaningful).then(|| ((value - mean) / stddev, mean))
    }

    fn anomaly(
        &self,
        metric: &str,
        sample: Point,
        labels: &BTreeMap<String, String>,
        z_score: f64,
        mean: f64,
        severity: Severity,
    ) -> Candidate {
        let severity_name = match severity {
            Severity::High => "high",
            _ => "medium",
        };
        Candidate {
            alert: MetricAlert {
                kind: AlertKind::AnomalyDetected,
                metric: metric.to_owned(),
                value: sample.value,
                severity,
                z_score: Some(z_score),
                threshold: None,
                comparison: None,
                labels: labels.clone(),
                ts_ms: sample.ts_ms,
                message: format!(
                    "{metric} = {} is {z_score:.2} standard deviations from its {} mean {mean:.3}",
                    sample.value,
                    self.anomaly_window.as_str()
                ),
                timestamp: protocol::time::now_rfc3339(),
            },
            claim_key: format!("anomaly:{severity_name}:{metric}"),
            claim_ttl: Duration::from_millis(self.anomaly_cooldown_ms),
        }
    }
}

#[cfg(test)]
mod tests;

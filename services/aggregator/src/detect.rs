//! Alerts: z-score anomalies against a recent window, and configured threshold rules, each
//! with a cool-down so one breach (or one burst of outliers) is one alert.
//!
//! Cool-downs are tracked per metric here, and each alert is also claimed in the store for
//! its cool-down (see `Candidate::claim_key`) before it is published, so two replicas that
//! both process a metric during a handover, or a replica that restarted, still raise it once.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

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
    /// Indices of the rules matching the metric, each with the time of its last alert.
    rules: Vec<(usize, Option<u64>)>,
    /// Time and severity of the last anomaly alert.
    last_anomaly: Option<(u64, Severity)>,
    /// The anomaly baseline of each label set the metric is sampled with (say one per
    /// device and module of `device.ch1_power`): samples of different sources are different
    /// series, so each is compared only with its own recent samples. Samples without labels
    /// use the metric's window.
    labelled: BTreeMap<BTreeMap<String, String>, Baseline>,
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
    pub(crate) fn new(config: &AggregatorConfig) -> Self {
        let rules = config
            .thresholds
            .iter()
            .map(|rule| Rule {
                pattern: rule.metric.clone(),
                comparison: rule.comparison,
                threshold: rule.value,
                severity: rule.severity,
                cooldown_ms: millis(rule.cooldown.unwrap_or(config.threshold_cooldown)),
                id: format!(
                    "{}|{}|{}",
                    rule.metric,
                    comparison_symbol(rule.comparison),
                    rule.value
                ),
            })
            .collect();
        Self {
            rules,
            anomaly_window: config.anomaly_window,
            min_samples: config.min_samples as u64,
            z_medium: config.z_medium,
            z_high: config.z_high,
            anomaly_cooldown_ms: millis(config.anomaly_cooldown),
        }
    }

    /// Returns the alerting state of a metric: the rules that apply to it, no alert yet.
    pub(crate) fn state_for(&self, metric: &str) -> AlertState {
        AlertState {
            rules: self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| protocol::pattern::matches(&rule.pattern, metric))
                .map(|(index, _)| (index, None))
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
        for (index, last_alert) in &mut state.rules {
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
mod tests {
    use super::*;
    use crate::config::ThresholdRule;

    const T0: u64 = 1_700_000_000_000;

    fn detector(adjust: impl FnOnce(&mut AggregatorConfig)) -> Detector {
        let mut config = AggregatorConfig::default();
        adjust(&mut config);
        Detector::new(&config)
    }

    /// 60 samples alternating 9 and 11 (mean 10, stddev 1), one per second before `T0`.
    fn steady_series() -> Series {
        let mut series = Series::new(T0);
        for i in 0..60u64 {
            let value = if i % 2 == 0 { 9.0 } else { 11.0 };
            series.insert(
                Point {
                    ts_ms: T0 - 60_000 + i * 1_000,
                    value,
                },
                T0,
            );
        }
        series
    }

    fn check(
        detector: &Detector,
        state: &mut AlertState,
        series: &Series,
        value: f64,
        now_ms: u64,
    ) -> (Vec<Candidate>, u64) {
        let mut out = Vec::new();
        let point = Point {
            ts_ms: now_ms,
            value,
        };
        let labels = BTreeMap::new();
        let observation = Observation {
            metric: "m",
            point,
            labels: &labels,
        };
        let suppressed = detector.check(state, series, observation, now_ms, &mut out);
        (out, suppressed)
    }

    #[test]
    fn z_scores_above_the_limits_raise_medium_and_high_anomalies() {
        let detector = detector(|_| {});
        let series = steady_series();
        let mut state = detector.state_for("m");
        assert!(check(&detector, &mut state, &series, 12.0, T0).0.is_empty());
        let (alerts, _) = check(&detector, &mut state, &series, 13.0, T0);
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0].alert;
        assert_eq!(
            (alert.kind, alert.severity),
            (AlertKind::AnomalyDetected, Severity::Medium)
        );
        assert_eq!(alert.z_score, Some(3.0));
        // Within the cool-down a higher severity still gets through, a repeat does not.
        let (alerts, _) = check(&detector, &mut state, &series, 4.0, T0 + 1);
        assert_eq!(alerts[0].alert.severity, Severity::High);
        assert_eq!(alerts[0].alert.z_score, Some(-6.0));
        let (alerts, suppressed) = check(&detector, &mut state, &series, 30.0, T0 + 2);
        assert!(alerts.is_empty());
        assert_eq!(suppressed, 1);
        // After the cool-down it is raised again.
        let (alerts, _) = check(&detector, &mut state, &series, 30.0, T0 + 60_001);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].claim_key, "anomaly:high:m");
    }

    #[test]
    fn no_z_score_before_min_samples_or_for_a_flat_series() {
        let detector = detector(|config| config.min_samples = 61);
        let series = steady_series();
        let mut state = detector.state_for("m");
        assert!(check(&detector, &mut state, &series, 1e6, T0).0.is_empty());

        let detector = self::detector(|_| {});
        let mut flat = Series::new(T0);
        for i in 0..40 {
            flat.insert(
                Point {
                    ts_ms: T0 - 1_000 - i,
                    value: 5.0,
                },
                T0,
            );
        }
        assert!(check(&detector, &mut state, &flat, 6.0, T0).0.is_empty());
    }

    /// Checks then inserts a labelled sample, as the engine does.
    fn feed(
        detector: &Detector,
        state: &mut AlertState,
        series: &mut Series,
        labels: &BTreeMap<String, String>,
        point: Point,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        let observation = Observation {
            metric: "device.ch1_power",
            point,
            labels,
        };
        detector.check(state, series, observation, point.ts_ms, &mut out);
        series.insert(point, point.ts_ms);
        out
    }

    #[test]
    fn sources_of_one_metric_at_different_levels_are_separate_baselines() {
        // The embedded demo's meters publishing `device.ch1_power`: opm-1 modules 1 and 4
        // at -20.1 and -20.4 dBm ten times a second, opm-2 module 1 at -12.1 dBm twice a
        // second, each with ±0.1 dB of noise. Mixed into one series, every opm-2 reading was
        // more than 3 standard deviations from the mean.
        let detector = detector(|_| {});
        let mut series = Series::new(T0);
        let mut state = detector.state_for("device.ch1_power");
        let source = |device: &str, module: &str| {
            BTreeMap::from([
                ("device".to_owned(), device.to_owned()),
                ("module".to_owned(), module.to_owned()),
                ("unit".to_owned(), "dBm".to_owned()),
            ])
        };
        let (opm1_m1, opm1_m4, opm2) = (
            source("opm-1", "1"),
            source("opm-1", "4"),
            source("opm-2", "1"),
        );
        let noise = |i: u64| [-0.1, -0.05, 0.0, 0.05, 0.1][(i % 5) as usize];
        let mut alerts = Vec::new();
        for i in 0..600u64 {
            let ts_ms = T0 + i * 100;
            for (labels, level) in [(&opm1_m1, -20.1), (&opm1_m4, -20.4)] {
                let point = Point {
                    ts_ms,
                    value: level + noise(i),
                };
                alerts.extend(feed(&detector, &mut state, &mut series, labels, point));
            }
            if i % 5 == 0 {
                let point = Point {
                    ts_ms,
                    value: -12.1 + noise(i / 5 + 2),
                };
                alerts.extend(feed(&detector, &mut state, &mut series, &opm2, point));
            }
        }
        assert!(
            alerts.is_empty(),
            "normal readings raised {:?}",
            alerts.iter().map(|c| &c.alert.message).collect::<Vec<_>>()
        );
        // A genuine drop of one meter is still an anomaly, against that meter's own level.
        let drop = Point {
            ts_ms: T0 + 60_000,
            value: -15.0,
        };
        let alerts = feed(&detector, &mut state, &mut series, &opm2, drop);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert.severity, Severity::High);
        assert_eq!(alerts[0].alert.labels, opm2);
    }

    #[test]
    fn a_threshold_breach_alerts_once_per_cool_down_and_patterns_select_metrics() {
        let detector = detector(|config| {
            config.thresholds = vec![
                ThresholdRule {
                    metric: "m".into(),
                    comparison: Comparison::Gt,
                    value: 90.0,
                    severity: Severity::Critical,
                    cooldown: Some(Duration::from_secs(10)),
                },
                ThresholdRule {
                    metric: "other.>".into(),
                    comparison: Comparison::Lt,
                    value: 0.0,
                    severity: Severity::Info,
                    cooldown: None,
                },
            ];
        });
        let series = Series::new(T0);
        let mut state = detector.state_for("m");
        assert_eq!(detector.state_for("other.a.b").rules.len(), 1);
        assert!(detector.state_for("mm").rules.is_empty());

        assert!(check(&detector, &mut state, &series, 90.0, T0).0.is_empty());
        let (alerts, _) = check(&detector, &mut state, &series, 95.0, T0);
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0].alert;
        assert_eq!(alert.kind, AlertKind::ThresholdExceeded);
        assert_eq!(
            (alert.threshold, alert.severity),
            (Some(90.0), Severity::Critical)
        );
        assert_eq!(alerts[0].claim_ttl, Duration::from_secs(10));
        let mut suppressed = 0;
        for i in 1..100 {
            let (alerts, held) = check(&detector, &mut state, &series, 99.0, T0 + i * 100);
            assert!(alerts.is_empty());
            suppressed += held;
        }
        assert_eq!(suppressed, 99);
        let (alerts, _) = check(&detector, &mut state, &series, 99.0, T0 + 10_000);
        assert_eq!(alerts.len(), 1, "the next cool-down period gets its alert");
    }
}

//! Detector tests: anomalies, baselines per label set, threshold rules and their changes.

use super::*;
use crate::config::ThresholdRule;
use crate::rules::RuleSet;

const T0: u64 = 1_700_000_000_000;

fn detector(adjust: impl FnOnce(&mut AggregatorConfig)) -> Detector {
    let mut config = AggregatorConfig::default();
    adjust(&mut config);
    Detector::new(&config, &RuleSet::configured(&config).rules)
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
                name: None,
                metric: "m".into(),
                comparison: Comparison::Gt,
                value: 90.0,
                severity: Severity::Critical,
                cooldown: Some(Duration::from_secs(10)),
            },
            ThresholdRule {
                name: None,
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

#[test]
fn the_default_rules_alert_on_node_cpu_and_memory_above_90() {
    let detector = detector(|_| {});
    let series = Series::new(T0);
    let labels = BTreeMap::from([("node_id".to_owned(), "n-1".to_owned())]);
    for (metric, severity) in [
        ("node.cpu_percent", Severity::Critical),
        ("node.memory_used_percent", Severity::Warning),
    ] {
        let mut state = detector.state_for(metric);
        let mut out = Vec::new();
        for value in [90.0, 95.0] {
            let observation = Observation {
                metric,
                point: Point { ts_ms: T0, value },
                labels: &labels,
            };
            detector.check(&mut state, &series, observation, T0, &mut out);
        }
        assert_eq!(out.len(), 1, "{metric}: 90 is not above 90, 95 is");
        assert_eq!(out[0].alert.severity, severity);
        assert_eq!(out[0].alert.threshold, Some(90.0));
    }
}

#[test]
fn new_rules_apply_to_existing_states_and_kept_rules_keep_their_cool_down() {
    let mut detector = detector(|_| {});
    let series = Series::new(T0);
    let mut state = detector.state_for("node.cpu_percent");
    let (alerts, _) = check_metric(&detector, &mut state, &series, "node.cpu_percent", 95.0, T0);
    assert_eq!(alerts.len(), 1);
    let mut rules = RuleSet::configured(&AggregatorConfig::default()).rules;
    rules.push(AlertRule {
        name: "cpu_low".into(),
        metric: "node.*".into(),
        op: Comparison::Gt,
        threshold: 10.0,
        severity: Severity::Info,
        cooldown_ms: None,
    });
    detector.set_rules(&rules);
    detector.rebind(&mut state, "node.cpu_percent");
    let (alerts, suppressed) = check_metric(
        &detector,
        &mut state,
        &series,
        "node.cpu_percent",
        95.0,
        T0 + 1,
    );
    assert_eq!(alerts.len(), 1, "only the new rule alerts");
    assert_eq!(alerts[0].alert.severity, Severity::Info);
    assert_eq!(suppressed, 1, "the kept cpu rule is still cooling down");
    detector.set_rules(&[]);
    detector.rebind(&mut state, "node.cpu_percent");
    let (alerts, _) = check_metric(
        &detector,
        &mut state,
        &series,
        "node.cpu_percent",
        99.0,
        T0 + 2,
    );
    assert!(alerts.is_empty(), "an empty set alerts on nothing");
}

fn check_metric(
    detector: &Detector,
    state: &mut AlertState,
    series: &Series,
    metric: &str,
    value: f64,
    now_ms: u64,
) -> (Vec<Candidate>, u64) {
    let mut out = Vec::new();
    let labels = BTreeMap::new();
    let observation = Observation {
        metric,
        point: Point {
            ts_ms: now_ms,
            value,
        },
        labels: &labels,
    };
    let suppressed = detector.check(state, series, observation, now_ms, &mut out);
    (out, suppressed)
}

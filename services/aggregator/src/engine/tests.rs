use std::collections::BTreeMap;
use std::time::Duration;

use protocol::metrics::{AlertKind, MetricSample, MetricSummary, Severity, Statistics, Window};
use store::history::{HistoryWrite, MINUTE_MS, RawSample};

use super::Engine;
use crate::config::AggregatorConfig;
use crate::detect::Candidate;
use crate::stats::statistics;

/// A minute boundary, so tests can reason about minutes.
const T0: u64 = 1_700_000_040_000;

fn config() -> AggregatorConfig {
    AggregatorConfig {
        handover_settle: Duration::from_secs(3),
        summary_interval: Duration::ZERO,
        ..AggregatorConfig::default()
    }
}

fn engine(replica: &str, members: &[&str], now_ms: u64) -> Engine {
    let mut engine = Engine::new(replica.to_owned(), &config(), now_ms);
    engine.apply_membership(members.iter().map(|m| (*m).to_owned()).collect(), now_ms);
    engine
}

fn sample(metric: &str, ts_ms: u64, value: f64) -> MetricSample {
    MetricSample::new(metric, value, ts_ms)
}

/// Feeds samples and completes due adoptions at once with an empty store, as a replica does
/// on its first tick.
fn feed(engine: &mut Engine, samples: &[MetricSample], now_ms: u64) -> Vec<Candidate> {
    let mut alerts = Vec::new();
    for sample in samples {
        engine.ingest(sample.clone(), now_ms, &mut alerts);
    }
    adopt(engine, now_ms, |_| Vec::new(), &mut alerts);
    alerts
}

fn adopt(
    engine: &mut Engine,
    now_ms: u64,
    stored: impl Fn(&str) -> Vec<RawSample>,
    alerts: &mut Vec<Candidate>,
) {
    let due = engine.due_adoptions(now_ms);
    let loaded = due
        .into_iter()
        .map(|name| {
            let samples = stored(&name);
            (name, samples)
        })
        .collect();
    engine.complete_adoptions(loaded, now_ms, alerts);
}

/// Deterministic noise in [0, 1).
fn noise(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 11;
    x as f64 / (1u64 << 53) as f64
}

fn expected(values: &[(u64, f64)], now_ms: u64, window: Window) -> Statistics {
    let mut inside: Vec<f64> = values
        .iter()
        .filter(|(ts, _)| *ts > now_ms - window.duration_ms())
        .map(|(_, value)| *value)
        .collect();
    statistics(&mut inside)
}

#[test]
fn statistics_per_window_match_the_samples_they_cover() {
    let now = T0 + 3_000_000;
    let mut engine = engine("a", &["a"], T0);
    let series: Vec<(u64, f64)> = (0..750u64)
        .map(|i| (now - 3_000_000 + i * 4_000, 50.0 + 10.0 * noise(i)))
        .collect();
    let samples: Vec<MetricSample> = series
        .iter()
        .map(|(ts, v)| sample("cpu", *ts, *v))
        .collect();
    // The engine's clock is the arrival time; the series spans 50 minutes.
    engine.apply_membership(vec!["a".into()], now - 10_000);
    feed(&mut engine, &samples, now);
    let windows = engine.statistics("cpu").expect("cpu is owned");
    for window in Window::ALL {
        assert_eq!(
            windows[&window],
            expected(&series, now, window),
            "{window:?}"
        );
    }
    // Samples at now − 3,000 s + 4 s·i, i < 750: the last at now − 4 s.
    assert_eq!(windows[&Window::OneMinute].count, 14);
    assert_eq!(windows[&Window::FiveMinutes].count, 74);
    assert_eq!(windows[&Window::OneHour].count, 750);
}

#[test]
fn invalid_late_and_future_samples_are_rejected_and_counted() {
    let now = T0 + 7_200_000;
    let mut engine = engine("a", &["a"], now - 10_000);
    let samples = [
        sample("ok", now - 1_000, 1.0),
        sample("bad name", now, 1.0),
        sample("nan", now, f64::NAN),
        sample("old", now - 3_600_000, 1.0),
        sample("future", now + 120_000, 1.0),
    ];
    feed(&mut engine, &samples, now);
    let counters = engine.counters();
    assert_eq!(
        (
            counters.processed,
            counters.invalid,
            counters.late,
            counters.future
        ),
        (1, 2, 1, 1)
    );
}

#[test]
fn a_spike_after_min_samples_raises_one_anomaly_alert() {
    let now = T0 + 600_000;
    let mut engine = engine("a", &["a"], T0);
    let steady: Vec<MetricSample> = (0..60u64)
        .map(|i| sample("latency", now - 60_000 + i * 1_000, 20.0 + noise(i)))
        .collect();
    assert!(feed(&mut engine, &steady, now).is_empty());
    let mut alerts = Vec::new();
    engine.ingest(sample("latency", now, 80.0), now, &mut alerts);
    engine.ingest(sample("latency", now + 1, 81.0), now + 1, &mut alerts);
    assert_eq!(
        alerts.len(),
        1,
        "the second outlier is within the cool-down"
    );
    let alert = &alerts[0].alert;
    assert_eq!(alert.kind, AlertKind::AnomalyDetected);
    assert_eq!(alert.severity, Severity::High);
    assert!(alert.z_score.is_some_and(|z| z > 3.5));
    assert_eq!(alert.metric, "latency");
}

fn flushed_rollups(writes: &[HistoryWrite]) -> BTreeMap<u64, store::history::MinuteRollup> {
    writes
        .iter()
        .filter_map(|write| match write {
            HistoryWrite::PutRollup { rollup, .. } => Some((rollup.minute_start_ms, *rollup)),
            _ => None,
        })
        .collect()
}

#[test]
fn complete_minutes_are_rolled_up_and_rewritten_and_new_samples_appended() {
    let mut engine = engine("a", &["a"], T0 - 10_000);
    // Three samples in minute 0, two in minute 1, one in minute 2 (incomplete).
    let series = [
        (T0 + 1_000, 1.0),
        (T0 + 2_000, 2.0),
        (T0 + 59_000, 6.0),
        (T0 + 60_000, 10.0),
        (T0 + 70_000, 20.0),
        (T0 + 125_000, 7.0),
    ];
    let now = T0 + 125_500;
    let samples: Vec<MetricSample> = series.iter().map(|(ts, v)| sample("m", *ts, *v)).collect();
    feed(&mut engine, &samples, now);
    let writes = engine.flush(now);
    let rollups = flushed_rollups(&writes);
    assert_eq!(
        rollups.keys().copied().collect::<Vec<_>>(),
        vec![T0, T0 + MINUTE_MS]
    );
    let first = rollups[&T0];
    assert_eq!(
        (first.count, first.min, first.max, first.avg),
        (3, 1.0, 6.0, 3.0)
    );
    let second = rollups[&(T0 + MINUTE_MS)];
    assert_eq!((second.count, second.avg, second.stddev), (2, 15.0, 5.0));
    let rewritten: Vec<u64> = writes
        .iter()
        .filter_map(|write| match write {
            HistoryWrite::ReplaceRawMinute {
                minute_start_ms,
                samples,
                ..
            } => {
                assert!(!samples.is_empty());
                Some(*minute_start_ms)
            }
            _ => None,
        })
        .collect();
    assert_eq!(rewritten, vec![T0, T0 + MINUTE_MS]);
    let appended: Vec<u64> = writes
        .iter()
        .flat_map(|write| match write {
            HistoryWrite::AppendRaw { samples, .. } => samples.iter().map(|s| s.ts_ms).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        appended,
        vec![T0 + 125_000],
        "rewritten minutes are not also appended"
    );
    let summary = writes.iter().find_map(|write| match write {
        HistoryWrite::PutSummary { summary, .. } => {
            Some(protocol::envelope::decode_bus::<MetricSummary>(summary).unwrap())
        }
        _ => None,
    });
    let summary = summary.expect("a summary is written");
    assert_eq!((summary.latest_value, summary.owner.as_str()), (7.0, "a"));
    assert_eq!(summary.windows[&Window::OneHour].count, 6);

    // Nothing new: nothing but the summary's refresh is written; a late sample for minute 0
    // is appended and minute 0 rolled up again.
    let quiet = engine.flush(now + 100);
    assert!(flushed_rollups(&quiet).is_empty());
    let mut alerts = Vec::new();
    engine.ingest(sample("m", T0 + 30_000, 100.0), now + 200, &mut alerts);
    let late = engine.flush(now + 300);
    let rollups = flushed_rollups(&late);
    assert_eq!(rollups[&T0].count, 4);
    assert_eq!(rollups[&T0].max, 100.0);
}

#[test]
fn two_replicas_own_disjoint_metrics_that_cover_all_of_them() {
    let now = T0 + 10_000;
    let mut a = engine("a", &["a", "b"], T0);
    let mut b = engine("b", &["a", "b"], T0);
    let samples: Vec<MetricSample> = (0..40)
        .flat_map(|metric| {
            (0..5u64).map(move |i| sample(&format!("m.{metric}"), now - i * 1_000, i as f64))
        })
        .collect();
    feed(&mut a, &samples, now);
    feed(&mut b, &samples, now);
    let (owned_a, owned_b) = (a.owned_metrics(), b.owned_metrics());
    assert!(owned_a.is_disjoint(&owned_b));
    assert_eq!(owned_a.len() + owned_b.len(), 40);
    assert!(!owned_a.is_empty() && !owned_b.is_empty());
    assert_eq!(a.counters().processed + b.counters().processed, 200);
    assert_eq!(a.counters().held + b.counters().held, 200 + 200);
    for metric in &owned_b {
        assert_eq!(b.statistics(metric).unwrap()[&Window::OneMinute].count, 5);
    }
}

#[test]
fn a_replica_that_takes_over_rebuilds_windows_from_the_store_and_its_standby_samples() {
    let start = T0 + 10_000;
    let mut a = engine("a", &["a", "b"], T0);
    let mut b = engine("b", &["a", "b"], T0);
    let metric = (0..100)
        .map(|i| format!("m.{i}"))
        .find(|name| crate::ownership::owner(name, &["a".into(), "b".into()]) == Some("b"))
        .expect("b owns some metric");
    // b stored 30 samples; 5 more arrived after its last flush, then b crashed.
    let stored: Vec<RawSample> = (0..30u64)
        .map(|i| RawSample {
            ts_ms: start + i * 1_000,
            value: 10.0 + noise(i),
        })
        .collect();
    let unflushed: Vec<MetricSample> = (30..35u64)
        .map(|i| sample(&metric, start + i * 1_000, 10.0 + noise(i)))
        .collect();
    let all: Vec<MetricSample> = stored
        .iter()
        .map(|s| sample(&metric, s.ts_ms, s.value))
        .chain(unflushed.iter().cloned())
        .collect();
    let now = start + 35_000;
    feed(&mut b, &all, now);
    feed(&mut a, &all, now);
    assert!(a.owned_metrics().is_empty());

    // b is gone: a adopts after the settle time, from the store plus its standby buffer,
    // and a spike that arrives meanwhile is alerted once adopted.
    let gone = now + 1_000;
    a.apply_membership(vec!["a".into()], gone);
    assert!(
        a.due_adoptions(gone).is_empty(),
        "a waits for the settle time"
    );
    let mut alerts = Vec::new();
    a.ingest(sample(&metric, gone, 500.0), gone, &mut alerts);
    assert!(alerts.is_empty());
    let settled = gone + 3_000;
    adopt(&mut a, settled, |_| stored.clone(), &mut alerts);
    let windows = a.statistics(&metric).expect("a owns it now");
    assert_eq!(windows[&Window::OneMinute].count, 36);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].alert.kind, AlertKind::AnomalyDetected);
    // Only the samples nobody stored are written again.
    let appended: usize = a
        .flush(settled)
        .iter()
        .map(|write| match write {
            HistoryWrite::AppendRaw { samples, .. } => samples.len(),
            HistoryWrite::ReplaceRawMinute { samples, .. } => samples.len(),
            _ => 0,
        })
        .sum();
    assert!(appended >= 6, "{appended}");
}

#[test]
fn a_replica_that_loses_a_metric_hands_over_its_unwritten_samples() {
    let now = T0 + 10_000;
    let mut a = engine("a", &["a"], T0);
    feed(
        &mut a,
        &[sample("x", now - 1_000, 1.0), sample("y", now - 500, 2.0)],
        now,
    );
    assert_eq!(a.owned_metrics().len(), 2);
    a.apply_membership(vec!["a".into(), "b".into()], now + 1);
    let lost: Vec<String> = ["x", "y"]
        .into_iter()
        .filter(|name| crate::ownership::owner(name, &["a".into(), "b".into()]) == Some("b"))
        .map(str::to_owned)
        .collect();
    let writes = a.flush(now + 2);
    for name in &lost {
        assert!(writes.iter().any(|write| matches!(
            write,
            HistoryWrite::AppendRaw { metric, .. } if metric == name
        )));
    }
    assert_eq!(a.owned_metrics().len(), 2 - lost.len());
}

#[test]
fn idle_metrics_are_forgotten_after_an_hour() {
    let now = T0 + 10_000;
    let mut a = engine("a", &["a"], T0);
    feed(&mut a, &[sample("x", now, 1.0)], now);
    a.flush(now + 60_000);
    assert_eq!(a.owned_metrics().len(), 1);
    let writes = a.flush(now + 3_600_001);
    assert!(a.owned_metrics().is_empty());
    assert!(
        writes
            .iter()
            .any(|write| matches!(write, HistoryWrite::PutSummary { .. }))
    );
}

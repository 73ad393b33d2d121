//! The aggregator on real NATS and Redis, observed from outside: alerts through a gateway
//! to a WebSocket client, history and statistics through the gateway's HTTP API, replicas
//! splitting metrics, and a restart that keeps history.

use std::collections::BTreeSet;
use std::time::Duration;

use ::aggregator::{Aggregator, Probe, RunError, ThresholdRule};
use bytes::Bytes;
use e2e::{Stack, eventually, token, viewer};
use gateway::test_util::{TestGateway, get_json};
use protocol::envelope::encode_bus;
use protocol::metrics::{Comparison, MetricPayload, MetricSample, Severity};
use serde_json::Value;
use store::history::{HistoryWrite, MINUTE_MS, MinuteRollup};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An aggregator replica serving in this process on the stack's NATS and Redis.
struct Replica {
    probe: Probe,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), RunError>>,
}

impl Replica {
    async fn start(config: ::aggregator::Config) -> Self {
        let bus = ::aggregator::connect_bus(&config)
            .await
            .expect("nats reachable");
        let store = ::aggregator::connect_store(&config)
            .await
            .expect("redis reachable");
        let replica = Aggregator::bind(config, bus, store)
            .await
            .expect("aggregator binds");
        let probe = replica.probe();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(replica.serve(shutdown.clone()));
        Self {
            probe,
            shutdown,
            handle,
        }
    }

    /// Drains as on SIGTERM.
    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }

    /// Stops abruptly: no final flush, no deregistration.
    fn kill(self) {
        self.handle.abort();
    }
}

/// Fast timings so handovers take well under a second.
fn config(stack: &Stack, replica_id: &str) -> ::aggregator::Config {
    let mut config = ::aggregator::Config::default();
    config.aggregator.replica_id = Some(replica_id.to_owned());
    config.aggregator.flush_interval = Duration::from_millis(100);
    config.aggregator.liveness_ttl = Duration::from_millis(900);
    config.aggregator.handover_settle = Duration::from_millis(500);
    config.aggregator.standby_retention = Duration::from_secs(10);
    config.aggregator.summary_interval = Duration::from_millis(100);
    config.bus.nats_url = Some(stack.nats.url());
    config.store.redis_url = Some(stack.redis.url());
    config.store.key_prefix = stack.key_prefix.clone();
    config
}

fn now_ms() -> u64 {
    protocol::time::now_unix_ms()
}

/// Deterministic noise in [0, 1).
fn noise(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 11;
    x as f64 / (1u64 << 53) as f64
}

async fn publish(bus: &bus::Bus, samples: Vec<MetricSample>) {
    let payload = encode_bus(&MetricPayload::Many(samples)).unwrap();
    bus.publish("sb.ingest.metric", Bytes::from(payload))
        .await
        .unwrap();
    bus.flush().await.unwrap();
}

/// `count` samples one second apart, ending one second ago, around `level`.
fn steady(metric: &str, count: u64, level: f64) -> Vec<MetricSample> {
    let now = now_ms();
    (0..count)
        .map(|i| MetricSample::new(metric, level + noise(i), now - (count - i) * 1_000))
        .collect()
}

async fn get(gateway: &TestGateway, path: &str) -> (u16, Value) {
    get_json(gateway.addr, path).await
}

/// Statistics computed here, independently of the aggregator, the way the API documents
/// them: population stddev, median and p95 by linear interpolation between closest ranks.
fn expected_statistics(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let quantile = |q: f64| {
        let position = q * (n - 1.0);
        let lower = position.floor() as usize;
        let upper = position.ceil() as usize;
        sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower as f64)
    };
    let mean = sorted.iter().sum::<f64>() / n;
    let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    serde_json::json!({
        "count": sorted.len(),
        "min": sorted[0],
        "max": sorted[sorted.len() - 1],
        "avg": mean,
        "median": quantile(0.5),
        "stddev": variance.sqrt(),
        "p95": quantile(0.95),
    })
}

fn assert_close(actual: &Value, expected: &Value, what: &str) {
    assert_eq!(actual["count"], expected["count"], "{what}: count");
    for field in ["min", "max", "avg", "median", "stddev", "p95"] {
        let (a, e) = (
            actual[field].as_f64().unwrap(),
            expected[field].as_f64().unwrap(),
        );
        assert!(
            (a - e).abs() <= 1e-9 * e.abs().max(1.0),
            "{what}: {field} is {a}, expected {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_in_a_metric_reaches_alerts_subscribers_as_an_anomaly() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let replica = Replica::start(config(&stack, "agg-1")).await;
    let mut client = gateway.connect(&token(&viewer("ops"))).await;
    client.subscribe(&["alerts"]).await;
    let bus = stack.bus().await;

    // The anomaly baseline is per label set: the steady history is node-7's own.
    let history = steady("betanet.latency_ms", 60, 25.0)
        .into_iter()
        .map(|sample| sample.with_label("node_id", "node-7"))
        .collect();
    publish(&bus, history).await;
    let spike =
        MetricSample::new("betanet.latency_ms", 250.0, now_ms()).with_label("node_id", "node-7");
    publish(&bus, vec![spike]).await;

    let message = client.next_room_message().await;
    assert_eq!(
        (message.room.as_str(), message.event.as_str()),
        ("alerts", "alert")
    );
    assert_eq!(message.priority.as_deref(), Some("critical"));
    let data = &message.data;
    assert_eq!(data["type"], "anomaly_detected");
    assert_eq!(data["metric"], "betanet.latency_ms");
    assert_eq!(data["value"], 250.0);
    assert_eq!(data["severity"], "high");
    assert!(data["z_score"].as_f64().unwrap() > 3.5, "{data}");
    assert_eq!(data["labels"]["node_id"], "node-7");
    assert!(
        client
            .room_message_within(Duration::from_millis(500))
            .await
            .is_none()
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_threshold_breach_alerts_exactly_once_per_cool_down() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let mut config = config(&stack, "agg-1");
    config.aggregator.thresholds = vec![ThresholdRule {
        name: None,
        metric: "cpu_usage".into(),
        comparison: Comparison::Gt,
        value: 90.0,
        severity: Severity::Critical,
        cooldown: Some(Duration::from_secs(2)),
    }];
    let replica = Replica::start(config).await;
    let mut client = gateway.connect(&token(&viewer("ops"))).await;
    client.subscribe(&["alerts"]).await;
    let bus = stack.bus().await;

    // Breach continuously for 3.2 s (a sample every 100 ms): one alert at the start, one when
    // the 2 s cool-down ends, none in between and no third one before the next cool-down.
    let breaching = tokio::spawn(async move {
        for i in 0..32u64 {
            publish(
                &bus,
                vec![MetricSample::new(
                    "cpu_usage",
                    95.0 + (i % 4) as f64,
                    now_ms(),
                )],
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut alerts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(3_900);
    while let Some(message) = client
        .room_message_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        alerts.push((tokio::time::Instant::now(), message));
    }
    breaching.await.unwrap();
    assert_eq!(
        alerts.len(),
        2,
        "{:?}",
        alerts.iter().map(|(_, m)| &m.data).collect::<Vec<_>>()
    );
    for (_, message) in &alerts {
        assert_eq!(message.event, "alert");
        assert_eq!(message.priority.as_deref(), Some("critical"));
        assert_eq!(message.data["type"], "threshold_exceeded");
        assert_eq!(message.data["threshold"], 90.0);
        assert_eq!(message.data["severity"], "critical");
        assert!(message.data["value"].as_f64().unwrap() > 90.0);
    }
    let apart = alerts[1].0 - alerts[0].0;
    assert!(
        apart >= Duration::from_millis(1_800),
        "alerts {apart:?} apart"
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_statistics_through_the_gateway_match_the_series_fed_in() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let replica = Replica::start(config(&stack, "agg-1")).await;
    let bus = stack.bus().await;
    let metric = "device.ch1_power";

    // 600 samples five seconds apart over the last 50 minutes, in six payloads.
    let now = now_ms();
    let series: Vec<MetricSample> = (0..600u64)
        .map(|i| MetricSample::new(metric, -20.0 + 5.0 * noise(i), now - 3_000_000 + i * 5_000))
        .collect();
    for chunk in series.chunks(100) {
        publish(&bus, chunk.to_vec()).await;
    }
    let path = format!("/api/ws/metrics/history?metric={metric}&hours=1");
    eventually(Duration::from_secs(10), || async {
        get(&gateway, &path).await.1["samples"]
            .as_array()
            .map(Vec::len)
            == Some(600)
    })
    .await;

    let (status, history) = get(&gateway, &path).await;
    assert_eq!(status, 200);
    let returned: Vec<(u64, f64)> = history["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["ts_ms"].as_u64().unwrap(), s["value"].as_f64().unwrap()))
        .collect();
    let fed: Vec<(u64, f64)> = series.iter().map(|s| (s.ts_ms, s.value)).collect();
    assert_eq!(
        returned, fed,
        "the last hour comes back raw, sample for sample"
    );
    assert_eq!(history["rollups"], serde_json::json!([]));

    let (status, stats) = get(
        &gateway,
        &format!("/api/ws/metrics/statistics?metric={metric}"),
    )
    .await;
    assert_eq!(status, 200);
    let as_of = stats["as_of_ms"].as_u64().unwrap();
    for (window, length_ms) in [("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000)] {
        let inside: Vec<f64> = series
            .iter()
            .filter(|s| s.ts_ms > as_of - length_ms)
            .map(|s| s.value)
            .collect();
        assert_close(
            &stats["windows"][window],
            &expected_statistics(&inside),
            window,
        );
    }
    assert_eq!(stats["windows"]["1h"]["count"], 600);
    let (_, only_5m) = get(
        &gateway,
        &format!("/api/ws/metrics/statistics?metric={metric}&window=5m"),
    )
    .await;
    assert_eq!(only_5m["windows"].as_object().unwrap().len(), 1);
    let as_of = only_5m["as_of_ms"].as_u64().unwrap();
    let inside: Vec<f64> = series
        .iter()
        .filter(|s| s.ts_ms > as_of - 300_000)
        .map(|s| s.value)
        .collect();
    assert_close(
        &only_5m["windows"]["5m"],
        &expected_statistics(&inside),
        "5m alone",
    );

    // Older history is one-minute roll-ups; write two the way the aggregator stores them
    // and read them back through the gateway.
    let store = ::aggregator::connect_store(&config(&stack, "writer"))
        .await
        .unwrap();
    let old_minutes = [now / MINUTE_MS - 150, now / MINUTE_MS - 100];
    let writes: Vec<HistoryWrite> = old_minutes
        .iter()
        .map(|minute| HistoryWrite::PutRollup {
            metric: metric.into(),
            rollup: MinuteRollup::from_values(minute * MINUTE_MS, &[1.0, 2.0, 6.0]).unwrap(),
        })
        .collect();
    store.write_history(&writes).await.unwrap();
    let (_, three_hours) = get(
        &gateway,
        &format!("/api/ws/metrics/history?metric={metric}&hours=3"),
    )
    .await;
    let rollups = three_hours["rollups"].as_array().unwrap();
    assert_eq!(rollups.len(), 2, "{rollups:?}");
    assert_eq!(
        rollups[0]["ts_ms"].as_u64(),
        Some(old_minutes[0] * MINUTE_MS)
    );
    assert_eq!(
        (rollups[1]["count"].as_u64(), rollups[1]["avg"].as_f64()),
        (Some(3), Some(3.0))
    );
    assert_eq!(three_hours["samples"].as_array().unwrap().len(), 600);

    let (status, summary) = get(&gateway, "/api/ws/metrics/summary").await;
    assert_eq!(status, 200);
    let entry = summary["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["metric"] == metric)
        .expect("the metric is summarised");
    assert_eq!(entry["owner"], "agg-1");
    assert_eq!(
        entry["latest_ts_ms"].as_u64(),
        series.last().map(|s| s.ts_ms)
    );

    for bad in [
        "/api/ws/metrics/history?hours=2",
        "/api/ws/metrics/history?metric=a..b",
        "/api/ws/metrics/history?metric=m&hours=0",
        "/api/ws/metrics/history?metric=m&hours=169",
        "/api/ws/metrics/history?metric=m&hours=two",
        "/api/ws/metrics/statistics?metric=m&window=2h",
        "/api/ws/metrics/statistics?window=1m",
    ] {
        let (status, body) = get(&gateway, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_message", "{bad}");
    }

    replica.stop().await;
    let (status, body) = get(&gateway, &path).await;
    assert_eq!(status, 503, "no aggregator left: {body}");
    assert_eq!(body["error"]["code"], "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_split_the_metrics_and_the_survivor_of_a_crash_keeps_every_sample() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let a = Replica::start(config(&stack, "agg-a")).await;
    let b = Replica::start(config(&stack, "agg-b")).await;
    eventually(Duration::from_secs(5), || async {
        a.probe.members().len() == 2 && b.probe.members().len() == 2
    })
    .await;
    let bus = stack.bus().await;
    let metrics: Vec<String> = (0..20).map(|i| format!("node.n{i}.cpu_percent")).collect();
    let batch = |count: u64, offset_ms: u64| -> Vec<MetricSample> {
        let now = now_ms();
        metrics
            .iter()
            .flat_map(|metric| {
                (0..count).map(move |i| {
                    MetricSample::new(
                        metric.as_str(),
                        40.0 + noise(i + offset_ms),
                        now - offset_ms - i * 1_000,
                    )
                })
            })
            .collect()
    };
    publish(&bus, batch(30, 0)).await;

    eventually(Duration::from_secs(10), || async {
        a.probe.processed_samples() + b.probe.processed_samples() == 600
    })
    .await;
    // Ownership settles `handover_settle` after the second replica joined, which can be
    // later than the samples' arrival on a loaded machine; wait for it, then check the split.
    let every_metric: BTreeSet<String> = metrics.iter().cloned().collect();
    eventually(Duration::from_secs(10), || async {
        let all: BTreeSet<String> = a
            .probe
            .owned_metrics()
            .union(&b.probe.owned_metrics())
            .cloned()
            .collect();
        all == every_metric
    })
    .await;
    let (owned_a, owned_b) = (a.probe.owned_metrics(), b.probe.owned_metrics());
    assert!(owned_a.is_disjoint(&owned_b), "{owned_a:?} / {owned_b:?}");
    let all: BTreeSet<String> = owned_a.union(&owned_b).cloned().collect();
    assert_eq!(all, every_metric);
    assert!(!owned_a.is_empty() && !owned_b.is_empty());

    let counts = |expected: u64| {
        let gateway = &gateway;
        let metrics = &metrics;
        async move {
            for metric in metrics {
                let path = format!("/api/ws/metrics/statistics?metric={metric}&window=1h");
                if get(gateway, &path).await.1["windows"]["1h"]["count"].as_u64() != Some(expected)
                {
                    return false;
                }
            }
            true
        }
    };
    eventually(Duration::from_secs(10), || counts(30)).await;

    // b crashes; samples keep coming while its membership expires. a takes b's metrics
    // over from the store and from the samples it held meanwhile.
    b.kill();
    publish(&bus, batch(10, 40_000)).await;
    eventually(Duration::from_secs(10), || async {
        a.probe.owned_metrics().len() == 20
    })
    .await;
    eventually(Duration::from_secs(10), || counts(40)).await;
    // The summary is written from a's windows: complete for the metrics b owned too.
    eventually(Duration::from_secs(10), || async {
        let summary = get(&gateway, "/api/ws/metrics/summary").await.1;
        summary["metrics"].as_array().is_some_and(|entries| {
            entries.len() == 20
                && entries
                    .iter()
                    .all(|e| e["owner"] == "agg-a" && e["windows"]["1h"]["count"] == 40)
        })
    })
    .await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_aggregator_keeps_history_and_rebuilds_its_windows() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let first = Replica::start(config(&stack, "agg-1")).await;
    let bus = stack.bus().await;
    publish(&bus, steady("queue.depth", 120, 12.0)).await;
    let path = "/api/ws/metrics/history?metric=queue.depth&hours=1";
    eventually(Duration::from_secs(10), || async {
        get(&gateway, path).await.1["samples"]
            .as_array()
            .map(Vec::len)
            == Some(120)
    })
    .await;
    first.stop().await;

    let restarted_at = now_ms();
    let second = Replica::start(config(&stack, "agg-1")).await;
    assert_eq!(
        get(&gateway, path).await.1["samples"]
            .as_array()
            .map(Vec::len),
        Some(120)
    );
    // The new instance rebuilt its windows: its summary counts every stored sample, and the
    // next outlier is flagged without waiting for min_samples new ones.
    eventually(Duration::from_secs(10), || async {
        let summary = get(&gateway, "/api/ws/metrics/summary").await.1;
        summary["metrics"][0]["updated_ms"].as_u64() > Some(restarted_at)
            && summary["metrics"][0]["windows"]["1h"]["count"] == 120
    })
    .await;
    let mut client = gateway.connect(&token(&viewer("ops"))).await;
    client.subscribe(&["alerts"]).await;
    publish(
        &bus,
        vec![MetricSample::new("queue.depth", 400.0, now_ms())],
    )
    .await;
    let alert = client.next_room_message().await;
    assert_eq!(alert.data["type"], "anomaly_detected");
    assert_eq!(alert.data["metric"], "queue.depth");
    second.stop().await;
}

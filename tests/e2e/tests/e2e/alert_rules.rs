//! Threshold rules changed at run time through the gateway's HTTP API, on real NATS and
//! Redis: a rule put over HTTP reaches the aggregator replicas, its breach arrives as an
//! `alert` with the rule's severity, the set survives a restart of the aggregators (it lives
//! in Redis), and `DELETE` brings back seed 001's defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use ::aggregator::{Aggregator, RunError};
use bytes::Bytes;
use e2e::{Stack, TEST_API_KEY, TestClient, token, viewer};
use gateway::test_util::{TestGateway, get_json, http_request};
use protocol::RoomMessage;
use protocol::envelope::encode_bus;
use protocol::metrics::{MetricPayload, MetricSample};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Replica {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), RunError>>,
}

impl Replica {
    async fn start(stack: &Stack, replica_id: &str) -> Self {
        let mut config = ::aggregator::Config::default();
        config.aggregator.replica_id = Some(replica_id.to_owned());
        config.aggregator.flush_interval = Duration::from_millis(100);
        config.aggregator.liveness_ttl = Duration::from_millis(900);
        config.aggregator.handover_settle = Duration::from_millis(300);
        config.aggregator.standby_retention = Duration::from_secs(10);
        config.aggregator.rules_refresh_interval = Duration::from_millis(500);
        config.bus.nats_url = Some(stack.nats.url());
        config.store.redis_url = Some(stack.redis.url());
        config.store.key_prefix = stack.key_prefix.clone();
        let bus = ::aggregator::connect_bus(&config)
            .await
            .expect("nats reachable");
        let store = ::aggregator::connect_store(&config)
            .await
            .expect("redis reachable");
        let replica = Aggregator::bind(config, bus, store)
            .await
            .expect("aggregator binds");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(replica.serve(shutdown.clone()));
        Self { shutdown, handle }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

async fn rules_request(gateway: &TestGateway, method: &str, body: &str) -> (u16, Value) {
    let authorization = format!("Bearer {TEST_API_KEY}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = http_request(
        gateway.addr,
        method,
        "/api/ws/metrics/rules",
        &headers,
        body,
    )
    .await
    .expect("request succeeds");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Publishes `metric = value` (with `labels`) every 200 ms until a `threshold_exceeded`
/// alert for that metric arrives, for at most 15 s; returns it. Alerts for other metrics
/// are returned too, so a test sees a rule that should not be there.
async fn breach_until_alert(
    bus: &bus::Bus,
    client: &mut TestClient,
    metric: &str,
    value: f64,
    labels: &[(&str, &str)],
) -> RoomMessage {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no threshold alert for {metric} = {value}"
        );
        let mut sample = MetricSample::new(metric, value, protocol::time::now_unix_ms());
        sample.labels = labels
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect::<BTreeMap<_, _>>();
        let payload = encode_bus(&MetricPayload::One(sample)).unwrap();
        bus.publish("sb.ingest.metric", Bytes::from(payload))
            .await
            .unwrap();
        bus.flush().await.unwrap();
        if let Some(message) = client.room_message_within(Duration::from_millis(200)).await
            && message.event == "alert"
            && message.data["type"] == "threshold_exceeded"
        {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_put_over_http_alert_with_their_severity_survive_restarts_and_delete_restores_the_defaults()
 {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let first = Replica::start(&stack, "agg-1").await;
    let second = Replica::start(&stack, "agg-2").await;
    let bus = stack.bus().await;
    let mut client = gateway.connect(&token(&viewer("ops"))).await;
    client.subscribe(&["alerts"]).await;

    // No rules stored, none in the file: seed 001's defaults.
    let (status, listed) = get_json(gateway.addr, "/api/ws/metrics/rules").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["source"], "defaults");
    let defaults = listed["rules"].clone();
    assert_eq!(
        defaults,
        json!([
            {"name": "cpu_usage", "metric": "node.cpu_percent", "op": ">", "threshold": 90.0, "severity": "critical"},
            {"name": "memory_usage", "metric": "node.memory_used_percent", "op": ">", "threshold": 90.0, "severity": "warning"},
        ])
    );

    // A low threshold on e2e.* with severity high.
    let low = json!({"rules": [{
        "name": "e2e_low", "metric": "e2e.>", "op": ">=", "threshold": 5, "severity": "high",
        "cooldown_ms": 60_000,
    }]});
    let (status, answer) = rules_request(&gateway, "PUT", &low.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["source"], "store");
    assert_eq!(answer["rules"][0]["op"], ">=");
    let (_, listed) = get_json(gateway.addr, "/api/ws/metrics/rules").await;
    assert_eq!(
        (&listed["source"], &listed["rules"]),
        (&json!("store"), &answer["rules"])
    );

    // Whichever replica owns the metric applies the rule (the other one within its
    // rules_refresh_interval) and the breach is an alert of the rule's severity.
    let alert = breach_until_alert(&bus, &mut client, "e2e.latency_ms", 7.0, &[]).await;
    assert_eq!(alert.data["metric"], "e2e.latency_ms", "{:?}", alert.data);
    assert_eq!(alert.data["severity"], "high");
    assert_eq!(alert.data["threshold"], 5.0);
    assert_eq!(alert.data["comparison"], "gte");
    assert_eq!(alert.priority.as_deref(), Some("critical"));

    // The set lives in Redis: aggregators started afterwards apply it from the start.
    first.stop().await;
    second.stop().await;
    let third = Replica::start(&stack, "agg-3").await;
    let alert = breach_until_alert(&bus, &mut client, "e2e.queue_depth", 9.0, &[]).await;
    assert_eq!(
        (&alert.data["metric"], &alert.data["severity"]),
        (&json!("e2e.queue_depth"), &json!("high"))
    );

    // DELETE restores the defaults: e2e.* no longer alerts, node CPU above 90 % does again.
    let (status, answer) = rules_request(&gateway, "DELETE", "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["source"], &answer["rules"]),
        (&json!("defaults"), &defaults)
    );
    let (_, listed) = get_json(gateway.addr, "/api/ws/metrics/rules").await;
    assert_eq!(listed["source"], "defaults");
    // A breach of the deleted rule first: had it survived, its alert would come first.
    let unwatched = MetricSample::new(
        "e2e.not_watched_any_more",
        100.0,
        protocol::time::now_unix_ms(),
    );
    let payload = encode_bus(&MetricPayload::One(unwatched)).unwrap();
    bus.publish("sb.ingest.metric", Bytes::from(payload))
        .await
        .unwrap();
    let alert = breach_until_alert(
        &bus,
        &mut client,
        "node.cpu_percent",
        95.0,
        &[("node_id", "n-1")],
    )
    .await;
    assert_eq!(alert.data["metric"], "node.cpu_percent", "{:?}", alert.data);
    assert_eq!(alert.data["severity"], "critical");
    assert_eq!(alert.data["labels"]["node_id"], "n-1");
    third.stop().await;
}

//! Threshold rules changed through the bus API (`sb.api.aggregator.{rules,put_rules,reset_rules}`):
//! the replica that answers stores the set, every other replica picks it up from the store on
//! its next refresh, and a reset brings the seed defaults back.

use std::time::Duration;

use bus::Bus;
use protocol::ErrorCode;
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::rules::{
    AlertRule, AlertRuleDraft, PutRulesRequest, RulesReply, RulesRequest, RulesSource,
    default_rules,
};
use protocol::metrics::{ApiError, ApiReply, Comparison, MetricSample, Severity};
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::helpers::{config, now_ms, publish, replica};

async fn ask<Q: serde::Serialize>(
    bus: &Bus,
    method: &str,
    request: &Q,
) -> Result<RulesReply, ApiError> {
    let answer = bus
        .request(
            &format!("sb.api.aggregator.{method}"),
            bus::Headers::new(),
            encode_bus(request).unwrap().into(),
            Duration::from_secs(2),
        )
        .await
        .expect("a serving replica answers");
    decode_bus::<ApiReply<RulesReply>>(&answer.payload)
        .unwrap()
        .into_result()
}

/// The refreshing replica's `rules_refresh_interval`.
const REFRESH: Duration = Duration::from_millis(20);

fn low_rule() -> AlertRule {
    AlertRule {
        name: "queue_deep".into(),
        metric: "queue.*".into(),
        op: Comparison::Gte,
        threshold: 5.0,
        severity: Severity::High,
        cooldown_ms: Some(60_000),
    }
}

#[tokio::test]
async fn the_rules_api_lists_puts_refuses_and_resets_through_a_serving_replica() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let answering = replica(config("a"), &bus, &store).await;
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(answering.serve(shutdown.clone()));

    let listed = ask(&bus, "rules", &RulesRequest {}).await.unwrap();
    assert_eq!(
        (listed.source, listed.rules),
        (RulesSource::Defaults, default_rules())
    );

    // A bad set is refused and nothing is stored.
    let mut bad = AlertRuleDraft::from(&low_rule());
    bad.op = "=>".into();
    let refused = ask(&bus, "put_rules", &PutRulesRequest { rules: vec![bad] })
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidRule);
    assert!(refused.message.contains("op"), "{}", refused.message);
    assert_eq!(store.alert_rules().await.unwrap(), None);

    let put = PutRulesRequest {
        rules: vec![AlertRuleDraft::from(&low_rule())],
    };
    let stored = ask(&bus, "put_rules", &put).await.unwrap();
    assert_eq!(
        (stored.source, &stored.rules),
        (RulesSource::Store, &vec![low_rule()])
    );
    assert!(store.alert_rules().await.unwrap().is_some());
    assert_eq!(ask(&bus, "rules", &RulesRequest {}).await.unwrap(), stored);

    let reset = ask(&bus, "reset_rules", &RulesRequest {}).await.unwrap();
    assert_eq!(
        (reset.source, reset.rules),
        (RulesSource::Defaults, default_rules())
    );
    assert_eq!(store.alert_rules().await.unwrap(), None);
    shutdown.cancel();
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stored_rule_set_reaches_a_replica_on_its_next_refresh_and_alerts_with_its_severity() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut refreshing = config("b");
    refreshing.aggregator.rules_refresh_interval = REFRESH;
    let mut other = replica(refreshing, &bus, &store).await;
    assert_eq!(other.rules().source, RulesSource::Defaults);
    let mut alerts = bus.subscribe("sb.room.alerts").await.unwrap();

    // What put_rules on another replica writes.
    let document = serde_json::to_string(&[low_rule()]).unwrap();
    store.put_alert_rules(&document).await.unwrap();
    // Waits out the refresh interval (the point of the test), then the unit of work.
    tokio::time::sleep(REFRESH * 2).await;
    other.tick().await;
    assert_eq!(other.rules().source, RulesSource::Store);
    assert_eq!(other.rules().rules, vec![low_rule()]);

    publish(&bus, vec![MetricSample::new("queue.depth", 7.0, now_ms())]).await;
    let mut raised = None;
    for _ in 0..50 {
        other.process_next().await;
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(50), alerts.next()).await
        {
            raised = Some(message);
            break;
        }
        // The metric is adopted on a tick; samples before that wait in the standby buffer.
        other.tick().await;
        publish(&bus, vec![MetricSample::new("queue.depth", 7.0, now_ms())]).await;
    }
    let raised = raised.expect("the stored rule raises an alert");
    let envelope: protocol::RoomEnvelope = decode_bus(&raised.payload).unwrap();
    assert_eq!(envelope.data["type"], "threshold_exceeded");
    assert_eq!(envelope.data["metric"], "queue.depth");
    assert_eq!(envelope.data["severity"], "high");
    assert_eq!(envelope.data["threshold"], 5.0);

    // What reset_rules on another replica does: the defaults are back on the next refresh.
    assert!(store.delete_alert_rules().await.unwrap());
    tokio::time::sleep(REFRESH * 2).await;
    other.tick().await;
    assert_eq!(other.rules().source, RulesSource::Defaults);
    assert_eq!(other.rules().rules, default_rules());
}

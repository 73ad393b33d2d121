//! The alert rules API's access and validation at the gateway (the aggregator side runs in
//! `e2e`'s `alert_rules` on real NATS and Redis), and `publishers_active` in the stats.

use std::net::SocketAddr;
use std::time::Duration;

use auth::Role;
use bus::Bus;
use gateway::test_util::{
    TEST_API_KEY, TestGateway, eventually, get_json, http_request, test_config,
};
use serde_json::{Value, json};
use store::Store;

use crate::helpers::{token, viewer};

async fn send(
    addr: SocketAddr,
    method: &str,
    authorization: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    let (status, body) = http_request(addr, method, "/api/ws/metrics/rules", &headers, body)
        .await
        .expect("request succeeds");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn rule(name: &str, op: &str, threshold: Value) -> Value {
    json!({"name": name, "metric": "node.cpu_percent", "op": op, "threshold": threshold, "severity": "critical"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_writes_need_the_api_key_or_an_admin_token_and_bad_rules_are_named() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let api_key = format!("Bearer {TEST_API_KEY}");
    let viewer_token = format!("Bearer {}", token(&viewer("watcher")));
    let mut admin = viewer("operator");
    admin.role = Role::Admin;
    let admin_token = format!("Bearer {}", token(&admin));
    let good = json!({"rules": [rule("cpu", ">", json!(50))]}).to_string();

    assert_eq!(send(gateway.addr, "PUT", None, &good).await.0, 401);
    let (status, body) = send(gateway.addr, "PUT", Some(&viewer_token), &good).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    assert_eq!(
        send(gateway.addr, "DELETE", Some(&viewer_token), "")
            .await
            .0,
        403
    );
    assert_eq!(send(gateway.addr, "DELETE", None, "").await.0, 401);

    let cases = [
        (json!([rule("cpu", "gt", json!(1))]), "unknown_op", json!(0)),
        (
            json!([rule("cpu", ">", json!("NaN"))]),
            "non_finite_threshold",
            json!(0),
        ),
        (
            json!([rule("cpu", ">", Value::Null)]),
            "non_finite_threshold",
            json!(0),
        ),
        (json!([rule("", ">", json!(1))]), "empty_name", json!(0)),
        (
            json!([rule("cpu", ">", json!(1)), rule("cpu", "<", json!(2))]),
            "duplicate_name",
            json!(1),
        ),
        (
            Value::Array(
                (0..101)
                    .map(|i| rule(&format!("r{i}"), ">", json!(1)))
                    .collect(),
            ),
            "too_many_rules",
            Value::Null,
        ),
    ];
    for (rules, reason, index) in cases {
        for authorization in [&api_key, &admin_token] {
            let body = json!({ "rules": rules }).to_string();
            let (status, answer) = send(gateway.addr, "PUT", Some(authorization), &body).await;
            assert_eq!(status, 400, "{reason}: {answer}");
            assert_eq!(answer["error"]["code"], "invalid_rule", "{answer}");
            assert_eq!(answer["error"]["reason"], reason, "{answer}");
            assert_eq!(answer["error"]["index"], index, "{answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
    // Not a rule set at all: the body's shape is wrong.
    let (status, answer) = send(gateway.addr, "PUT", Some(&api_key), r#"{"rule": []}"#).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("invalid_message"))
    );

    // Valid requests go to the aggregator; with none running they are 503.
    let (status, answer) = send(gateway.addr, "PUT", Some(&api_key), &good).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &json!("unavailable"))
    );
    let (status, answer) = get_json(gateway.addr, "/api/ws/metrics/rules").await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &json!("unavailable"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_live_publisher_instances_as_publishers_active() {
    let store = Store::memory();
    let gateway = TestGateway::start(test_config(), Bus::memory(), store.clone()).await;
    let stats = || async { get_json(gateway.addr, "/api/ws/stats").await.1 };
    assert_eq!(stats().await["publishers_active"], 0);

    // A leader and a standby announce themselves; the standby then goes silent.
    store
        .announce_instance("publisher", "pub-leader", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .announce_instance("publisher", "pub-standby", Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(stats().await["publishers_active"], 2);
    eventually(Duration::from_secs(5), || async {
        stats().await["publishers_active"] == 1
    })
    .await;
    // One that leaves cleanly is not counted either.
    store
        .withdraw_instance("publisher", "pub-leader")
        .await
        .unwrap();
    assert_eq!(stats().await["publishers_active"], 0);
}

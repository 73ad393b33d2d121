//! What the node monitoring shows, on real NATS and Redis with two gateways and the real
//! publisher: a node agent's round-trip time as the gateway measured it with its pings, its
//! message counts, and its detail view (`GET /api/ws/nodes/{node_id}` from the gateway it is
//! *not* connected to, since the publisher answers over the bus); after a clean stop the node
//! is `stopped`, with no `node_offline` alert.

use std::time::Duration;

use client::agent::Agent;
use e2e::{Stack, token, viewer, within};
use gateway::test_util::{TestGateway, get_json};
use protocol::RoomMessage;
use publisher::Publisher;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

fn publisher_config(stack: &Stack) -> publisher::Config {
    let mut config = publisher::Config::default();
    config.bus.nats_url = Some(stack.nats.url());
    config.store.redis_url = Some(stack.redis.url());
    config.store.key_prefix = stack.key_prefix.clone();
    let section = &mut config.publisher;
    section.instance_id = Some("pub-net".to_owned());
    section.nodes_interval = Duration::from_millis(500);
    section.node_timeout = Duration::from_millis(1500);
    section.sweep_interval = Duration::from_millis(100);
    section.lease_ttl = Duration::from_millis(1000);
    section.lease_renew_interval = Duration::from_millis(250);
    config
}

async fn gateway(stack: &Stack) -> TestGateway {
    stack
        .gateway(|config| {
            // A ping every 300 ms, so round trips are measured within the test.
            config.gateway.heartbeat_interval = Duration::from_millis(300);
            config.gateway.heartbeat_timeout = Duration::from_secs(10);
        })
        .await
}

async fn room_message_where(
    client: &mut e2e::TestClient,
    wanted: impl Fn(&RoomMessage) -> bool,
) -> RoomMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.room_message_within(left).await {
            Some(message) if wanted(&message) => return message,
            Some(_) => {}
            None => panic!("no matching room message within {WAIT:?}"),
        }
    }
}

/// `GET path` on `gateway` until `wanted` holds for the 200 body.
async fn detail_where(gateway: &TestGateway, path: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get_json(gateway.addr, path).await;
        if status == 200 && wanted(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "last answer {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_measured_rtt_and_detail_reach_any_gateway_and_a_clean_stop_is_not_an_outage() {
    let stack = Stack::start().await;
    let near = gateway(&stack).await;
    let far = gateway(&stack).await;
    let config = publisher_config(&stack);
    let bus = publisher::connect_bus(&config)
        .await
        .expect("nats reachable");
    let store = publisher::connect_store(&config)
        .await
        .expect("redis reachable");
    let publisher = Publisher::bind(config, bus, store)
        .await
        .expect("publisher binds");
    let stop_publisher = CancellationToken::new();
    let publisher = tokio::spawn(publisher.serve(stop_publisher.clone()));
    let mut dashboard = far.connect(&token(&viewer("dashboard"))).await;
    dashboard.subscribe(&["nodes", "alerts"]).await;

    let node_id = "e2e-net-1";
    let mut claims = viewer("agent-net-1");
    claims.role = auth::Role::Node;
    claims.node_id = Some(node_id.to_owned());
    let agent = Agent::builder(format!("ws://{}/api/ws/connect", near.addr), token(&claims))
        .node_id(node_id)
        .layer("edge")
        .update_interval(Duration::from_millis(300))
        .state_provider(|| json!({"cpu_percent": 7.5, "storage": [{"mount": "/", "used_bytes": 5, "total_bytes": 10, "used_percent": 50.0}]}))
        .start()
        .expect("agent starts");

    // The nodes room shows the RTT the near gateway measured with its own pings.
    let update = room_message_where(&mut dashboard, |m| {
        m.event == "node_status_update" && m.data["nodes"][0]["network"]["rtt_ms"].is_number()
    })
    .await;
    let node = &update.data["nodes"][0];
    assert_eq!(node["node_id"], node_id);
    assert_eq!(node["state"], "online");
    let network = &node["network"];
    let rtt = network["rtt_ms"].as_f64().unwrap();
    assert!(rtt > 0.0 && rtt < 1000.0, "{network}");
    assert_eq!(network["connections"], 1);
    assert!(network["messages_in"].as_u64().unwrap() >= 1, "{network}");
    assert!(network["messages_out"].as_u64().unwrap() >= 1, "{network}");
    assert_eq!(update.data["network"]["connections"], 1);
    assert_eq!(update.data["network"]["avg_rtt_ms"], network["rtt_ms"]);

    // The far gateway, which holds no connection of the node, shows its detail.
    let path = format!("/api/ws/nodes/{node_id}");
    let detail = detail_where(&far, &path, |body| body["network"]["rtt_ms"].is_number()).await;
    assert_eq!(
        (&detail["node_id"], &detail["layer"], &detail["state"]),
        (&json!(node_id), &json!("edge"), &json!("online"))
    );
    assert_eq!(detail["current_data"]["cpu_percent"], 7.5);
    assert_eq!(detail["current_data"]["storage"][0]["mount"], "/");
    assert_eq!(detail["operation_log"][0]["operation"], "connected");
    assert!(detail["update_count"].as_u64().unwrap() >= 1);
    let (status, list) = get_json(far.addr, "/api/ws/nodes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["nodes"][0]["node_id"], node_id);
    let (status, unknown) = get_json(far.addr, "/api/ws/nodes/nobody").await;
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (404, &json!("node_not_found"))
    );

    // A clean stop: stopped, the near gateway's figures for it gone, no offline alert.
    within(WAIT, agent.stop()).await;
    let stopped = detail_where(&near, &path, |body| {
        body["state"] == "stopped" && body.get("network").is_none()
    })
    .await;
    assert_eq!(stopped["online"], false);
    assert_eq!(
        stopped["operation_log"].as_array().unwrap().last().unwrap()["operation"],
        "stop"
    );
    // Past the node timeout it is still stopped, and the nodes room says so.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let later = room_message_where(&mut dashboard, |m| m.event == "node_status_update").await;
    assert_eq!(later.data["nodes"][0]["state"], "stopped", "{}", later.data);
    assert_eq!(
        (&later.data["offline_nodes"], &later.data["stopped_nodes"]),
        (&json!(0), &json!(1))
    );
    while let Some(message) = dashboard
        .room_message_within(Duration::from_millis(300))
        .await
    {
        assert!(
            !(message.event == "alert" && message.data["type"] == "node_offline"),
            "{:?}",
            message.data
        );
    }
    stop_publisher.cancel();
    publisher
        .await
        .expect("serve does not panic")
        .expect("clean drain");
}

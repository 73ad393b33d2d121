//! `POST /api/ws/nodes/{node_id}/commands` across two gateways on real NATS and Redis: the
//! node is connected to one gateway, the operator asks the other.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auth::Role;
use e2e::{Stack, token, viewer};
use gateway::test_util::{TEST_API_KEY, http_request};
use protocol::ServerMessage;
use serde_json::{Value, json};

async fn post_command(addr: SocketAddr, node_id: &str, body: &Value) -> (u16, Value) {
    let authorization = format!("Bearer {TEST_API_KEY}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/api/ws/nodes/{node_id}/commands");
    let (status, body) = http_request(addr, "POST", &path, &headers, &body.to_string())
        .await
        .expect("request succeeds");
    (status, serde_json::from_str(&body).expect("body is JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_command_reaches_a_node_on_another_gateway_over_nats() {
    let stack = Stack::start().await;
    let holding = stack.gateway(|_| {}).await;
    let asked = stack.gateway(|_| {}).await;
    let mut claims = viewer("agent");
    claims.role = Role::Node;
    claims.node_id = Some("node-21".into());
    let mut node = holding.connect(&token(&claims)).await;

    let addr = asked.addr;
    let asking = tokio::spawn(async move {
        post_command(
            addr,
            "node-21",
            &json!({"name": "set_interval", "params": {"seconds": 5}}),
        )
        .await
    });
    let id = match node
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await
    {
        ServerMessage::Command { id, name, params } => {
            assert_eq!(
                (name.as_str(), params),
                ("set_interval", json!({"seconds": 5}))
            );
            id
        }
        _ => unreachable!("filtered to command"),
    };
    node.send_json(json!({"type": "ack", "id": id, "ok": true, "result": {"interval": 5}}))
        .await;
    let (status, answer) = asking.await.expect("request task");
    assert_eq!(
        (status, answer),
        (
            200,
            json!({"id": id, "ok": true, "result": {"interval": 5}})
        )
    );

    // No answer from the node: 504 after timeout_ms, not after the 10 s command_timeout.
    let started = Instant::now();
    let asking = tokio::spawn(async move {
        post_command(
            addr,
            "node-21",
            &json!({"name": "reboot", "timeout_ms": 400}),
        )
        .await
    });
    node.next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await;
    let (status, answer) = asking.await.expect("request task");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (504, Some("command_timeout"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "answered after {:?}",
        started.elapsed()
    );

    // A node nobody holds: NATS has no responder.
    let (status, answer) = post_command(addr, "node-22", &json!({"name": "ping"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("node_not_connected"))
    );
}

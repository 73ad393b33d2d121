//! `POST /api/ws/nodes/{node_id}/commands`: an operator's command reaches a real node
//! connection (on this gateway or another one of the cluster) and the node's `ack` comes back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auth::Role;
use bus::Bus;
use gateway::test_util::{TEST_API_KEY, TestClient, TestGateway, http_request, test_config};
use protocol::ServerMessage;
use serde_json::{Value, json};
use store::Store;

use crate::helpers::{metric, node, token, viewer};

fn api_key() -> String {
    format!("Bearer {TEST_API_KEY}")
}

fn admin_token() -> String {
    let mut claims = viewer("operator");
    claims.role = Role::Admin;
    format!("Bearer {}", token(&claims))
}

/// Posts `body` to the node's commands endpoint; returns the status and the JSON answer.
async fn post_command(
    addr: SocketAddr,
    node_id: &str,
    authorization: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    let path = format!("/api/ws/nodes/{node_id}/commands");
    let (status, body) = http_request(addr, "POST", &path, &headers, body)
        .await
        .expect("request succeeds");
    let answer = serde_json::from_str(&body)
        .unwrap_or_else(|_| panic!("body of {status} is not JSON: {body:?}"));
    (status, answer)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// Waits for the next `command` frame at the agent; returns its id, name and params.
async fn next_command(agent: &mut TestClient) -> (String, String, Value) {
    match agent
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await
    {
        ServerMessage::Command { id, name, params } => (id, name, params),
        _ => unreachable!("filtered to command"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_returns_the_nodes_ack_for_the_api_key_and_an_admin_token() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut agent = gateway.connect(&token(&node("agent-1", "edge-1"))).await;

    for authorization in [api_key(), admin_token()] {
        let addr = gateway.addr;
        let asking = tokio::spawn(async move {
            let body = json!({"name": "set_interval", "params": {"seconds": 5}}).to_string();
            post_command(addr, "edge-1", Some(&authorization), &body).await
        });
        let (id, name, params) = next_command(&mut agent).await;
        assert_eq!(
            (name.as_str(), params),
            ("set_interval", json!({"seconds": 5}))
        );
        agent
            .send_json(json!({"type": "ack", "id": id, "ok": true, "result": {"interval": 5}}))
            .await;
        let (status, answer) = asking.await.expect("request task");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({"id": id, "ok": true, "result": {"interval": 5}})
        );
    }
    assert_eq!(
        metric(
            gateway.addr,
            "switchboard_gateway_node_commands_total{outcome=\"ok\"}"
        )
        .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ack_is_the_answer_even_when_the_node_names_a_gateway_code() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut agent = gateway.connect(&token(&node("agent-2", "edge-2"))).await;
    let addr = gateway.addr;
    let asking = tokio::spawn(async move {
        let body = json!({"name": "flush", "params": {}}).to_string();
        post_command(addr, "edge-2", Some(&api_key()), &body).await
    });
    let (id, _, _) = next_command(&mut agent).await;
    // The node's own failure text, even one spelled like a gateway code, is its ack: 200.
    agent
        .send_json(json!({"type": "ack", "id": id, "ok": false, "error": "command_timeout"}))
        .await;
    let (status, answer) = asking.await.expect("request task");
    assert_eq!(
        (status, answer),
        (
            200,
            json!({"id": id, "ok": false, "error": "command_timeout"})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_to_an_unknown_node_is_404_node_not_connected() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let body = json!({"name": "ping"}).to_string();
    let (status, answer) = post_command(gateway.addr, "nobody-here", Some(&api_key()), &body).await;
    assert_eq!((status, error_code(&answer)), (404, "node_not_connected"));
    assert_eq!(
        metric(
            gateway.addr,
            "switchboard_gateway_node_commands_total{outcome=\"node_not_connected\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_acks_gives_504_within_timeout_ms() {
    // command_timeout stays at its 10 s default: the request's timeout_ms is what ends it.
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut agent = gateway.connect(&token(&node("agent-3", "edge-3"))).await;
    let addr = gateway.addr;
    let started = Instant::now();
    let asking = tokio::spawn(async move {
        let body = json!({"name": "reboot", "timeout_ms": 300}).to_string();
        post_command(addr, "edge-3", Some(&api_key()), &body).await
    });
    let (_, name, _) = next_command(&mut agent).await;
    assert_eq!(name, "reboot");
    let (status, answer) = asking.await.expect("request task");
    let elapsed = started.elapsed();
    assert_eq!((status, error_code(&answer)), (504, "command_timeout"));
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1200),
        "answered after {elapsed:?}, not after timeout_ms"
    );

    // A timeout_ms beyond command_timeout is clamped to it.
    let clamped = TestGateway::start_memory(|config| {
        config.gateway.command_timeout = Duration::from_millis(200);
    })
    .await;
    let mut quiet = clamped.connect(&token(&node("agent-4", "edge-4"))).await;
    let addr = clamped.addr;
    let started = Instant::now();
    let asking = tokio::spawn(async move {
        let body = json!({"name": "reboot", "timeout_ms": 600_000}).to_string();
        post_command(addr, "edge-4", Some(&api_key()), &body).await
    });
    next_command(&mut quiet).await;
    let (status, answer) = asking.await.expect("request task");
    assert_eq!((status, error_code(&answer)), (504, "command_timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "clamped to command_timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_need_the_api_key_or_an_admin_token() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let _agent = gateway.connect(&token(&node("agent-5", "edge-5"))).await;
    let body = json!({"name": "ping"}).to_string();

    let (status, answer) = post_command(gateway.addr, "edge-5", None, &body).await;
    assert_eq!((status, error_code(&answer)), (401, "token_missing"));
    let (status, answer) =
        post_command(gateway.addr, "edge-5", Some("Bearer wrong-key"), &body).await;
    assert_eq!((status, error_code(&answer)), (401, "token_invalid"));
    let viewer_token = format!("Bearer {}", token(&viewer("someone")));
    let (status, answer) = post_command(gateway.addr, "edge-5", Some(&viewer_token), &body).await;
    assert_eq!((status, error_code(&answer)), (403, "forbidden"));
    // A node's own token is no operator's either.
    let node_token = format!("Bearer {}", token(&node("agent-5", "edge-5")));
    let (status, answer) = post_command(gateway.addr, "edge-5", Some(&node_token), &body).await;
    assert_eq!((status, error_code(&answer)), (403, "forbidden"));
    // The scheme is case-insensitive.
    let lower = format!("bearer {TEST_API_KEY}");
    let (status, answer) = post_command(gateway.addr, "nobody", Some(&lower), &body).await;
    assert_eq!((status, error_code(&answer)), (404, "node_not_connected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_command_requests_get_their_codes() {
    let gateway = TestGateway::start_memory(|config| config.gateway.max_message_bytes = 1024).await;
    let key = api_key();
    let cases = [
        ("edge-6", "{", 400, "invalid_message"),
        ("edge-6", r#"{"params": {}}"#, 400, "invalid_message"),
        (
            "edge-6",
            r#"{"name": "ping", "extra": 1}"#,
            400,
            "invalid_message",
        ),
        ("edge-6", r#"{"name": "two words"}"#, 400, "invalid_message"),
        (
            "edge-6",
            r#"{"name": "ping", "timeout_ms": 0}"#,
            400,
            "invalid_message",
        ),
        (
            "edge-6",
            r#"{"name": "ping", "timeout_ms": -5}"#,
            400,
            "invalid_message",
        ),
        ("bad.node", r#"{"name": "ping"}"#, 400, "invalid_message"),
        ("bad%2Anode", r#"{"name": "ping"}"#, 400, "invalid_message"),
    ];
    for (node_id, body, status, code) in cases {
        let (got, answer) = post_command(gateway.addr, node_id, Some(&key), body).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{node_id} {body}"
        );
    }
    let big = json!({"name": "ping", "params": {"blob": "x".repeat(2000)}}).to_string();
    let (status, answer) = post_command(gateway.addr, "edge-6", Some(&key), &big).await;
    assert_eq!((status, error_code(&answer)), (413, "message_too_large"));
    // Credentials come first: an oversized body without them is a 401.
    let (status, answer) = post_command(gateway.addr, "edge-6", None, &big).await;
    assert_eq!((status, error_code(&answer)), (401, "token_missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_a_node_connected_to_another_gateway() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let gateway_a = TestGateway::start(test_config(), bus.clone(), store.clone()).await;
    let gateway_b = TestGateway::start(test_config(), bus, store).await;
    let mut agent = gateway_a.connect(&token(&node("agent-7", "edge-7"))).await;

    let addr_b = gateway_b.addr;
    let asking = tokio::spawn(async move {
        let body = json!({"name": "report_now"}).to_string();
        post_command(addr_b, "edge-7", Some(&admin_token()), &body).await
    });
    let (id, name, _) = next_command(&mut agent).await;
    assert_eq!(name, "report_now");
    agent
        .send_json(json!({"type": "ack", "id": id, "ok": true}))
        .await;
    let (status, answer) = asking.await.expect("request task");
    assert_eq!((status, answer), (200, json!({"id": id, "ok": true})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_beyond_max_node_commands_get_503_unavailable() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.max_node_commands = 1;
        config.gateway.command_timeout = Duration::from_secs(5);
    })
    .await;
    let mut agent = gateway.connect(&token(&node("agent-8", "edge-8"))).await;
    let addr = gateway.addr;
    let first = tokio::spawn(async move {
        let body = json!({"name": "slow"}).to_string();
        post_command(addr, "edge-8", Some(&api_key()), &body).await
    });
    let (first_id, _, _) = next_command(&mut agent).await;

    let started = Instant::now();
    let body = json!({"name": "another"}).to_string();
    let (status, answer) = post_command(addr, "edge-8", Some(&api_key()), &body).await;
    assert_eq!((status, error_code(&answer)), (503, "unavailable"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    assert_eq!(
        metric(
            addr,
            "switchboard_gateway_node_commands_total{outcome=\"busy\"}"
        )
        .await,
        1.0
    );

    agent
        .send_json(json!({"type": "ack", "id": first_id, "ok": true}))
        .await;
    let (status, _) = first.await.expect("request task");
    assert_eq!(status, 200);
}

//! Control messages on an open connection: ping, subscribe, unsubscribe, recovery requests.

use gateway::test_util::{TestGateway, get_json, publish_http};
use protocol::{ErrorCode, ServerMessage};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{RawClient, assert_recent_rfc3339, token, viewer};

async fn local_subscribers(gateway: &TestGateway, room: &str) -> u64 {
    let (status, body) = get_json(gateway.addr, "/api/ws/streams").await;
    assert_eq!(status, 200);
    body["streams"]
        .as_array()
        .expect("streams is a list")
        .iter()
        .find(|stream| stream["room"] == room)
        .map_or(0, |stream| {
            stream["local_subscribers"].as_u64().expect("a count")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_message_and_a_bare_ping_frame_are_both_answered_with_pong() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = gateway.connect(&token(&viewer("pinger"))).await;

    client.send_json(json!({"type": "ping"})).await;
    match client
        .next_control(|m| !matches!(m, ServerMessage::ConnectionEstablished { .. }))
        .await
    {
        ServerMessage::Pong { timestamp } => assert_recent_rfc3339(&timestamp),
        other => panic!("expected pong, got {other:?}"),
    }

    // Seed 003's health check sends the bare text `ping`.
    client.send_raw(Message::Text("ping".into())).await;
    match client.next_control(|_| true).await {
        ServerMessage::Pong { timestamp } => assert_recent_rfc3339(&timestamp),
        other => panic!("expected pong, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_the_same_room_twice_delivers_each_message_once() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = gateway.connect(&token(&viewer("twice"))).await;
    assert_eq!(client.subscribe(&["alerts"]).await, ["alerts"]);
    assert_eq!(
        client.subscribe(&["alerts", "alerts"]).await,
        ["alerts", "alerts"]
    );
    assert_eq!(local_subscribers(&gateway, "alerts").await, 1);

    for n in 0..2 {
        assert_eq!(
            publish_http(gateway.addr, "alerts", "alert", json!({"n": n})).await,
            202
        );
    }
    // A duplicate membership would deliver n=0 twice before n=1.
    assert_eq!(client.next_room_message().await.data, json!({"n": 0}));
    assert_eq!(client.next_room_message().await.data, json!({"n": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_unsubscribe_the_room_delivers_nothing_more() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = gateway.connect(&token(&viewer("leaver"))).await;
    client.subscribe(&["alerts", "tasks"]).await;

    client
        .send_json(json!({"type": "unsubscribe", "rooms": ["alerts"]}))
        .await;
    match client
        .next_control(|m| matches!(m, ServerMessage::Unsubscribed { .. }))
        .await
    {
        ServerMessage::Unsubscribed { rooms, reason } => {
            assert_eq!(rooms, ["alerts"]);
            assert_eq!(reason, None, "the client asked for it");
        }
        _ => unreachable!("filtered to unsubscribed"),
    }
    assert_eq!(local_subscribers(&gateway, "alerts").await, 0);
    assert_eq!(local_subscribers(&gateway, "tasks").await, 1);

    // The alert is published first; if it were still delivered it would arrive first.
    assert_eq!(
        publish_http(
            gateway.addr,
            "alerts",
            "alert",
            json!({"after": "unsubscribe"})
        )
        .await,
        202
    );
    assert_eq!(
        publish_http(
            gateway.addr,
            "tasks",
            "task_progress_update",
            json!({"marker": 1})
        )
        .await,
        202
    );
    let next = client.next_room_message().await;
    assert_eq!(
        (next.room.as_str(), next.data),
        ("tasks", json!({"marker": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_since_answers_recovered_false_and_without_it_omits_recovered() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("recover")), None).await;
    client.next_frame().await; // connection_established

    client
        .send_frame(Message::Text(
            json!({"type": "subscribe", "rooms": ["nodes"], "since": {"nodes": 41}})
                .to_string()
                .into(),
        ))
        .await;
    let answer: Value = serde_json::from_str(
        client
            .next_frame()
            .await
            .to_text()
            .expect("a JSON text frame"),
    )
    .unwrap();
    assert_eq!(
        answer,
        json!({"type": "subscribed", "rooms": ["nodes"], "recovered": false})
    );

    client
        .send_frame(Message::Text(
            json!({"type": "subscribe", "rooms": ["tasks"]})
                .to_string()
                .into(),
        ))
        .await;
    let answer: Value = serde_json::from_str(client.next_frame().await.to_text().unwrap()).unwrap();
    assert_eq!(answer, json!({"type": "subscribed", "rooms": ["tasks"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_beyond_the_per_connection_limit_are_refused_one_by_one() {
    let gateway =
        TestGateway::start_memory(|config| config.gateway.max_rooms_per_connection = 2).await;
    let mut client = gateway.connect(&token(&viewer("greedy"))).await;
    client
        .send_json(json!({"type": "subscribe", "rooms": ["nodes", "tasks", "alerts"]}))
        .await;
    match client.expect_error(ErrorCode::Forbidden).await {
        ServerMessage::Error {
            room, recoverable, ..
        } => {
            assert_eq!(room.as_deref(), Some("alerts"));
            assert!(recoverable);
        }
        _ => unreachable!("filtered to error"),
    }
    match client
        .next_control(|m| matches!(m, ServerMessage::Subscribed { .. }))
        .await
    {
        ServerMessage::Subscribed { rooms, .. } => assert_eq!(rooms, ["nodes", "tasks"]),
        _ => unreachable!("filtered to subscribed"),
    }
    // Re-subscribing to a room already held does not count against the limit.
    assert_eq!(client.subscribe(&["nodes"]).await, ["nodes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_ping_frame_is_answered_with_its_pong_at_once() {
    // Long heartbeats, so nothing else is written that could carry the pong out.
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("frames")), None).await;
    client.next_frame().await; // connection_established
    for payload in [&b"one"[..], &b"two"[..]] {
        client
            .send_frame(Message::Ping(payload.to_vec().into()))
            .await;
        assert_eq!(client.next_pong().await, payload);
    }
}

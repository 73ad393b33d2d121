//! Client publishing: a token with a `publish` claim can send events into a room.

use gateway::test_util::TestGateway;
use protocol::{ClientMessage, Codec, ErrorCode};
use serde_json::json;

use crate::helpers::{RawClient, assert_recent_rfc3339, publisher, token, viewer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_publish_claim_reaches_the_other_clients_in_the_room() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut sender = gateway
        .connect(&token(&publisher("sensor", &["lab.>"])))
        .await;
    let mut json_reader = gateway.connect(&token(&viewer("json-reader"))).await;
    let mut msgpack_reader = RawClient::connect(
        &gateway,
        &token(&viewer("msgpack-reader")),
        Some(Codec::MsgPack),
    )
    .await;
    json_reader.subscribe(&["lab.bench.1"]).await;
    msgpack_reader.subscribe(&["lab.bench.1"]).await;

    sender
        .send_json(json!({
            "type": "publish",
            "room": "lab.bench.1",
            "event": "temperature_reading",
            "data": {"celsius": 21.5},
        }))
        .await;

    let from_json = json_reader.next_room_message().await;
    let from_msgpack = msgpack_reader.next_room_message().await;
    assert_eq!(from_json, from_msgpack);
    assert_eq!(from_json.event, "temperature_reading");
    assert_eq!(from_json.room, "lab.bench.1");
    assert_eq!(from_json.data, json!({"celsius": 21.5}));
    assert_recent_rfc3339(&from_json.timestamp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_publish_with_a_reserved_or_invalid_event_is_refused_and_not_delivered() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut sender = RawClient::connect(
        &gateway,
        &token(&publisher("sensor", &["lab.>"])),
        Some(Codec::MsgPack),
    )
    .await;
    let mut reader = gateway.connect(&token(&viewer("reader"))).await;
    reader.subscribe(&["lab.x"]).await;

    for event in ["pong", "", "has space"] {
        sender
            .send(&ClientMessage::Publish {
                room: "lab.x".into(),
                event: event.into(),
                data: json!(1),
            })
            .await;
        match sender
            .next_control(|m| matches!(m, protocol::ServerMessage::Error { .. }))
            .await
        {
            protocol::ServerMessage::Error { code, room, .. } => {
                assert_eq!(
                    (code, room.as_deref()),
                    (ErrorCode::InvalidMessage, Some("lab.x"))
                );
            }
            _ => unreachable!("filtered to error"),
        }
    }
    // Only the valid marker is delivered.
    sender
        .send(&ClientMessage::Publish {
            room: "lab.x".into(),
            event: "marker".into(),
            data: json!(2),
        })
        .await;
    let message = reader.next_room_message().await;
    assert_eq!((message.event.as_str(), message.data), ("marker", json!(2)));
}

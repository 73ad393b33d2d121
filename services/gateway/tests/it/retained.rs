//! `gateway.retained_rooms`: a new subscriber of a retained room starts with its latest
//! message, once, in either codec; other rooms and repeated subscribes get nothing extra.

use std::time::Duration;

use gateway::test_util::{TestClient, TestGateway, publish_http};
use protocol::{Codec, RoomMessage, ServerFrame, ServerMessage};
use serde_json::{Value, json};

use crate::helpers::{token, viewer};

/// Subscribes to `room` and returns the room messages that arrive up to and including
/// `subscribed`, then those that arrive within `after`.
async fn subscribe_collecting(
    client: &mut TestClient,
    room: &str,
    after: Duration,
) -> Vec<RoomMessage> {
    client
        .send_json(json!({"type": "subscribe", "rooms": [room]}))
        .await;
    let mut messages = Vec::new();
    loop {
        match client.next_frame().await {
            Some(Ok(ServerFrame::Room(message))) => messages.push(message),
            Some(Ok(ServerFrame::Control(ServerMessage::Subscribed { .. }))) => break,
            Some(Ok(_)) => {}
            other => panic!("connection ended before subscribed: {other:?}"),
        }
    }
    while let Some(message) = client.room_message_within(after).await {
        messages.push(message);
    }
    messages
}

fn data_of(messages: &[RoomMessage]) -> Vec<Value> {
    messages.iter().map(|m| m.data.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_of_a_retained_room_starts_with_its_latest_message() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.retained_rooms = vec!["resources".into()];
    })
    .await;
    let url = gateway.ws_url(&token(&viewer("late-reader")));

    // The gateway's retained-room subscription starts with it; publish until a subscriber
    // sees the latest message (bounded), so the test does not race that start.
    let mut seen = Vec::new();
    for attempt in 0..50u32 {
        assert_eq!(
            publish_http(
                gateway.addr,
                "resources",
                "resource_update",
                json!({"n": attempt})
            )
            .await,
            202
        );
        assert_eq!(
            publish_http(
                gateway.addr,
                "resources",
                "resource_update",
                json!({"n": attempt, "latest": true})
            )
            .await,
            202
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut client = TestClient::connect(&url, Codec::Json)
            .await
            .expect("connects");
        client.expect_established().await;
        seen = subscribe_collecting(&mut client, "resources", Duration::from_millis(300)).await;
        if !seen.is_empty() {
            // Only the latest, once, with its event and room, and nothing older.
            assert_eq!(data_of(&seen), [json!({"n": attempt, "latest": true})]);
            assert_eq!(seen[0].event, "resource_update");
            assert_eq!(seen[0].room, "resources");
            break;
        }
    }
    assert!(
        !seen.is_empty(),
        "no subscriber ever got the retained message"
    );

    // MessagePack subscribers get it too, decoded to the same message.
    let mut packed = TestClient::connect(&url, Codec::MsgPack)
        .await
        .expect("connects");
    packed.expect_established().await;
    let packed_seen =
        subscribe_collecting(&mut packed, "resources", Duration::from_millis(300)).await;
    assert_eq!(data_of(&packed_seen), data_of(&seen));

    // Subscribing again to a room it is in sends nothing more; a live message still arrives.
    let again = subscribe_collecting(&mut packed, "resources", Duration::from_millis(300)).await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        publish_http(
            gateway.addr,
            "resources",
            "resource_update",
            json!({"live": 1})
        )
        .await,
        202
    );
    let live = packed.next_room_message().await;
    assert_eq!(live.data, json!({"live": 1}));

    // A room that is not retained starts empty for a late subscriber.
    assert_eq!(
        publish_http(gateway.addr, "alerts", "alert", json!({"severity": "info"})).await,
        202
    );
    let mut alerts = TestClient::connect(&url, Codec::Json)
        .await
        .expect("connects");
    alerts.expect_established().await;
    let alert_seen = subscribe_collecting(&mut alerts, "alerts", Duration::from_millis(300)).await;
    assert!(
        alert_seen.is_empty(),
        "alerts are events, never retained: {alert_seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_retained_rooms_a_late_subscriber_waits_for_the_next_message() {
    let gateway = TestGateway::start_memory(|config| config.gateway.retained_rooms.clear()).await;
    let url = gateway.ws_url(&token(&viewer("late-reader")));
    assert_eq!(
        publish_http(gateway.addr, "nodes", "node_status_update", json!({"n": 1})).await,
        202
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = TestClient::connect(&url, Codec::Json)
        .await
        .expect("connects");
    client.expect_established().await;
    let seen = subscribe_collecting(&mut client, "nodes", Duration::from_millis(300)).await;
    assert!(seen.is_empty(), "{seen:?}");
}

//! Fan-out on the memory engine: many clients, both codecs, every message in order.

use bus::Bus;
use bytes::Bytes;
use futures_util::future::join_all;
use gateway::test_util::{TestClient, TestGateway, test_config, within};
use protocol::envelope::encode_bus;
use protocol::{Codec, RoomEnvelope};
use serde_json::json;
use std::time::Duration;
use store::Store;

use crate::helpers::{metric, token, viewer};

const CLIENTS: usize = 200;
const MESSAGES: u64 = 50;
const ROOM: &str = "fanout.load";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_in_one_room_each_receive_fifty_messages_in_order() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;

    // Half JSON, half MessagePack: each message is encoded once per codec and shared.
    let clients = join_all((0..CLIENTS).map(|n| {
        let url = gateway.ws_url(&token(&viewer(&format!("user-{n}"))));
        async move {
            let codec = if n % 2 == 0 {
                Codec::Json
            } else {
                Codec::MsgPack
            };
            let mut client = TestClient::connect(&url, codec)
                .await
                .expect("client connects");
            client.expect_established().await;
            client.subscribe(&[ROOM]).await;
            client
        }
    }))
    .await;

    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut client)| {
            tokio::spawn(async move {
                for expected in 0..MESSAGES {
                    let message = client.next_room_message().await;
                    assert_eq!(
                        (message.room.as_str(), message.data),
                        (ROOM, json!({"seq": expected})),
                        "client {n} lost or reordered a message"
                    );
                }
                client
            })
        })
        .collect();

    for seq in 0..MESSAGES {
        let envelope = RoomEnvelope {
            event: "load_test".into(),
            data: json!({"seq": seq}),
            timestamp: None,
            seq: None,
            priority: None,
        };
        bus.publish(
            &format!("sb.room.{ROOM}"),
            Bytes::from(encode_bus(&envelope).unwrap()),
        )
        .await
        .expect("publish on the memory bus");
    }

    within(Duration::from_secs(30), async {
        for reader in readers {
            reader.await.expect("reader saw every message in order");
        }
    })
    .await;
    let sent = metric(
        gateway.addr,
        r#"switchboard_gateway_messages_sent_total{kind="room"}"#,
    )
    .await;
    assert_eq!(sent, (CLIENTS as u64 * MESSAGES) as f64);
    assert_eq!(
        metric(gateway.addr, "switchboard_gateway_messages_dropped_total").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_bus_subscription_ends_is_subscribed_again() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut client = gateway.connect(&token(&viewer("survivor"))).await;
    client.subscribe(&["alerts"]).await;
    assert_eq!(bus.end_subscriptions("sb.room.alerts"), 1);

    // Published until the gateway has subscribed again (what goes out in the gap is lost,
    // as for any core NATS subscriber); then the member receives again, still connected.
    let envelope = RoomEnvelope {
        event: "alert".into(),
        data: json!({"message": "still here"}),
        timestamp: None,
        seq: None,
        priority: None,
    };
    let payload = Bytes::from(encode_bus(&envelope).unwrap());
    let publishing_bus = bus.clone();
    let publisher = tokio::spawn(async move {
        loop {
            publishing_bus
                .publish("sb.room.alerts", payload.clone())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let message = within(Duration::from_secs(5), client.next_room_message()).await;
    publisher.abort();
    assert_eq!(
        (message.room.as_str(), message.data),
        ("alerts", json!({"message": "still here"}))
    );
    assert_eq!(
        metric(gateway.addr, "switchboard_gateway_rooms_active").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_subscription_keeps_ending_is_given_up_and_its_members_closed_unavailable() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut client = gateway.connect(&token(&viewer("stranded"))).await;
    client.subscribe(&["alerts"]).await;
    // Every new subscription ends again before a message arrives: after five attempts the
    // gateway gives the room up rather than keep a room that delivers nothing.
    for _ in 0..6 {
        gateway::test_util::eventually(Duration::from_secs(5), || {
            let ended = bus.end_subscriptions("sb.room.alerts") == 1;
            async move { ended }
        })
        .await;
    }
    client.expect_error(protocol::ErrorCode::Unavailable).await;
    assert_eq!(
        client.expect_close().await,
        Some(protocol::close_code::TRY_AGAIN_LATER)
    );
    gateway::test_util::eventually(Duration::from_secs(5), || async {
        metric(gateway.addr, "switchboard_gateway_rooms_active").await == 0.0
    })
    .await;
    // The room starts afresh for the next subscriber.
    let mut next = gateway.connect(&token(&viewer("next"))).await;
    next.subscribe(&["alerts"]).await;
    let envelope = RoomEnvelope {
        event: "alert".into(),
        data: json!({"message": "back"}),
        timestamp: None,
        seq: None,
        priority: None,
    };
    bus.publish(
        "sb.room.alerts",
        Bytes::from(encode_bus(&envelope).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        next.next_room_message().await.data,
        json!({"message": "back"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_dispatch_task_panics_closes_its_members_unavailable() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut client = gateway.connect(&token(&viewer("unlucky"))).await;
    client.subscribe(&["alerts"]).await;
    let envelope = RoomEnvelope {
        event: gateway::test_util::PANIC_EVENT.into(),
        data: json!({}),
        timestamp: None,
        seq: None,
        priority: None,
    };
    bus.publish(
        "sb.room.alerts",
        Bytes::from(encode_bus(&envelope).unwrap()),
    )
    .await
    .unwrap();
    client.expect_error(protocol::ErrorCode::Unavailable).await;
    assert_eq!(
        client.expect_close().await,
        Some(protocol::close_code::TRY_AGAIN_LATER)
    );
    gateway::test_util::eventually(Duration::from_secs(5), || async {
        metric(gateway.addr, "switchboard_gateway_rooms_active").await == 0.0
    })
    .await;
}

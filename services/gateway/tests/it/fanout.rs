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

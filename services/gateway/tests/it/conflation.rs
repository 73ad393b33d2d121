//! `subscribe` with `min_interval_ms`: the newest message per interval for that connection,
//! every message for the others.

use std::time::Duration;

use bus::Bus;
use gateway::test_util::{TestGateway, test_config};
use protocol::{ClientMessage, ServerFrame, ServerMessage};
use store::Store;

use crate::devices::{Feed, wait_for_subscribers};
use crate::helpers::{RawClient, data_bytes, token, viewer};

const ROOM: &str = "devices.opm-1.m4";

async fn subscribe(client: &mut RawClient, min_interval_ms: Option<u64>) -> ServerMessage {
    client
        .send(&ClientMessage::Subscribe {
            rooms: vec![ROOM.to_owned()],
            since: None,
            min_interval_ms,
        })
        .await;
    client
        .next_control(|m| {
            matches!(
                m,
                ServerMessage::Subscribed { .. } | ServerMessage::Error { .. }
            )
        })
        .await
}

/// The `ch1_power` (the feed's seq) of every room message received during `window`.
async fn seqs_during(client: &mut RawClient, window: Duration) -> Vec<f64> {
    let (frames, _) = client.read_for(window).await;
    frames
        .iter()
        .filter_map(|frame| {
            match ServerFrame::decode(client.codec, &data_bytes(frame, client.codec)) {
                Ok(ServerFrame::Room(message)) => message.data["ch1_power"].as_f64(),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test]
async fn a_minimum_interval_conflates_for_that_connection_only() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut every = RawClient::connect(&gateway, &token(&viewer("every")), None).await;
    let mut conflated = RawClient::connect(&gateway, &token(&viewer("conflated")), None).await;
    assert!(matches!(
        subscribe(&mut every, None).await,
        ServerMessage::Subscribed { .. }
    ));
    assert!(matches!(
        subscribe(&mut conflated, Some(250)).await,
        ServerMessage::Subscribed { .. }
    ));
    wait_for_subscribers(&gateway, ROOM, 2).await;
    let feed = Feed::start(&bus, "opm-1", 4, Duration::from_millis(20));
    let window = Duration::from_secs(2);
    let (all, newest) = tokio::join!(
        seqs_during(&mut every, window),
        seqs_during(&mut conflated, window)
    );
    drop(feed);
    // 50/s for 2 s: the plain subscriber gets each one; 4/s for the conflated one.
    assert!(
        all.len() >= 80,
        "plain subscriber got {} of ~100",
        all.len()
    );
    assert!(
        all.windows(2).all(|pair| pair[1] == pair[0] + 1.0),
        "plain delivery skips nothing"
    );
    assert!(
        (5..=10).contains(&newest.len()),
        "250 ms interval got {} in 2 s",
        newest.len()
    );
    assert!(
        newest.windows(2).all(|pair| pair[1] - pair[0] >= 5.0),
        "conflated values are spread out (newest each time): {newest:?}"
    );
}

#[tokio::test]
async fn subscribing_again_without_an_interval_restores_every_message() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("switch")), None).await;
    subscribe(&mut client, Some(500)).await;
    wait_for_subscribers(&gateway, ROOM, 1).await;
    let feed = Feed::start(&bus, "opm-1", 4, Duration::from_millis(20));
    let slow = seqs_during(&mut client, Duration::from_secs(1)).await;
    assert!(
        (1..=3).contains(&slow.len()),
        "500 ms interval got {}",
        slow.len()
    );
    subscribe(&mut client, None).await;
    let fast = seqs_during(&mut client, Duration::from_secs(1)).await;
    drop(feed);
    assert!(fast.len() >= 35, "every message again, got {}", fast.len());
    assert_eq!(
        gateway::test_util::get_json(gateway.addr, "/api/ws/streams")
            .await
            .1["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .find(|stream| stream["room"] == ROOM)
            .expect("room listed")["local_subscribers"],
        1,
        "one member, whatever its rate"
    );
}

#[tokio::test]
async fn an_interval_out_of_bounds_is_refused_with_invalid_message() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("bounds")), None).await;
    for asked in [10, 3_600_000] {
        match subscribe(&mut client, Some(asked)).await {
            ServerMessage::Error { code, message, .. } => {
                assert_eq!(code, protocol::ErrorCode::InvalidMessage);
                assert!(message.contains("min_interval_ms"), "{message}");
            }
            other => panic!("{asked} ms accepted: {other:?}"),
        }
    }
    // 0 means every message, as without the field.
    assert!(matches!(
        subscribe(&mut client, Some(0)).await,
        ServerMessage::Subscribed { .. }
    ));
}

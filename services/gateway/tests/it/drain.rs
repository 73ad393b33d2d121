//! Graceful shutdown on the memory engine: `reconnect` with a jittered delay, close 1001,
//! refusal of new connections, deregistration, and a drain that a dead peer cannot stall.

use std::time::Duration;

use bus::Bus;
use gateway::test_util::{FRAME_TIMEOUT, TestClient, TestGateway, test_config, within};
use protocol::{Codec, ServerMessage};
use store::Store;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::helpers::{RawClient, SilentClient, token, viewer};

fn retry_after(message: ServerMessage) -> f64 {
    match message {
        ServerMessage::Reconnect {
            reason,
            retry_after,
        } => {
            assert!(!reason.is_empty());
            retry_after
        }
        other => panic!("expected reconnect, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_every_client_to_reconnect_within_the_jitter_window_then_closes_with_1001() {
    let mut config = test_config();
    config.gateway.reconnect_delay_min = Duration::from_secs(1);
    config.gateway.reconnect_delay_max = Duration::from_secs(2);
    let store = Store::memory();
    let gateway = TestGateway::start(config, Bus::memory(), store.clone()).await;
    let url = gateway.ws_url(&token(&viewer("late")));
    let mut json_client = gateway.connect(&token(&viewer("a"))).await;
    json_client.subscribe(&["nodes"]).await;
    let mut msgpack_client =
        RawClient::connect(&gateway, &token(&viewer("b")), Some(Codec::MsgPack)).await;
    msgpack_client.subscribe(&["nodes"]).await;
    assert_eq!(store.live_gateways().await.unwrap().len(), 1);

    let shutdown = tokio::spawn(gateway.shutdown());

    let first = retry_after(
        json_client
            .next_control(|m| matches!(m, ServerMessage::Reconnect { .. }))
            .await,
    );
    let second = retry_after(
        msgpack_client
            .next_control(|m| matches!(m, ServerMessage::Reconnect { .. }))
            .await,
    );
    for retry_after in [first, second] {
        assert!(
            (1.0..=2.0).contains(&retry_after),
            "retry_after {retry_after} outside [1, 2]"
        );
    }

    // Draining has begun: a new connection is refused (503, or the listener is gone).
    match TestClient::connect(&url, Codec::Json).await {
        Ok(_) => panic!("a connection was accepted during the drain"),
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        Err(_refused) => {}
    }

    assert_eq!(json_client.expect_close().await, Some(1001));
    match msgpack_client.next_frame().await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason.as_str(), "shutting_down");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }

    within(FRAME_TIMEOUT, shutdown)
        .await
        .expect("shutdown task did not panic")
        .expect("the drain is clean");
    // The gateway deregistered itself at once rather than waiting for its TTL.
    assert!(store.live_gateways().await.unwrap().is_empty());
    let stats = store.cluster_stats().await.unwrap();
    assert_eq!((stats.active_connections, stats.rooms.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_clients_drains_at_once() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    within(Duration::from_secs(1), gateway.shutdown())
        .await
        .expect("the drain is clean");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_ignores_the_close_does_not_hold_the_drain_to_its_timeout() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.drain_timeout = Duration::from_secs(30);
    })
    .await;
    let silent = SilentClient::connect(gateway.addr, &token(&viewer("dead-peer"))).await;
    // The farewell waits at most a second for the peer's close; far less than drain_timeout.
    within(Duration::from_secs(5), gateway.shutdown())
        .await
        .expect("the drain is clean");
    let frames = silent.frames().await;
    assert_eq!(
        frames.last().and_then(|frame| frame.close_code()),
        Some(1001)
    );
}

//! Everyday behaviour: both codecs, the offline queue's overflow policy, a clean close.

use std::time::Duration;

use bus::Bus;
use client::{Client, ClientEvent, Codec, ConnectionState, DisconnectReason};
use serde_json::json;
use store::Store;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

#[tokio::test]
async fn a_msgpack_client_subscribes_publishes_and_receives() {
    let gateway = gateway_on(
        &Bus::memory(),
        &Store::memory(),
        None,
        Duration::from_millis(50),
    )
    .await;
    let client = Client::builder(ws_url(gateway.addr))
        .token(viewer_token("erin"))
        .codec(Codec::MsgPack)
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["news"]).await.unwrap();
    subscribed_to(&mut events, "news").await;
    client
        .publish("news", "story", json!({"codec": "msgpack"}))
        .await
        .unwrap();
    assert_eq!(
        next_room_event(&mut events, "story").await,
        json!({"codec": "msgpack"})
    );
    // A room the token may not publish to gets an error event, and the connection stays up.
    client.publish("alerts", "story", json!(1)).await.unwrap();
    let error = next_matching(&mut events, |e| matches!(e, ClientEvent::Error { .. })).await;
    assert!(matches!(
        error,
        ClientEvent::Error {
            code: client::ErrorCode::Forbidden,
            recoverable: true,
            ..
        }
    ));
    client.unsubscribe(["news"]).await.unwrap();
    next_matching(&mut events, |e| {
        matches!(e, ClientEvent::Unsubscribed { .. })
    })
    .await;
    assert!(client.state().is_connected());
    client.close().await;
}

#[tokio::test]
async fn a_full_offline_queue_drops_the_oldest_and_flushes_the_rest_in_order() {
    let gateway = gateway_on(
        &Bus::memory(),
        &Store::memory(),
        None,
        Duration::from_millis(50),
    )
    .await;
    let mut proxy = TcpProxy::start(gateway.addr).await;
    proxy.cut();
    let client = Client::builder(ws_url(proxy.addr))
        .token(viewer_token("frank"))
        .reconnect(fast_policy())
        .offline_queue(2)
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["news"]).await.unwrap();
    state_reaches(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    for n in 1..=3 {
        client
            .publish("news", "story", json!({"n": n}))
            .await
            .unwrap();
    }
    eventually(WAIT, || async {
        let stats = client.stats();
        stats.offline_queued == 2 && stats.offline_dropped == 1
    })
    .await;

    proxy.restore().await;
    subscribed_to(&mut events, "news").await;
    assert_eq!(next_room_event(&mut events, "story").await, json!({"n": 2}));
    assert_eq!(next_room_event(&mut events, "story").await, json!({"n": 3}));
    assert_eq!(client.stats().offline_queued, 0);
    client.close().await;
}

#[tokio::test]
async fn close_sends_a_normal_close_frame_and_ends_disconnected() {
    let mut server = FakeServer::start(true).await;
    let client = Client::builder(ws_url(server.addr)).build().unwrap();
    let mut events = client.connect().unwrap();
    state_reaches(&client, ConnectionState::is_connected).await;
    within(WAIT, client.close()).await;
    let frame = within(WAIT, server.frames_rx.recv()).await.unwrap();
    assert!(
        matches!(&frame, Message::Close(Some(close)) if close.code == CloseCode::Normal),
        "{frame:?}"
    );
    assert_eq!(
        client.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::Closed
        }
    );
    // The stream ends after the final state.
    while within(WAIT, events.recv()).await.is_some() {}
    assert!(client.subscribe(["x"]).await.is_err());
}

#[tokio::test]
async fn a_limited_policy_gives_up_after_its_attempts() {
    // Nothing listens on a port that was just released.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = Client::builder(ws_url(addr))
        .reconnect(fast_policy().max_attempts(3))
        .build()
        .unwrap();
    let _events = client.connect().unwrap();
    let reason = within(WAIT, client.wait_connected()).await.unwrap_err();
    assert_eq!(reason, DisconnectReason::GaveUp { attempts: 3 });
    // The first connection plus three reconnection attempts.
    assert_eq!(client.stats().attempts, 4);
}

#[tokio::test]
async fn connect_is_refused_a_second_time_and_close_before_connect_is_final() {
    let client = Client::builder("ws://127.0.0.1:9/api/ws/connect")
        .build()
        .unwrap();
    client.close().await;
    assert_eq!(
        client.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::Closed
        }
    );
    assert_eq!(
        client.connect().unwrap_err(),
        client::ConnectError::AlreadyStarted
    );
}

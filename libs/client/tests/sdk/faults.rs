//! The client against faults: gateway restart, cut TCP, a silent server, a refused token,
//! a draining gateway.

use std::time::{Duration, Instant};

use bus::Bus;
use client::{
    Client, ClientEvent, ConnectionState, DisconnectReason, ErrorCode, LostReason, ReconnectPolicy,
};
use serde_json::json;
use store::Store;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn client_resubscribes_and_receives_again_after_the_gateway_restarts() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let first = gateway_on(&bus, &store, None, Duration::from_millis(50)).await;
    let addr = first.addr;
    let client = Client::builder(ws_url(addr))
        .token(viewer_token("alice"))
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["news"]).await.unwrap();
    subscribed_to(&mut events, "news").await;
    assert_eq!(
        publish_http(addr, "news", "story", json!({"n": 1})).await,
        202
    );
    assert_eq!(next_room_event(&mut events, "story").await, json!({"n": 1}));

    first.shutdown().await.unwrap();
    state_reaches(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    let second = gateway_on(&bus, &store, Some(addr), Duration::from_millis(50)).await;

    let connected = state_reaches(&client, ConnectionState::is_connected).await;
    assert!(
        matches!(&connected, ConnectionState::Connected { server_id, .. } if *server_id == second.server_id)
    );
    subscribed_to(&mut events, "news").await;
    assert_eq!(
        publish_http(addr, "news", "story", json!({"n": 2})).await,
        202
    );
    assert_eq!(next_room_event(&mut events, "story").await, json!({"n": 2}));
    assert_eq!(client.stats().connects, 2);
    client.close().await;
}

#[tokio::test]
async fn client_reconnects_after_its_tcp_connection_is_cut_and_flushes_what_it_sent_meanwhile() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let gateway = gateway_on(&bus, &store, None, Duration::from_millis(50)).await;
    let mut proxy = TcpProxy::start(gateway.addr).await;
    let client = Client::builder(ws_url(proxy.addr))
        .token(viewer_token("bob"))
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["news"]).await.unwrap();
    subscribed_to(&mut events, "news").await;

    proxy.cut();
    next_matching(&mut events, |e| {
        matches!(e, ClientEvent::ConnectionLost(LostReason::Transport(_)))
    })
    .await;
    state_reaches(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    // Sent while disconnected: waits in the offline queue.
    client
        .publish("news", "story", json!({"sent": "offline"}))
        .await
        .unwrap();
    eventually(WAIT, || async { client.stats().offline_queued == 1 }).await;

    proxy.restore().await;
    state_reaches(&client, ConnectionState::is_connected).await;
    // Resubscription comes before the flush, so the client hears its own offline message.
    subscribed_to(&mut events, "news").await;
    assert_eq!(
        next_room_event(&mut events, "story").await,
        json!({"sent": "offline"})
    );
    assert_eq!(
        publish_http(gateway.addr, "news", "story", json!({"n": 3})).await,
        202
    );
    assert_eq!(next_room_event(&mut events, "story").await, json!({"n": 3}));
    assert_eq!(client.stats().offline_queued, 0);
    client.close().await;
}

#[tokio::test]
async fn a_server_that_goes_silent_trips_the_watchdog_and_the_client_reconnects() {
    let mut server = FakeServer::start(true).await;
    let client = Client::builder(ws_url(server.addr))
        .heartbeat_timeout(Duration::from_millis(400))
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    state_reaches(&client, ConnectionState::is_connected).await;

    // Half-way to the deadline the client asks for a sign of life (seed 003).
    let ping = within(WAIT, server.frames_rx.recv()).await.unwrap();
    assert!(matches!(&ping, Message::Text(text) if text.as_str() == r#"{"type":"ping"}"#));

    next_matching(&mut events, |e| {
        matches!(e, ClientEvent::ConnectionLost(LostReason::HeartbeatTimeout))
    })
    .await;
    next_matching(&mut events, |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { attempt: 1 })
        )
    })
    .await;
    eventually(WAIT, || async { server.accepted() >= 2 }).await;
    state_reaches(&client, ConnectionState::is_connected).await;
    assert!(client.stats().watchdog_timeouts >= 1);
    client.close().await;
}

#[tokio::test]
async fn a_server_that_upgrades_but_never_speaks_is_declared_dead_too() {
    let server = FakeServer::start(false).await;
    let client = Client::builder(ws_url(server.addr))
        .heartbeat_timeout(Duration::from_millis(300))
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    next_matching(&mut events, |e| {
        matches!(e, ClientEvent::ConnectionLost(LostReason::HeartbeatTimeout))
    })
    .await;
    eventually(WAIT, || async { server.accepted() >= 2 }).await;
    assert!(matches!(
        client.state(),
        ConnectionState::Reconnecting { .. }
    ));
    assert_eq!(client.stats().connects, 0);
    client.close().await;
    assert_eq!(
        client.state(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::Closed
        }
    );
}

#[tokio::test]
async fn a_refused_token_ends_in_disconnected_without_retrying() {
    let gateway = gateway_on(
        &Bus::memory(),
        &Store::memory(),
        None,
        Duration::from_millis(50),
    )
    .await;
    let expired =
        auth::test_keys::hs256_token(&auth::test_keys::expired(viewer_claims("carol"), 60));
    let cases = [
        (Some(expired), 4402, ErrorCode::TokenExpired),
        (Some("not-a-jwt".to_owned()), 4401, ErrorCode::TokenInvalid),
        (None, 4401, ErrorCode::TokenMissing),
    ];
    for (token, close_code, error) in cases {
        let mut builder = Client::builder(ws_url(gateway.addr)).reconnect(fast_policy());
        if let Some(token) = token {
            builder = builder.token(token);
        }
        let client = builder.build().unwrap();
        let mut events = client.connect().unwrap();
        let reason = within(WAIT, client.wait_connected()).await.unwrap_err();
        assert!(
            matches!(&reason, DisconnectReason::Refused { code, error: Some(got), .. }
                if *code == close_code && *got == error),
            "{reason:?}"
        );
        // The driver has ended: the stream closes after the final state, and no second
        // attempt was made.
        let mut last = None;
        while let Some(event) = within(WAIT, events.recv()).await {
            assert!(!matches!(
                event,
                ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
            ));
            last = Some(event);
        }
        assert!(matches!(
            last,
            Some(ClientEvent::StateChanged(
                ConnectionState::Disconnected { .. }
            ))
        ));
        assert_eq!(client.stats().attempts, 1);
        assert!(client.publish("news", "x", json!(null)).await.is_err());
    }
}

#[tokio::test]
async fn a_draining_gateways_retry_after_replaces_the_backoff() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let retry_after = Duration::from_millis(600);
    let first = gateway_on(&bus, &store, None, retry_after).await;
    let addr = first.addr;
    // A backoff window of 30 s: reconnecting within about retry_after shows it was honoured.
    let client = Client::builder(ws_url(addr))
        .token(viewer_token("dave"))
        .reconnect(ReconnectPolicy::exponential(
            Duration::from_secs(30),
            Duration::from_secs(30),
        ))
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    state_reaches(&client, ConnectionState::is_connected).await;

    let drained = tokio::spawn(first.shutdown());
    let asked = next_matching(&mut events, |e| {
        matches!(e, ClientEvent::ReconnectRequested { .. })
    })
    .await;
    let asked_at = Instant::now();
    assert!(
        matches!(asked, ClientEvent::ReconnectRequested { retry_after: got, .. } if got == retry_after)
    );
    drained.await.unwrap().unwrap();
    let _second = gateway_on(&bus, &store, Some(addr), retry_after).await;

    next_matching(&mut events, |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Connected { .. })
        )
    })
    .await;
    let waited = asked_at.elapsed();
    assert!(
        waited >= retry_after - Duration::from_millis(50) && waited < Duration::from_secs(4),
        "reconnected after {waited:?}"
    );
    assert_eq!(client.stats().attempts, 2);
    client.close().await;
}

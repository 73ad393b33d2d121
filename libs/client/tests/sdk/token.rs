//! Token providers against a real in-process gateway: in-band renewal keeps one connection
//! alive across short-lived tokens, the provider is asked again on every reconnect, and rooms
//! a narrower token takes away are not joined again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::Claims;
use bus::Bus;
use bytes::Bytes;
use client::{Client, ClientEvent, ErrorCode};
use protocol::RoomEnvelope;
use protocol::envelope::encode_bus;
use serde_json::json;
use store::Store;

use crate::helpers::*;

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Claims of `sub` expiring `lifetime_secs` whole seconds from now.
fn short_lived(sub: &str, lifetime_secs: u64) -> Claims {
    let mut claims = viewer_claims(sub);
    claims.exp = unix_now_secs() + lifetime_secs;
    claims
}

async fn publish(bus: &Bus, room: &str, n: u64) {
    let envelope = RoomEnvelope {
        event: "tick".into(),
        data: json!({ "n": n }),
        timestamp: None,
        seq: None,
        priority: None,
    };
    bus.publish(
        &format!("sb.room.{room}"),
        Bytes::from(encode_bus(&envelope).expect("envelope encodes")),
    )
    .await
    .expect("publish on the memory bus");
}

async fn next_refreshed(events: &mut client::Events) -> u64 {
    match next_matching(events, |e| matches!(e, ClientEvent::TokenRefreshed { .. })).await {
        ClientEvent::TokenRefreshed { exp } => exp,
        _ => unreachable!("filtered to refreshed"),
    }
}

#[tokio::test]
async fn a_provider_renews_short_tokens_in_band_and_the_connection_outlives_them() {
    const ROOM: &str = "sdk.rotation";
    // 3 s tokens: the client refreshes at 80 % of what is left, so about every 2 s.
    const LIFETIME_SECS: u64 = 3;
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, &Store::memory(), None, Duration::from_millis(50)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let first_exp = Arc::new(AtomicU64::new(0));
    let client = Client::builder(ws_url(gateway.addr))
        .token_provider({
            let calls = calls.clone();
            let first_exp = first_exp.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                let claims = short_lived("rotating-sdk-user", LIFETIME_SECS);
                let _ =
                    first_exp.compare_exchange(0, claims.exp, Ordering::SeqCst, Ordering::SeqCst);
                async move { Ok(auth::test_keys::hs256_token(&claims)) }
            }
        })
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe([ROOM]).await.unwrap();
    subscribed_to(&mut events, ROOM).await;

    let mut last_exp = first_exp.load(Ordering::SeqCst);
    for rotation in 1..=3 {
        let exp = next_refreshed(&mut events).await;
        assert!(exp >= last_exp, "rotation {rotation}: exp went back");
        last_exp = exp;
        publish(&bus, ROOM, rotation).await;
        assert_eq!(
            next_room_event(&mut events, "tick").await,
            json!({ "n": rotation })
        );
    }
    // Past the first token's expiry, still on the first connection.
    let first = first_exp.load(Ordering::SeqCst);
    eventually(WAIT, || async { unix_now_secs() > first }).await;
    publish(&bus, ROOM, 4).await;
    assert_eq!(
        next_room_event(&mut events, "tick").await,
        json!({ "n": 4 })
    );
    assert!(client.state().is_connected());
    let stats = client.stats();
    assert_eq!(
        (stats.attempts, stats.connects),
        (1, 1),
        "never reconnected"
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 4,
        "one connect and three refreshes"
    );
    client.close().await;
}

#[tokio::test]
async fn the_provider_is_asked_again_on_every_reconnect() {
    let bus = Bus::memory();
    let store = Store::memory();
    let gateway = gateway_on(&bus, &store, None, Duration::from_millis(50)).await;
    let mut proxy = TcpProxy::start(gateway.addr).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(ws_url(proxy.addr))
        .reconnect(fast_policy())
        .token_provider({
            let calls = calls.clone();
            move || {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    // The second call fails: the client retries with backoff, like a refused TCP connect.
                    if call == 1 {
                        return Err("identity provider unavailable".into());
                    }
                    Ok(viewer_token("reconnecting-sdk-user"))
                }
            }
        })
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    state_reaches(&client, |state| state.is_connected()).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    proxy.cut();
    next_matching(&mut events, |e| matches!(e, ClientEvent::ConnectionLost(_))).await;
    proxy.restore().await;
    eventually(WAIT, || async { client.stats().connects == 2 }).await;
    // One call for the first connection, a failed one, and one for the reconnect.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    client.close().await;
}

#[tokio::test]
async fn rooms_a_refreshed_token_no_longer_allows_are_dropped_for_good() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, &Store::memory(), None, Duration::from_millis(50)).await;
    let mut proxy = TcpProxy::start(gateway.addr).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(ws_url(proxy.addr))
        .reconnect(fast_policy())
        .token_provider({
            let calls = calls.clone();
            move || {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                // The first token allows `team.*` and `audit`, for 2 s; later ones only `team.*`.
                let mut claims = short_lived("narrowed-sdk-user", if call == 0 { 2 } else { 60 });
                claims.rooms = if call == 0 {
                    vec!["team.*".into(), "audit".into()]
                } else {
                    vec!["team.*".into()]
                };
                async move { Ok(auth::test_keys::hs256_token(&claims)) }
            }
        })
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["team.a", "audit"]).await.unwrap();
    subscribed_to(&mut events, "audit").await;
    match next_matching(&mut events, |e| {
        matches!(
            e,
            ClientEvent::Unsubscribed {
                reason: Some(_),
                ..
            }
        )
    })
    .await
    {
        ClientEvent::Unsubscribed { rooms, reason } => {
            assert_eq!(rooms, ["audit"]);
            assert_eq!(reason, Some(ErrorCode::Forbidden));
        }
        _ => unreachable!("filtered to unsubscribed"),
    }
    next_refreshed(&mut events).await;
    publish(&bus, "team.a", 7).await;
    assert_eq!(
        next_room_event(&mut events, "tick").await,
        json!({ "n": 7 })
    );

    // After a reconnect only the room still allowed is joined again (no `forbidden` for audit).
    proxy.cut();
    next_matching(&mut events, |e| matches!(e, ClientEvent::ConnectionLost(_))).await;
    proxy.restore().await;
    match next_matching(&mut events, |e| {
        matches!(
            e,
            ClientEvent::Subscribed { .. } | ClientEvent::Error { .. }
        )
    })
    .await
    {
        ClientEvent::Subscribed { rooms, .. } => assert_eq!(rooms, ["team.a"]),
        other => panic!("resubscribing failed: {other:?}"),
    }
    client.close().await;
}

#[tokio::test]
async fn with_a_provider_an_expired_connection_reconnects_instead_of_stopping() {
    let gateway = gateway_on(
        &Bus::memory(),
        &Store::memory(),
        None,
        Duration::from_millis(50),
    )
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(ws_url(gateway.addr))
        .reconnect(fast_policy())
        .token_provider({
            let calls = calls.clone();
            move || {
                // Every token names another subject, so each in-band refresh is refused
                // (token_subject_mismatch) and the connection runs out at its token's exp.
                let call = calls.fetch_add(1, Ordering::SeqCst);
                let claims = short_lived(&format!("user-{call}"), 2);
                async move { Ok(auth::test_keys::hs256_token(&claims)) }
            }
        })
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    let refusal = next_matching(&mut events, |e| matches!(e, ClientEvent::Error { .. })).await;
    assert!(matches!(
        refusal,
        ClientEvent::Error {
            code: ErrorCode::TokenSubjectMismatch,
            recoverable: true,
            ..
        }
    ));
    // The 4402 at exp is a lost connection with a provider, not the end of the client.
    eventually(WAIT, || async { client.stats().connects >= 2 }).await;
    assert!(!matches!(
        client.state(),
        client::ConnectionState::Disconnected { .. }
    ));
    client.close().await;
}

//! In-band token renewal: `refresh {token}` keeps a connection alive across token
//! rotations, narrows its rooms, and refuses tokens for another subject or that fail
//! verification (the connection then keeps its old token and its old expiry).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::Claims;
use auth::test_keys;
use bus::Bus;
use bytes::Bytes;
use gateway::test_util::{TestClient, TestGateway, test_config, within};
use protocol::envelope::encode_bus;
use protocol::{ErrorCode, RoomEnvelope, ServerMessage, close_code};
use serde_json::json;
use store::Store;

use crate::helpers::{metric, token, viewer};

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// `claims` that expire `lifetime_secs` whole seconds from now (so in `lifetime - 1` to
/// `lifetime` seconds: `exp` has a resolution of one second).
fn expiring_in(mut claims: Claims, lifetime_secs: u64) -> Claims {
    claims.exp = unix_now_secs() + lifetime_secs;
    claims
}

/// Waits until the wall clock is past `exp` (Unix seconds) by `margin`: the test lets time
/// run out on purpose, it does not wait for the gateway.
async fn wait_until_past(exp: u64, margin: Duration) {
    let deadline = UNIX_EPOCH + Duration::from_secs(exp) + margin;
    if let Ok(left) = deadline.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
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

async fn expect_tick(client: &mut TestClient, room: &str, n: u64) {
    let message = client.next_room_message().await;
    assert_eq!(
        (message.room.as_str(), message.data),
        (room, json!({ "n": n }))
    );
}

async fn send_refresh(client: &mut TestClient, token: &str) {
    client
        .send_json(json!({"type": "refresh", "token": token}))
        .await;
}

/// Waits for `refreshed` and returns its `exp`.
async fn expect_refreshed(client: &mut TestClient) -> u64 {
    match client
        .next_control(|m| matches!(m, ServerMessage::Refreshed { .. }))
        .await
    {
        ServerMessage::Refreshed { exp } => exp,
        _ => unreachable!("filtered to refreshed"),
    }
}

/// Waits for an `error` with `code` and checks it says the connection stays.
async fn expect_refusal(client: &mut TestClient, code: ErrorCode) {
    match client.expect_error(code).await {
        ServerMessage::Error { recoverable, .. } => assert!(
            recoverable,
            "a refused refresh leaves the connection open, so the error is recoverable"
        ),
        _ => unreachable!("filtered to error"),
    }
}

async fn expect_pong(client: &mut TestClient) {
    client.send_json(json!({"type": "ping"})).await;
    client
        .next_control(|m| matches!(m, ServerMessage::Pong { .. }))
        .await;
}

#[tokio::test]
async fn one_connection_survives_three_token_rotations() {
    const ROOM: &str = "rotation.feed";
    // Tokens live 3 s (2-3 s after issue, `exp` being whole seconds); each is replaced about
    // a second after the previous one, so every rotation happens well before the current
    // token expires, and the whole run outlives the first two tokens.
    const LIFETIME_SECS: u64 = 3;
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let first = expiring_in(viewer("rotating-user"), LIFETIME_SECS);
    let mut client = gateway.connect(&token(&first)).await;
    client.subscribe(&[ROOM]).await;
    publish(&bus, ROOM, 0).await;
    expect_tick(&mut client, ROOM, 0).await;

    let mut exps = vec![first.exp];
    for rotation in 1..=3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let next = expiring_in(viewer("rotating-user"), LIFETIME_SECS);
        send_refresh(&mut client, &token(&next)).await;
        assert_eq!(expect_refreshed(&mut client).await, next.exp);
        publish(&bus, ROOM, rotation).await;
        expect_tick(&mut client, ROOM, rotation).await;
        exps.push(next.exp);
    }

    // Past the first two tokens' expiry: the connection runs on the third rotation's token.
    wait_until_past(exps[1], Duration::from_millis(200)).await;
    publish(&bus, ROOM, 4).await;
    expect_tick(&mut client, ROOM, 4).await;
    expect_pong(&mut client).await;
    assert_eq!(
        metric(
            gateway.addr,
            "switchboard_gateway_token_refreshes_total{outcome=\"accepted\"}"
        )
        .await,
        3.0
    );

    // The expiry moved rather than vanished: the last token still ends the connection.
    let last_exp = exps[3];
    let close = within(
        Duration::from_secs(LIFETIME_SECS + 3),
        client.expect_close(),
    )
    .await;
    assert_eq!(close, Some(close_code::TOKEN_EXPIRED));
    assert!(
        unix_now_secs() >= last_exp,
        "closed before the last token's exp {last_exp}"
    );
}

#[tokio::test]
async fn refresh_with_another_subject_is_refused_and_the_old_expiry_stands() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let own = expiring_in(viewer("alice"), 2);
    let mut client = gateway.connect(&token(&own)).await;

    let someone_else = viewer("mallory");
    send_refresh(&mut client, &token(&someone_else)).await;
    expect_refusal(&mut client, ErrorCode::TokenSubjectMismatch).await;
    expect_pong(&mut client).await;

    // Still on the old token: it closes at the old `exp`, not an hour later.
    assert_eq!(client.expect_close().await, Some(close_code::TOKEN_EXPIRED));
    assert!(unix_now_secs() >= own.exp);
}

#[tokio::test]
async fn refresh_for_another_node_is_refused() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = gateway
        .connect(&token(&crate::helpers::node("agent", "node-1")))
        .await;
    send_refresh(
        &mut client,
        &token(&crate::helpers::node("agent", "node-2")),
    )
    .await;
    expect_refusal(&mut client, ErrorCode::TokenSubjectMismatch).await;
    send_refresh(
        &mut client,
        &token(&crate::helpers::node("agent", "node-1")),
    )
    .await;
    expect_refreshed(&mut client).await;
}

#[tokio::test]
async fn expired_forged_and_empty_refresh_tokens_are_refused_with_their_codes() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = gateway.connect(&token(&viewer("bob"))).await;

    send_refresh(&mut client, &token(&test_keys::expired(viewer("bob"), 30))).await;
    expect_refusal(&mut client, ErrorCode::TokenExpired).await;

    let forged = auth::Issuer::hs256(test_keys::OTHER_HMAC_SECRET)
        .issue(&viewer("bob"))
        .expect("signs");
    send_refresh(&mut client, &forged).await;
    expect_refusal(&mut client, ErrorCode::TokenInvalid).await;

    send_refresh(&mut client, &test_keys::none_alg_token(&viewer("bob"))).await;
    expect_refusal(&mut client, ErrorCode::TokenInvalid).await;

    send_refresh(&mut client, "").await;
    expect_refusal(&mut client, ErrorCode::TokenMissing).await;

    // The connection is untouched by all of it.
    client.subscribe(&["still.here"]).await;
    expect_pong(&mut client).await;
}

#[tokio::test]
async fn refresh_leaves_rooms_the_new_token_no_longer_allows() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut wide = viewer("carol");
    wide.rooms = vec!["team.*".into(), "admin.audit".into()];
    let mut client = gateway.connect(&token(&wide)).await;
    client.subscribe(&["team.a", "admin.audit"]).await;

    let mut narrow = viewer("carol");
    narrow.rooms = vec!["team.*".into()];
    send_refresh(&mut client, &token(&narrow)).await;
    match client
        .next_control(|m| matches!(m, ServerMessage::Unsubscribed { .. }))
        .await
    {
        ServerMessage::Unsubscribed { rooms, reason } => {
            assert_eq!(rooms, ["admin.audit"]);
            assert_eq!(reason, Some(ErrorCode::Forbidden));
        }
        _ => unreachable!("filtered to unsubscribed"),
    }
    assert_eq!(expect_refreshed(&mut client).await, narrow.exp);

    // Nothing from the room it lost; the room it kept still delivers.
    publish(&bus, "admin.audit", 1).await;
    publish(&bus, "team.a", 2).await;
    expect_tick(&mut client, "team.a", 2).await;
    // And the new claims govern subscribing again.
    client
        .send_json(json!({"type": "subscribe", "rooms": ["admin.audit"]}))
        .await;
    client.expect_error(ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn expiry_grace_keeps_a_connection_past_exp_until_it_refreshes() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.token_expiry_grace = Duration::from_secs(3);
    })
    .await;
    let short = expiring_in(viewer("dave"), 2);
    let mut client = gateway.connect(&token(&short)).await;

    wait_until_past(short.exp, Duration::from_millis(500)).await;
    // Past `exp`, inside the grace: still served, and a refresh is still taken.
    expect_pong(&mut client).await;
    let renewed = expiring_in(viewer("dave"), 60);
    send_refresh(&mut client, &token(&renewed)).await;
    assert_eq!(expect_refreshed(&mut client).await, renewed.exp);

    // Past where the grace of the first token would have ended: still open.
    wait_until_past(short.exp, Duration::from_millis(3500)).await;
    expect_pong(&mut client).await;
}

#[tokio::test]
async fn without_a_refresh_the_grace_ends_the_connection_with_4402() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.token_expiry_grace = Duration::from_secs(1);
    })
    .await;
    let short = expiring_in(viewer("erin"), 2);
    let mut client = gateway.connect(&token(&short)).await;
    assert_eq!(client.expect_close().await, Some(close_code::TOKEN_EXPIRED));
    let closed_at = SystemTime::now();
    let grace_end = UNIX_EPOCH + Duration::from_secs(short.exp) + Duration::from_secs(1);
    assert!(
        closed_at + Duration::from_millis(50) >= grace_end,
        "closed {:?} before the grace ended",
        grace_end.duration_since(closed_at).unwrap_or_default()
    );
}

#[tokio::test]
async fn configured_issuer_and_audience_apply_at_the_upgrade_and_in_refresh() {
    let gateway = TestGateway::start_memory(|config| {
        config.auth.issuer = Some("https://idp.example".into());
        config.auth.audience = Some("switchboard".into());
    })
    .await;
    let right = json!({"iss": "https://idp.example", "aud": "switchboard"});
    let wrong_audience = json!({"iss": "https://idp.example", "aud": "billing"});

    // At the upgrade: a token for another audience, or without iss/aud, is closed with 4401.
    for token in [
        test_keys::hs256_token_with(&viewer("frank"), wrong_audience.clone()),
        token(&viewer("frank")),
    ] {
        let mut refused = TestClient::connect(&gateway.ws_url(&token), protocol::Codec::Json)
            .await
            .expect("upgrade completes; the refusal is in-band");
        refused.expect_error(ErrorCode::TokenInvalid).await;
        assert_eq!(
            refused.expect_close().await,
            Some(close_code::UNAUTHENTICATED)
        );
    }

    let mut client = gateway
        .connect(&test_keys::hs256_token_with(
            &viewer("frank"),
            right.clone(),
        ))
        .await;
    send_refresh(
        &mut client,
        &test_keys::hs256_token_with(&viewer("frank"), wrong_audience),
    )
    .await;
    expect_refusal(&mut client, ErrorCode::TokenInvalid).await;
    let renewed = viewer("frank");
    send_refresh(&mut client, &test_keys::hs256_token_with(&renewed, right)).await;
    assert_eq!(expect_refreshed(&mut client).await, renewed.exp);
}

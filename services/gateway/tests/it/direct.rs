//! Messages without a room: to every connection of a user (`sb.user.<sub>`, `{"user"}`), to
//! one connection (`sb.conn.<id>`, `{"connection_id"}`) and to everyone (`sb.broadcast`,
//! `{"broadcast": true, "role"?}`), with no `subscribe`, on the embedded engine.

use std::time::Duration;

use auth::Role;
use bus::Bus;
use gateway::test_util::{
    FRAME_TIMEOUT, TEST_API_KEY, TestClient, TestGateway, http_request, test_config, within,
};
use protocol::direct::DirectEnvelope;
use protocol::{Codec, DirectMessage, ServerFrame, ServerMessage, Subjects};
use serde_json::{Value, json};
use store::Store;

use crate::helpers::{metric, token, viewer};

/// How long a client that should get nothing is watched.
const QUIET: Duration = Duration::from_millis(300);

async fn post(gateway: &TestGateway, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {TEST_API_KEY}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let (status, body) = http_request(
        gateway.addr,
        "POST",
        "/api/ws/publish",
        &headers,
        &body.to_string(),
    )
    .await
    .expect("request succeeds");
    (status, serde_json::from_str(&body).expect("body is JSON"))
}

/// Connects with `claims`' token in `codec` and returns the client and its connection id.
async fn connect(
    gateway: &TestGateway,
    claims: &auth::Claims,
    codec: Codec,
) -> (TestClient, String) {
    let mut client = TestClient::connect(&gateway.ws_url(&token(claims)), codec)
        .await
        .expect("client connects");
    let ServerMessage::ConnectionEstablished { connection_id, .. } =
        client.expect_established().await
    else {
        unreachable!("expect_established returns the greeting")
    };
    (client, connection_id)
}

async fn next_direct(client: &mut TestClient) -> DirectMessage {
    within(FRAME_TIMEOUT, async {
        loop {
            match client.next_frame().await {
                Some(Ok(ServerFrame::Direct(message))) => return message,
                Some(Ok(_)) => continue,
                other => panic!("connection ended while waiting for a direct message: {other:?}"),
            }
        }
    })
    .await
}

async fn direct_within(client: &mut TestClient, wait: Duration) -> Option<DirectMessage> {
    tokio::time::timeout(wait, async {
        loop {
            match client.next_frame().await {
                Some(Ok(ServerFrame::Direct(message))) => return Some(message),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

fn admin(sub: &str) -> auth::Claims {
    let mut claims = viewer(sub);
    claims.role = Role::Admin;
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_message_reaches_every_connection_of_its_user_and_nobody_else() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    // A `sub` with dots: the subject carries it encoded.
    let alice = viewer("alice@example.com");
    let (mut json_a, _) = connect(&gateway, &alice, Codec::Json).await;
    let (mut packed_a, _) = connect(&gateway, &alice, Codec::MsgPack).await;
    let (mut bob, _) = connect(&gateway, &viewer("bob"), Codec::Json).await;

    let (status, answer) = post(
        &gateway,
        &json!({"user": "alice@example.com", "type": "invoice_ready", "data": {"id": 7}}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["user"], "alice@example.com");
    for client in [&mut json_a, &mut packed_a] {
        let message = next_direct(client).await;
        assert_eq!(message.event, "invoice_ready");
        assert_eq!(message.user.as_deref(), Some("alice@example.com"));
        assert_eq!((message.connection_id, message.broadcast), (None, None));
        assert_eq!(message.data, json!({"id": 7}));
        assert_eq!(message.timestamp, answer["timestamp"].as_str().unwrap());
    }
    assert_eq!(direct_within(&mut bob, QUIET).await, None);
    assert_eq!(
        metric(
            gateway.addr,
            r#"switchboard_gateway_messages_sent_total{kind="user"}"#
        )
        .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_the_bus_reaches_a_user_a_connection_and_everyone_without_the_api() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let (mut carol, carol_id) = connect(&gateway, &viewer("carol"), Codec::Json).await;
    let (mut other, _) = connect(&gateway, &viewer("carol"), Codec::Json).await;
    let subjects = Subjects::default();

    // JSON on the bus (what `nats pub` sends) works as well as MessagePack.
    bus.publish(
        &subjects.user("carol"),
        br#"{"type":"hello","data":1}"#.to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(next_direct(&mut carol).await.event, "hello");
    assert_eq!(next_direct(&mut other).await.event, "hello");

    let envelope = DirectEnvelope {
        event: "just_you".into(),
        data: json!(null),
        timestamp: None,
        role: None,
    };
    let payload = protocol::envelope::encode_bus(&envelope).unwrap();
    bus.publish(&subjects.connection(&carol_id), payload.into())
        .await
        .unwrap();
    let message = next_direct(&mut carol).await;
    assert_eq!(message.event, "just_you");
    assert_eq!(message.connection_id.as_deref(), Some(carol_id.as_str()));
    assert_eq!(direct_within(&mut other, QUIET).await, None);

    // A reserved type would be taken for a control frame: dropped, counted.
    bus.publish(
        &subjects.broadcast(),
        br#"{"type":"error","data":1}"#.to_vec().into(),
    )
    .await
    .unwrap();
    bus.publish(
        &subjects.broadcast(),
        br#"{"type":"maintenance","data":{"at":"soon"}}"#.to_vec().into(),
    )
    .await
    .unwrap();
    for client in [&mut carol, &mut other] {
        let message = next_direct(client).await;
        assert_eq!(message.event, "maintenance");
        assert_eq!(message.broadcast, Some(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_connection_id_reaches_that_connection_only() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let dave = viewer("dave");
    let (mut first, first_id) = connect(&gateway, &dave, Codec::Json).await;
    let (mut second, _) = connect(&gateway, &dave, Codec::Json).await;

    let (status, answer) = post(
        &gateway,
        &json!({"connection_id": first_id, "type": "your_turn", "data": {}}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let message = next_direct(&mut first).await;
    assert_eq!(message.connection_id.as_deref(), Some(first_id.as_str()));
    assert_eq!(message.user, None);
    assert_eq!(direct_within(&mut second, QUIET).await, None);

    // An id nobody holds is accepted (the API cannot know every gateway's) and goes nowhere.
    let (status, _) = post(
        &gateway,
        &json!({"connection_id": "00000000-0000-0000-0000-000000000000", "type": "x"}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(direct_within(&mut first, QUIET).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_every_connection_once_and_a_role_filter_only_that_role() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut viewers = Vec::new();
    for n in 0..3 {
        viewers.push(
            connect(&gateway, &viewer(&format!("v{n}")), Codec::Json)
                .await
                .0,
        );
    }
    let (mut root, _) = connect(&gateway, &admin("root"), Codec::MsgPack).await;
    // Subscribed to a room too: a broadcast is not a room message and comes once.
    root.subscribe(&["alerts"]).await;

    let (status, answer) = post(
        &gateway,
        &json!({"broadcast": true, "type": "announcement", "data": {"text": "hi"}}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["broadcast"], true);
    for client in viewers.iter_mut().chain([&mut root]) {
        let message = next_direct(client).await;
        assert_eq!(message.event, "announcement");
        assert_eq!(message.broadcast, Some(true));
        assert_eq!(direct_within(client, QUIET).await, None, "exactly once");
    }

    let (status, _) = post(
        &gateway,
        &json!({"broadcast": true, "role": "admin", "type": "reconnect_soon", "data": {}}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(next_direct(&mut root).await.event, "reconnect_soon");
    for client in &mut viewers {
        assert_eq!(direct_within(client, QUIET).await, None);
    }
    assert_eq!(
        metric(
            gateway.addr,
            r#"switchboard_gateway_messages_sent_total{kind="broadcast"}"#
        )
        .await,
        5.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_request_needs_exactly_one_target() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let refused = [
        json!({"type": "x"}),
        json!({"room": "alerts", "user": "a", "type": "x"}),
        json!({"user": "a", "connection_id": "c", "type": "x"}),
        json!({"room": "alerts", "broadcast": true, "type": "x"}),
        json!({"broadcast": false, "type": "x"}),
        json!({"user": "a", "role": "admin", "type": "x"}),
        json!({"broadcast": true, "role": "king", "type": "x"}),
        json!({"user": "a", "priority": "critical", "type": "x"}),
        json!({"user": "", "type": "x"}),
        json!({"connection_id": "a.b", "type": "x"}),
        json!({"user": "a", "type": "error"}),
    ];
    for body in refused {
        let (status, answer) = post(&gateway, &body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_message")),
            "{body}: {answer}"
        );
    }
    let (status, _) = post(&gateway, &json!({"room": "alerts", "type": "x"})).await;
    assert_eq!(status, 202, "a room alone is still fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_established_comes_first_even_while_broadcasts_stream() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let publishing = {
        let (bus, stop) = (bus.clone(), stop.clone());
        tokio::spawn(async move {
            let subject = Subjects::default().broadcast();
            while !stop.is_cancelled() {
                let payload = br#"{"type":"tick","data":null}"#.to_vec();
                bus.publish(&subject, payload.into()).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for n in 0..30 {
        let url = gateway.ws_url(&token(&viewer(&format!("early-{n}"))));
        let mut client = TestClient::connect(&url, Codec::Json).await.unwrap();
        let first = within(FRAME_TIMEOUT, client.next_frame()).await;
        assert!(
            matches!(
                first,
                Some(Ok(ServerFrame::Control(
                    ServerMessage::ConnectionEstablished { .. }
                )))
            ),
            "connection {n} began with {first:?}"
        );
        assert_eq!(next_direct(&mut client).await.event, "tick");
    }
    stop.cancel();
    publishing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reconnect_asks_each_connection_of_the_role_to_reconnect_within_the_spread() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut viewers = Vec::new();
    for n in 0..4 {
        viewers.push(
            connect(&gateway, &viewer(&format!("r{n}")), Codec::Json)
                .await
                .0,
        );
    }
    let (mut root, _) = connect(&gateway, &admin("root"), Codec::MsgPack).await;

    let body = json!({
        "broadcast": true,
        "role": "viewer",
        "type": "reconnect",
        "data": {"reason": "rebalancing", "within_s": 2.0},
    });
    let (status, answer) = post(&gateway, &body).await;
    assert_eq!(status, 202, "{answer}");
    for client in &mut viewers {
        let ServerMessage::Reconnect {
            reason,
            retry_after,
        } = client
            .next_control(|m| matches!(m, ServerMessage::Reconnect { .. }))
            .await
        else {
            unreachable!("filtered to reconnect")
        };
        assert_eq!(reason, "rebalancing");
        assert!((0.0..=2.0).contains(&retry_after), "{retry_after}");
    }
    let quiet = tokio::time::timeout(QUIET, async {
        loop {
            match root.next_frame().await {
                Some(Ok(ServerFrame::Control(ServerMessage::Reconnect { .. }))) => return,
                Some(Ok(_)) => continue,
                _ => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "the admin was not asked to reconnect");

    // Only a broadcast may carry it.
    let (status, _) = post(&gateway, &json!({"user": "r0", "type": "reconnect"})).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shared_user_subscriptions_a_personal_message_still_reaches_only_its_user() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.user_subscriptions = gateway::config::UserSubscriptions::Shared;
    })
    .await;
    let alice = viewer("alice@example.com");
    let (mut first, _) = connect(&gateway, &alice, Codec::Json).await;
    let (mut second, _) = connect(&gateway, &alice, Codec::MsgPack).await;
    let (mut bob, _) = connect(&gateway, &viewer("bob"), Codec::Json).await;

    let body = json!({"user": "alice@example.com", "type": "note", "data": 1});
    let (status, answer) = post(&gateway, &body).await;
    assert_eq!(status, 202, "{answer}");
    for client in [&mut first, &mut second] {
        let message = next_direct(client).await;
        assert_eq!(message.user.as_deref(), Some("alice@example.com"));
        assert_eq!(direct_within(client, QUIET).await, None, "once");
    }
    assert_eq!(direct_within(&mut bob, QUIET).await, None);
    // Nobody holds carol: her message is dropped on the lookup.
    let (status, _) = post(&gateway, &json!({"user": "carol", "type": "note"})).await;
    assert_eq!(status, 202);
    assert_eq!(direct_within(&mut bob, QUIET).await, None);
}

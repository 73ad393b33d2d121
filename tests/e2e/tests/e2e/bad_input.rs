//! Every bad input of the foundation issue gets its documented error, and a witness client on
//! the same gateway keeps receiving throughout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::{Claims, Role};
use bytes::Bytes;
use e2e::{Stack, TestClient, connect, publish_http, token, viewer};
use gateway::test_util::TestGateway;
use protocol::envelope::encode_bus;
use protocol::{Codec, ErrorCode, RoomEnvelope, close_code};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A gateway on real NATS and Redis with a witness subscribed to `nodes`.
struct Bench {
    stack: Stack,
    gateway: TestGateway,
    witness: TestClient,
    sent: AtomicU64,
}

impl Bench {
    async fn start(adjust: impl FnOnce(&mut gateway::Config)) -> Self {
        let stack = Stack::start().await;
        let gateway = stack.gateway(adjust).await;
        let mut witness = gateway.connect(&token(&viewer("witness"))).await;
        witness.subscribe(&["nodes"]).await;
        Self {
            stack,
            gateway,
            witness,
            sent: AtomicU64::new(0),
        }
    }

    /// Publishes one message and checks the witness gets exactly it.
    async fn witness_still_receives(&mut self) {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            publish_http(self.gateway.addr, "nodes", "witness_check", json!({"n": n})).await,
            202
        );
        let message = self.witness.next_room_message().await;
        assert_eq!(message.data, json!({"n": n}));
    }

    async fn client(&self, claims: &Claims) -> TestClient {
        self.gateway.connect(&token(claims)).await
    }

    async fn refused_close_code(&self, token: &str) -> (ErrorCode, Option<u16>) {
        let mut client = TestClient::connect(&self.gateway.ws_url(token), Codec::Json)
            .await
            .expect("upgrade succeeds");
        let code = match client
            .next_control(|m| matches!(m, protocol::ServerMessage::Error { .. }))
            .await
        {
            protocol::ServerMessage::Error { code, .. } => code,
            _ => unreachable!(),
        };
        (code, client.expect_close().await)
    }
}

fn claims_with(sub: &str, adjust: impl FnOnce(&mut Claims)) -> Claims {
    let mut claims = viewer(sub);
    adjust(&mut claims);
    claims
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_frames_and_the_connection_stays() {
    let mut bench = Bench::start(|_| {}).await;
    let mut client = bench.client(&viewer("mallory")).await;

    client.send_raw(Message::Text("{not json".into())).await;
    client.expect_error(ErrorCode::InvalidMessage).await;
    bench.witness_still_receives().await;

    client
        .send_raw(Message::Binary(Bytes::from_static(&[0xc1, 0xff, 0x00])))
        .await;
    client.expect_error(ErrorCode::InvalidMessage).await;

    client
        .send_json(json!({"type": "teleport", "to": "mars"}))
        .await;
    client.expect_error(ErrorCode::UnknownType).await;

    client
        .send_json(json!({"type": "subscribe", "rooms": ["bad room!"]}))
        .await;
    client.expect_error(ErrorCode::InvalidRoom).await;
    bench.witness_still_receives().await;

    // Still usable afterwards.
    client.send_json(json!({"type": "ping"})).await;
    client
        .next_control(|m| matches!(m, protocol::ServerMessage::Pong { .. }))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_connection_with_1009() {
    let mut bench = Bench::start(|config| config.gateway.max_message_bytes = 4096).await;
    let mut client = bench.client(&viewer("big")).await;
    let huge =
        json!({"type": "publish", "room": "nodes", "event": "x", "data": "a".repeat(10_000)});
    let _ = client
        .try_send_raw(Message::Text(huge.to_string().into()))
        .await;
    assert_eq!(
        client.expect_close().await,
        Some(close_code::MESSAGE_TOO_BIG)
    );
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_their_documented_codes() {
    let mut bench = Bench::start(|_| {}).await;
    let claims = viewer("eve");

    let none_alg = auth::test_keys::none_alg_token(&claims);
    assert_eq!(
        bench.refused_close_code(&none_alg).await,
        (ErrorCode::TokenInvalid, Some(close_code::UNAUTHENTICATED))
    );

    let wrong_key = auth::Issuer::hs256(b"not-the-gateway-secret")
        .issue(&claims)
        .unwrap();
    assert_eq!(
        bench.refused_close_code(&wrong_key).await,
        (ErrorCode::TokenInvalid, Some(close_code::UNAUTHENTICATED))
    );

    let expired = token(&claims_with("eve", |c| c.exp = unix_now() - 60));
    assert_eq!(
        bench.refused_close_code(&expired).await,
        (ErrorCode::TokenExpired, Some(close_code::TOKEN_EXPIRED))
    );

    assert_eq!(
        bench.refused_close_code("").await,
        (ErrorCode::TokenMissing, Some(close_code::UNAUTHENTICATED))
    );
    assert_eq!(
        bench.refused_close_code("garbage.token.here").await.0,
        ErrorCode::TokenInvalid
    );
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_while_connected_closes_with_4402() {
    let mut bench = Bench::start(|_| {}).await;
    let mut client = bench
        .client(&claims_with("brief", |c| c.exp = unix_now() + 2))
        .await;
    client.subscribe(&["nodes"]).await;
    client.expect_error(ErrorCode::TokenExpired).await;
    assert_eq!(client.expect_close().await, Some(close_code::TOKEN_EXPIRED));
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_publishing_outside_the_token_are_forbidden_per_request() {
    let mut bench = Bench::start(|_| {}).await;
    let claims = claims_with("limited", |c| {
        c.rooms = vec!["nodes".into(), "team.*".into()];
        c.publish = vec!["team.>".into()];
    });
    let mut client = bench.client(&claims).await;

    client
        .send_json(json!({"type": "subscribe", "rooms": ["secrets", "team.a", "nodes"]}))
        .await;
    match client.expect_error(ErrorCode::Forbidden).await {
        protocol::ServerMessage::Error {
            room, recoverable, ..
        } => {
            assert_eq!(room.as_deref(), Some("secrets"));
            assert!(recoverable);
        }
        _ => unreachable!(),
    }
    match client
        .next_control(|m| matches!(m, protocol::ServerMessage::Subscribed { .. }))
        .await
    {
        protocol::ServerMessage::Subscribed { rooms, .. } => {
            assert_eq!(rooms, vec!["team.a", "nodes"])
        }
        _ => unreachable!(),
    }

    client
        .send_json(json!({"type": "publish", "room": "nodes", "event": "spoof", "data": {}}))
        .await;
    client.expect_error(ErrorCode::Forbidden).await;
    // The forbidden publish reached nobody; an allowed one does.
    client
        .send_json(json!({"type": "publish", "room": "team.a", "event": "said", "data": {"hi": 1}}))
        .await;
    let message = client.next_room_message().await;
    assert_eq!(
        (message.room.as_str(), message.event.as_str()),
        ("team.a", "said")
    );
    bench.witness_still_receives().await;
    assert!(
        bench
            .witness
            .room_message_within(Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_state_for_another_node_is_forbidden_and_own_state_reaches_the_bus() {
    let mut bench = Bench::start(|_| {}).await;
    let bus = bench.stack.bus().await;
    let mut ingest = bus.subscribe("sb.ingest.node.>").await.unwrap();
    bus.flush().await.unwrap();
    let node = claims_with("agent-1", |c| {
        c.role = Role::Node;
        c.node_id = Some("n1".into());
    });
    let mut client = bench.client(&node).await;

    client
        .send_json(json!({"type": "node_state", "node_id": "n2", "layer": "edge"}))
        .await;
    client.expect_error(ErrorCode::Forbidden).await;
    client
        .send_json(
            json!({"type": "node_state", "node_id": "n1", "layer": "edge", "update_count": 7}),
        )
        .await;
    let report = tokio::time::timeout(Duration::from_secs(5), ingest.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.subject, "sb.ingest.node.n1");
    let state: protocol::NodeState = protocol::envelope::decode_bus(&report.payload).unwrap();
    assert_eq!((state.node_id.as_str(), state.update_count), ("n1", 7));

    let mut viewer_client = bench.client(&viewer("just-looking")).await;
    viewer_client
        .send_json(json!({"type": "node_state", "node_id": "n1"}))
        .await;
    viewer_client.expect_error(ErrorCode::Forbidden).await;
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_rate_limited_then_closed_with_4429() {
    let mut bench = Bench::start(|_| {}).await;
    let mut flooder = bench.client(&viewer("flooder")).await;
    for _ in 0..400 {
        if flooder
            .try_send_raw(Message::Text(r#"{"type":"ping"}"#.into()))
            .await
            .is_err()
        {
            break;
        }
    }
    flooder.expect_error(ErrorCode::RateLimited).await;
    assert_eq!(flooder.expect_close().await, Some(close_code::RATE_LIMITED));
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_over_the_per_user_limit_is_refused_cluster_wide() {
    let mut bench = Bench::start(|_| {}).await;
    // A second gateway shares the counter through Redis.
    let other = bench.stack.gateway(|_| {}).await;
    let user = viewer("crowd");
    let mut open = Vec::new();
    for index in 0..10 {
        let gateway = if index % 2 == 0 {
            &bench.gateway
        } else {
            &other
        };
        open.push(connect(&gateway.ws_url(&token(&user))).await);
    }
    let (code, close) = bench.refused_close_code(&token(&user)).await;
    assert_eq!(
        (code, close),
        (
            ErrorCode::ConnectionRateLimited,
            Some(close_code::RATE_LIMITED)
        )
    );
    // Other users are unaffected.
    let _fine = bench.client(&viewer("someone-else")).await;
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_without_blocking_fanout() {
    let mut bench = Bench::start(|config| {
        config.gateway.outbound_queue_messages = 16;
        config.gateway.slow_consumer_grace = Duration::from_millis(100);
        config.gateway.write_timeout = Duration::from_secs(1);
    })
    .await;
    let mut sleeper = bench.client(&viewer("sleeper")).await;
    sleeper.subscribe(&["nodes"]).await;
    // The sleeper stops reading; 400 messages of 48 KiB overflow its socket buffers and queue.
    let bus = bench.stack.bus().await;
    let envelope = RoomEnvelope {
        event: "bulk".into(),
        data: json!("x".repeat(48 * 1024)),
        timestamp: None,
        seq: None,
        priority: None,
    };
    let payload = Bytes::from(encode_bus(&envelope).unwrap());
    for _ in 0..400 {
        bus.publish("sb.room.nodes", payload.clone()).await.unwrap();
        // The witness keeps up, message by message, while the sleeper falls behind.
        assert_eq!(bench.witness.next_room_message().await.event, "bulk");
    }
    e2e::eventually(Duration::from_secs(10), || async {
        let (_, metrics) =
            gateway::test_util::http_request(bench.gateway.addr, "GET", "/metrics", &[], "")
                .await
                .unwrap();
        metrics.lines().any(|line| {
            line.starts_with("switchboard_gateway_slow_consumer_closes_total")
                && !line.ends_with(" 0")
        })
    })
    .await;
    // Whatever the sleeper had buffered, its connection ends.
    let ended = e2e::within(Duration::from_secs(30), async {
        loop {
            match sleeper.next_frame().await {
                Some(Ok(_)) => continue,
                Some(Err(frame)) => return frame.map(|frame| u16::from(frame.code)),
                None => return None,
            }
        }
    })
    .await;
    assert!(
        matches!(ended, None | Some(close_code::SLOW_CONSUMER)),
        "{ended:?}"
    );
    bench.witness_still_receives().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let bench = Bench::start(|config| {
        config.gateway.allowed_origins = vec!["https://dashboard.example".into()]
    })
    .await;
    let url = bench.gateway.ws_url(&token(&viewer("web")));
    let refused = TestClient::connect_with(&url, Codec::Json, |request| {
        request
            .headers_mut()
            .insert("Origin", "https://evil.example".parse().unwrap());
    })
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }
    let allowed = TestClient::connect_with(&url, Codec::Json, |request| {
        request
            .headers_mut()
            .insert("Origin", "https://dashboard.example".parse().unwrap());
    })
    .await;
    assert!(allowed.is_ok());
}

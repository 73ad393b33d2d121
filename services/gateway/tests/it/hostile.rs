//! What a black-box probe found, tried as a hostile client would (issue 11, item 2): a
//! reader that stalls, a sustained message flood, `node_state` from a token without a
//! `node_id`, and a text frame that is not UTF-8. Each gets the documented answer.

use std::time::{Duration, Instant};

use auth::Role;
use bus::Bus;
use bytes::Bytes;
use gateway::test_util::{TestGateway, eventually, test_config};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{ErrorCode, NodeState, RoomEnvelope, close_code};
use serde_json::json;
use store::Store;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{RawClient, SilentClient, metric, node, token, viewer};

const SLOW_CONSUMER_CLOSES: &str = "switchboard_gateway_slow_consumer_closes_total";
const CLOSED_AS_SLOW: &str =
    r#"switchboard_gateway_connections_closed_total{reason="slow_consumer"}"#;

/// A gateway whose slow-consumer grace (1 s) is far below its write timeout (the default
/// 10 s), with a small outbound queue so a stalled reader fills it quickly.
async fn gateway_with_short_grace(bus: &Bus) -> TestGateway {
    let mut config = test_config();
    config.gateway.slow_consumer_grace = Duration::from_secs(1);
    config.gateway.outbound_queue_messages = 16;
    assert_eq!(config.gateway.write_timeout, Duration::from_secs(10));
    TestGateway::start(config, bus.clone(), Store::memory()).await
}

/// Publishes a 16 KiB message to `room` every 10 ms until aborted.
fn publish_forever(bus: &Bus, room: &str) -> JoinHandle<()> {
    let bus = bus.clone();
    let subject = format!("sb.room.{room}");
    tokio::spawn(async move {
        let filler = "x".repeat(16 * 1024);
        for seq in 0u64.. {
            let envelope = RoomEnvelope {
                event: "bulk".into(),
                data: json!({"seq": seq, "filler": filler}),
                timestamp: None,
                seq: None,
                priority: None,
            };
            let payload = Bytes::from(encode_bus(&envelope).expect("envelope encodes"));
            bus.publish(&subject, payload)
                .await
                .expect("memory bus publishes");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// A client with a tiny receive buffer, subscribed to `room`, that then reads nothing.
async fn stalled_subscriber(gateway: &TestGateway, room: &str) -> SilentClient {
    let mut client =
        SilentClient::connect_with_small_receive_buffer(gateway.addr, &token(&viewer("stalled")))
            .await;
    let subscribe = json!({"type": "subscribe", "rooms": [room]}).to_string();
    client.send_frame(1, subscribe.as_bytes()).await;
    client.wait_for_text("subscribed").await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_closed_at_the_slow_consumer_grace_not_the_write_timeout_and_counted_once()
 {
    let bus = Bus::memory();
    let gateway = gateway_with_short_grace(&bus).await;
    let stalled = stalled_subscriber(&gateway, "bulk.stalled").await;
    let publisher = publish_forever(&bus, "bulk.stalled");

    // The queue stays full for the grace: the gateway decides to close...
    eventually(Duration::from_secs(8), || async {
        metric(gateway.addr, SLOW_CONSUMER_CLOSES).await >= 1.0
    })
    .await;
    let decided = Instant::now();
    // ...and acts on it at once, though its socket write is still blocked: at most the
    // farewell's one second later, not when the 10 s write timeout expires.
    eventually(Duration::from_secs(3), || async {
        metric(gateway.addr, CLOSED_AS_SLOW).await == 1.0
    })
    .await;
    let acted_after = decided.elapsed();
    publisher.abort();
    assert!(acted_after < Duration::from_secs(3), "{acted_after:?}");

    // What was in flight still arrives, then the connection ends.
    let frames = stalled.frames().await;
    assert!(!frames.is_empty());
    if let Some(close) = frames.iter().find(|frame| frame.opcode == 8) {
        assert_eq!(close.close_code(), Some(close_code::SLOW_CONSUMER));
    }
    assert_eq!(metric(gateway.addr, SLOW_CONSUMER_CLOSES).await, 1.0);
    assert_eq!(metric(gateway.addr, CLOSED_AS_SLOW).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_that_reads_again_gets_the_slow_consumer_error_and_4508() {
    let bus = Bus::memory();
    let gateway = gateway_with_short_grace(&bus).await;
    let stalled = stalled_subscriber(&gateway, "bulk.resumes").await;
    let publisher = publish_forever(&bus, "bulk.resumes");

    eventually(Duration::from_secs(8), || async {
        metric(gateway.addr, SLOW_CONSUMER_CLOSES).await >= 1.0
    })
    .await;
    // The client reads again right after the decision: the farewell fits into its socket.
    let frames = stalled.frames().await;
    publisher.abort();

    let close = frames.last().expect("the server sent frames");
    assert_eq!(
        close.close_code(),
        Some(close_code::SLOW_CONSUMER),
        "{close:?}"
    );
    let error = frames
        .iter()
        .rev()
        .find(|frame| frame.opcode == 1 && frame.payload.starts_with(b"{\"type\":\"error\""))
        .expect("an error frame precedes the close");
    let error: serde_json::Value = serde_json::from_slice(&error.payload).unwrap();
    assert_eq!(error["code"], "slow_consumer");
    eventually(Duration::from_secs(3), || async {
        metric(gateway.addr, CLOSED_AS_SLOW).await == 1.0
    })
    .await;
    assert_eq!(metric(gateway.addr, SLOW_CONSUMER_CLOSES).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_past_the_write_timeout_closes_as_a_slow_consumer_counted_once() {
    // The grace is long and the queue roomy, so fan-out never decides: the blocked write does.
    let bus = Bus::memory();
    let mut config = test_config();
    config.gateway.slow_consumer_grace = Duration::from_secs(60);
    config.gateway.write_timeout = Duration::from_secs(1);
    let gateway = TestGateway::start(config, bus.clone(), Store::memory()).await;
    let stalled = stalled_subscriber(&gateway, "bulk.blocked").await;
    let publisher = publish_forever(&bus, "bulk.blocked");

    eventually(Duration::from_secs(8), || async {
        metric(gateway.addr, CLOSED_AS_SLOW).await == 1.0
    })
    .await;
    publisher.abort();
    assert!(!stalled.frames().await.is_empty());
    assert_eq!(metric(gateway.addr, SLOW_CONSUMER_CLOSES).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_flood_at_fourteen_times_the_allowance_is_closed_with_4429() {
    // Defaults: 100 messages/s, burst 100. 14 pings every 10 ms is 1,400 messages/s: one in
    // fourteen gets a token, so the flood never is a back-to-back run of rejections.
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut flooder = RawClient::connect(&gateway, &token(&viewer("flooder")), None).await;
    let ping = Message::Text(r#"{"type":"ping"}"#.into());
    let started = Instant::now();
    let (frames, close) = flooder
        .flood_until_closed(ping, 14, Duration::from_millis(10), Duration::from_secs(8))
        .await;
    let lasted = started.elapsed();

    assert_eq!(close, Some(close_code::RATE_LIMITED), "after {lasted:?}");
    let errors = frames
        .iter()
        .filter(|frame| matches!(frame, Message::Text(text) if text.contains("\"rate_limited\"")))
        .count();
    assert!(errors >= 1, "the flooder was warned first");
    // Not closed at the first excess message: the close waits for the flood to last.
    assert!(lasted >= Duration::from_secs(2), "closed after {lasted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_burst_over_the_allowance_is_only_throttled() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("bursty")), None).await;
    let ping = Message::Text(r#"{"type":"ping"}"#.into());
    // 150 messages in one go: 50 over the bucket, then quiet.
    let (frames, close) = client
        .flood_until_closed(ping, 150, Duration::from_secs(10), Duration::from_secs(1))
        .await;
    assert_eq!(close, None, "a single burst does not close");
    assert!(
        frames
            .iter()
            .any(|frame| matches!(frame, Message::Text(text) if text.contains("\"rate_limited\"")))
    );
    // After a calm second the connection is as good as new.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.send(&protocol::ClientMessage::Ping).await;
    client
        .next_control(|m| matches!(m, protocol::ServerMessage::Pong { .. }))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_state_needs_a_token_whose_node_id_matches_even_for_an_admin() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut reports = bus
        .subscribe("sb.ingest.node.>")
        .await
        .expect("memory bus subscribes");
    let report = |node_id: &str, update_count: u64| json!({"type": "node_state", "node_id": node_id, "layer": "edge", "update_count": update_count});

    let mut admin_claims = viewer("operator");
    admin_claims.role = Role::Admin;
    assert_eq!(admin_claims.node_id, None);
    let mut admin = gateway.connect(&token(&admin_claims)).await;
    admin.send_json(report("node-1", 1)).await;
    admin.expect_error(ErrorCode::Forbidden).await;
    // The refusal is per message: the connection stays.
    admin.send_json(json!({"type": "ping"})).await;
    admin
        .next_control(|m| matches!(m, protocol::ServerMessage::Pong { .. }))
        .await;

    // A node token whose node_id matches still reports, and only its report reaches the bus.
    let mut agent = gateway.connect(&token(&node("agent-1", "node-1"))).await;
    agent.send_json(report("node-1", 2)).await;
    let message = tokio::time::timeout(Duration::from_secs(5), reports.next())
        .await
        .expect("a report reaches the bus")
        .expect("subscription open");
    assert_eq!(message.subject, "sb.ingest.node.node-1");
    let state: NodeState = decode_bus(&message.payload).unwrap();
    assert_eq!((state.node_id.as_str(), state.update_count), ("node-1", 2));
    assert_eq!(
        metric(
            gateway.addr,
            r#"switchboard_gateway_bad_input_total{code="forbidden"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_is_answered_with_close_1007() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = SilentClient::connect(gateway.addr, &token(&viewer("garbler"))).await;
    // `{"type":"ping"}` with one byte that can start no UTF-8 sequence.
    client.send_frame(1, b"{\"type\":\"p\xffng\"}").await;

    let frames = client.frames().await;
    let close = frames
        .last()
        .expect("the server answered with a close frame");
    assert_eq!(
        close.close_code(),
        Some(close_code::INVALID_PAYLOAD),
        "{frames:?}"
    );
    assert_eq!(
        metric(
            gateway.addr,
            r#"switchboard_gateway_bad_input_total{code="invalid_utf8"}"#
        )
        .await,
        1.0
    );
}

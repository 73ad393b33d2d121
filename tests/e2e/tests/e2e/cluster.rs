//! Two gateways on one NATS and Redis: delivery, stats, crash and drain.

use std::time::Duration;

use bytes::Bytes;
use e2e::{GatewayProcess, Stack, TEST_API_KEY, connect, eventually, publish_http, token, viewer};
use protocol::envelope::encode_bus;
use protocol::{RoomEnvelope, ServerMessage, close_code};
use serde_json::json;

fn gateway_env(stack: &Stack, server_id: &str, liveness_ttl: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SWITCHBOARD__GATEWAY__SERVER_ID", server_id.to_owned()),
        (
            "SWITCHBOARD__GATEWAY__LIVENESS_TTL",
            liveness_ttl.to_owned(),
        ),
        ("SWITCHBOARD__BUS__NATS_URL", stack.nats.url()),
        ("SWITCHBOARD__STORE__REDIS_URL", stack.redis.url()),
        ("SWITCHBOARD__STORE__KEY_PREFIX", stack.key_prefix.clone()),
        (
            "SWITCHBOARD__AUTH__HMAC_SECRET",
            String::from_utf8_lossy(auth::test_keys::TEST_HMAC_SECRET).into_owned(),
        ),
        ("SWITCHBOARD__AUTH__API_KEY", TEST_API_KEY.to_owned()),
    ]
}

fn stat(stats: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(stats, |value, key| &value[*key])
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_configured_by_environment_deliver_http_and_nats_publishes_once_to_both_clients()
 {
    let stack = Stack::start().await;
    let gateway_1 = GatewayProcess::spawn(&gateway_env(&stack, "gw-1", "15s")).await;
    let gateway_2 = GatewayProcess::spawn(&gateway_env(&stack, "gw-2", "15s")).await;
    let mut alice = connect(&gateway_1.ws_url(&token(&viewer("alice")))).await;
    let mut bob = connect(&gateway_2.ws_url(&token(&viewer("bob")))).await;
    assert_eq!(alice.subscribe(&["nodes"]).await, vec!["nodes"]);
    assert_eq!(bob.subscribe(&["nodes"]).await, vec!["nodes"]);

    assert_eq!(
        publish_http(
            gateway_1.addr,
            "nodes",
            "node_status_update",
            json!({"n": 1})
        )
        .await,
        202
    );
    let bus = stack.bus().await;
    let envelope = RoomEnvelope {
        event: "node_status_update".into(),
        data: json!({"n": 2}),
        timestamp: None,
        seq: None,
        priority: None,
    };
    bus.publish("sb.room.nodes", Bytes::from(encode_bus(&envelope).unwrap()))
        .await
        .unwrap();
    bus.flush().await.unwrap();

    for client in [&mut alice, &mut bob] {
        let mut seen = [
            client.next_room_message().await,
            client.next_room_message().await,
        ];
        seen.sort_by_key(|message| message.data["n"].as_u64());
        assert_eq!(seen[0].data, json!({"n": 1}));
        assert_eq!(seen[1].data, json!({"n": 2}));
        assert!(
            seen.iter()
                .all(|message| message.room == "nodes" && message.event == "node_status_update")
        );
        assert!(
            client
                .room_message_within(Duration::from_millis(500))
                .await
                .is_none(),
            "delivered more than once"
        );
    }

    for gateway in [&gateway_1, &gateway_2] {
        eventually(Duration::from_secs(5), || async {
            let stats = gateway.stats().await;
            stat(&stats, &["active_connections"]) == 2
                && stat(&stats, &["rooms", "nodes"]) == 2
                && stat(&stats, &["live_gateways"]) == 2
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_drops_out_of_the_stats_within_its_ttl() {
    let stack = Stack::start().await;
    let survivor = GatewayProcess::spawn(&gateway_env(&stack, "gw-survivor", "15s")).await;
    let doomed = GatewayProcess::spawn(&gateway_env(&stack, "gw-doomed", "1500ms")).await;
    let mut kept = connect(&survivor.ws_url(&token(&viewer("kept")))).await;
    kept.subscribe(&["nodes"]).await;
    let mut lost = connect(&doomed.ws_url(&token(&viewer("lost")))).await;
    lost.subscribe(&["nodes"]).await;
    eventually(Duration::from_secs(5), || async {
        let stats = survivor.stats().await;
        stat(&stats, &["active_connections"]) == 2 && stat(&stats, &["live_gateways"]) == 2
    })
    .await;

    doomed.kill();
    // TTL 1.5 s; allow one refresh period of slack on top.
    eventually(Duration::from_millis(3_000), || async {
        let stats = survivor.stats().await;
        stat(&stats, &["active_connections"]) == 1
            && stat(&stats, &["live_gateways"]) == 1
            && stat(&stats, &["rooms", "nodes"]) == 1
    })
    .await;
    assert_eq!(
        publish_http(survivor.addr, "nodes", "still_here", json!({})).await,
        202
    );
    assert_eq!(kept.next_room_message().await.event, "still_here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_clients_with_a_jittered_reconnect_and_deregisters_at_once() {
    let stack = Stack::start().await;
    let staying = GatewayProcess::spawn(&gateway_env(&stack, "gw-staying", "15s")).await;
    let leaving = GatewayProcess::spawn(&gateway_env(&stack, "gw-leaving", "15s")).await;
    let mut client = connect(&leaving.ws_url(&token(&viewer("carol")))).await;
    client.subscribe(&["tasks"]).await;
    eventually(Duration::from_secs(5), || async {
        stat(&staying.stats().await, &["live_gateways"]) == 2
    })
    .await;

    let status = leaving.terminate();
    assert!(status.success(), "clean drain exits 0, got {status:?}");
    match client
        .next_control(|m| matches!(m, ServerMessage::Reconnect { .. }))
        .await
    {
        ServerMessage::Reconnect { retry_after, .. } => {
            assert!((1.0..=5.0).contains(&retry_after), "{retry_after}")
        }
        _ => unreachable!(),
    }
    assert_eq!(client.expect_close().await, Some(close_code::GOING_AWAY));
    // Well inside the 15 s TTL: the entries were removed by the drain, not by expiry.
    eventually(Duration::from_secs(2), || async {
        let stats = staying.stats().await;
        stat(&stats, &["live_gateways"]) == 1 && stat(&stats, &["active_connections"]) == 0
    })
    .await;
}

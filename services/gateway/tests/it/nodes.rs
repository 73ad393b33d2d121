//! Commands to a node agent over the in-memory bus shared with the gateway.

use std::time::Duration;

use bus::{Bus, Headers, RequestError};
use bytes::Bytes;
use gateway::test_util::{TestGateway, eventually, test_config};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{CommandReply, CommandRequest, ServerMessage};
use serde_json::json;
use store::Store;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{metric, node, token};

fn command(id: Option<&str>, name: &str, params: serde_json::Value) -> Bytes {
    let request = CommandRequest {
        id: id.map(str::to_owned),
        name: name.to_owned(),
        params,
    };
    Bytes::from(encode_bus(&request).expect("request encodes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_the_memory_bus_reaches_the_node_and_returns_its_ack() {
    let bus = Bus::memory();
    let mut config = test_config();
    config.gateway.command_timeout = Duration::from_millis(500);
    let gateway = TestGateway::start(config, bus.clone(), Store::memory()).await;
    let mut agent = gateway.connect(&token(&node("agent-3", "edge-3"))).await;

    let asking_bus = bus.clone();
    let asking = tokio::spawn(async move {
        asking_bus
            .request(
                "sb.node.edge-3.cmd",
                Headers::new(),
                command(Some("cmd-1"), "set_interval", json!({"seconds": 5})),
                Duration::from_secs(5),
            )
            .await
    });
    match agent
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await
    {
        ServerMessage::Command { id, name, params } => {
            assert_eq!(
                (id.as_str(), name.as_str(), params),
                ("cmd-1", "set_interval", json!({"seconds": 5}))
            );
        }
        _ => unreachable!("filtered to command"),
    }
    agent
        .send_json(json!({"type": "ack", "id": "cmd-1", "ok": true, "result": {"interval": 5}}))
        .await;
    let reply: CommandReply = decode_bus(
        &asking
            .await
            .expect("request task")
            .expect("a reply")
            .payload,
    )
    .expect("reply decodes");
    assert_eq!(
        reply,
        CommandReply {
            id: "cmd-1".into(),
            ok: true,
            result: Some(json!({"interval": 5})),
            error: None,
        }
    );

    // A command without an id gets one; an unanswered one times out with a documented code.
    let reply = bus
        .request(
            "sb.node.edge-3.cmd",
            Headers::new(),
            command(None, "reboot", json!(null)),
            Duration::from_secs(5),
        )
        .await
        .expect("a reply");
    let reply: CommandReply = decode_bus(&reply.payload).unwrap();
    assert!(!reply.id.is_empty());
    assert!(!reply.ok);
    assert_eq!(reply.error.as_deref(), Some("command_timeout"));
    match agent
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await
    {
        ServerMessage::Command { id, name, .. } => {
            assert_eq!((id, name.as_str()), (reply.id, "reboot"))
        }
        _ => unreachable!("filtered to command"),
    }

    // Once the node disconnects, nobody serves its subject any more.
    agent.send_raw(Message::Close(None)).await;
    eventually(Duration::from_secs(5), || async {
        matches!(
            bus.request(
                "sb.node.edge-3.cmd",
                Headers::new(),
                command(None, "ping", json!(null)),
                Duration::from_secs(1),
            )
            .await,
            Err(RequestError::NoResponders)
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ack_is_passed_back_to_the_requester() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut agent = gateway.connect(&token(&node("agent-4", "edge-4"))).await;

    let asking_bus = bus.clone();
    let asking = tokio::spawn(async move {
        asking_bus
            .request(
                "sb.node.edge-4.cmd",
                Headers::new(),
                command(Some("c9"), "flush_cache", json!({})),
                Duration::from_secs(5),
            )
            .await
    });
    agent
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await;
    // An ack for an unknown id is ignored; the real one answers.
    agent
        .send_json(json!({"type": "ack", "id": "someone-else", "ok": true}))
        .await;
    agent
        .send_json(json!({"type": "ack", "id": "c9", "ok": false, "error": "disk full"}))
        .await;
    let reply: CommandReply = decode_bus(&asking.await.unwrap().expect("a reply").payload).unwrap();
    assert_eq!(
        reply,
        CommandReply {
            id: "c9".into(),
            ok: false,
            result: None,
            error: Some("disk full".into()),
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_beyond_max_node_commands_are_answered_unavailable_at_once() {
    let bus = Bus::memory();
    let mut config = test_config();
    config.gateway.command_timeout = Duration::from_secs(5);
    config.gateway.max_node_commands = 2;
    let gateway = TestGateway::start(config, bus.clone(), Store::memory()).await;
    let mut agent = gateway.connect(&token(&node("agent-9", "edge-9"))).await;
    let ask = |id: &'static str| {
        let bus = bus.clone();
        tokio::spawn(async move {
            let reply = bus
                .request(
                    "sb.node.edge-9.cmd",
                    Headers::new(),
                    command(Some(id), "restart", json!({})),
                    Duration::from_secs(10),
                )
                .await
                .expect("a reply");
            decode_bus::<CommandReply>(&reply.payload).expect("reply decodes")
        })
    };
    // Two commands in flight: the node has them and has not answered.
    let first = ask("cmd-1");
    let second = ask("cmd-2");
    for _ in 0..2 {
        agent
            .next_control(|m| matches!(m, ServerMessage::Command { .. }))
            .await;
    }
    let started = std::time::Instant::now();
    let refused = ask("cmd-3").await.unwrap();
    assert_eq!(
        (refused.id.as_str(), refused.ok, refused.error.as_deref()),
        ("cmd-3", false, Some("unavailable"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after command_timeout"
    );
    assert_eq!(
        metric(
            gateway.addr,
            "switchboard_gateway_rate_limited_total{limit=\"node_commands\"}"
        )
        .await,
        1.0
    );

    // An answer frees a slot: the next command reaches the node again.
    agent
        .send_json(json!({"type": "ack", "id": "cmd-1", "ok": true}))
        .await;
    assert!(first.await.unwrap().ok);
    let fourth = ask("cmd-4");
    match agent
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await
    {
        ServerMessage::Command { id, .. } => assert_eq!(id, "cmd-4"),
        _ => unreachable!("filtered to command"),
    }
    agent
        .send_json(json!({"type": "ack", "id": "cmd-4", "ok": true}))
        .await;
    agent
        .send_json(json!({"type": "ack", "id": "cmd-2", "ok": true}))
        .await;
    assert!(fourth.await.unwrap().ok);
    assert!(second.await.unwrap().ok);
}

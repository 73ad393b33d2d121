//! Commands to node agents over `sb.node.<node_id>.cmd`.

use std::time::Duration;

use auth::Role;
use bus::Headers;
use bytes::Bytes;
use e2e::{Stack, token, viewer};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{CommandReply, CommandRequest, ServerMessage};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_the_node_subject_returns_the_nodes_ack() {
    let stack = Stack::start().await;
    let gateway = stack
        .gateway(|config| config.gateway.command_timeout = Duration::from_millis(800))
        .await;
    let mut claims = viewer("agent");
    claims.role = Role::Node;
    claims.node_id = Some("node-7".into());
    let mut node = gateway.connect(&token(&claims)).await;
    let bus = stack.bus().await;

    let request = CommandRequest {
        id: None,
        name: "set_interval".into(),
        params: json!({"seconds": 5}),
    };
    let payload = Bytes::from(encode_bus(&request).unwrap());
    let asking_bus = bus.clone();
    let asking = tokio::spawn(async move {
        asking_bus
            .request(
                "sb.node.node-7.cmd",
                Headers::new(),
                payload,
                Duration::from_secs(5),
            )
            .await
    });
    let (id, name, params) = match node
        .next_control(|m| matches!(m, ServerMessage::Command { .. }))
        .await
    {
        ServerMessage::Command { id, name, params } => (id, name, params),
        _ => unreachable!(),
    };
    assert_eq!(
        (name.as_str(), params),
        ("set_interval", json!({"seconds": 5}))
    );
    node.send_json(json!({"type": "ack", "id": id, "ok": true, "result": {"interval": 5}}))
        .await;
    let reply: CommandReply = decode_bus(&asking.await.unwrap().unwrap().payload).unwrap();
    assert_eq!(
        reply,
        CommandReply {
            id,
            ok: true,
            result: Some(json!({"interval": 5})),
            error: None
        }
    );

    // Unanswered commands time out with a documented code.
    let payload = Bytes::from(
        encode_bus(&CommandRequest {
            id: Some("c2".into()),
            name: "ping".into(),
            params: json!(null),
        })
        .unwrap(),
    );
    let reply = bus
        .request(
            "sb.node.node-7.cmd",
            Headers::new(),
            payload,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let reply: CommandReply = decode_bus(&reply.payload).unwrap();
    assert_eq!(
        (reply.ok, reply.error.as_deref()),
        (false, Some("command_timeout"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_for_a_node_that_is_not_connected_gets_no_responders() {
    let stack = Stack::start().await;
    let _gateway = stack.gateway(|_| {}).await;
    let bus = stack.bus().await;
    let payload = Bytes::from(
        encode_bus(&CommandRequest {
            id: None,
            name: "ping".into(),
            params: json!(null),
        })
        .unwrap(),
    );
    let outcome = bus
        .request(
            "sb.node.ghost.cmd",
            Headers::new(),
            payload,
            Duration::from_secs(2),
        )
        .await;
    assert!(
        matches!(outcome, Err(bus::RequestError::NoResponders)),
        "{outcome:?}"
    );
}

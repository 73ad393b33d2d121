//! Nodes registered, started, stopped and removed at run time, over HTTP and NATS; health,
//! readiness and progress events.

use std::time::Duration;

use batch_ingest::test_util::{eventually, http_request};
use bus::Headers;
use bytes::Bytes;
use protocol::RoomEnvelope;
use protocol::batch::{BatchProgress, ConnectionState, NodeReply, NodeRequest};
use protocol::envelope::{decode_bus, encode_bus};
use serde_json::{Value, json};

use crate::helpers::{Sim, WAIT, ingest, sim_config, stored_hashes};

fn reply(text: &str) -> NodeReply {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("node reply: {text}"))
}

#[tokio::test]
async fn nodes_are_managed_over_http_at_run_time() {
    let sim = Sim::start(sim_config(20, 15)).await;
    let ingest = ingest(|_| {}).await;
    let register = json!({"id": "ml-20", "url": sim.ws_url, "active": false}).to_string();
    let (status, text) = http_request(ingest.addr, "POST", "/v1/nodes", register.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(!reply(&text).nodes[0].active);
    assert_eq!(sim.handle.counters().ws_accepted, 0);

    let (status, _) = http_request(ingest.addr, "POST", "/v1/nodes/ml-20/start", b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    let (_, text) = http_request(ingest.addr, "GET", "/v1/nodes", b"")
        .await
        .unwrap();
    assert_eq!(reply(&text).nodes[0].connection, ConnectionState::Connected);

    let (status, _) = http_request(ingest.addr, "POST", "/v1/nodes/ml-20/stop", b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    eventually(WAIT, "the client disconnects", || async {
        !sim.handle.is_client_connected()
    })
    .await;
    let (status, text) = http_request(ingest.addr, "DELETE", "/v1/nodes/ml-20", b"")
        .await
        .unwrap();
    assert_eq!(
        (status, reply(&text).nodes[0].connection),
        (200, ConnectionState::Unregistered)
    );
    let (status, text) = http_request(ingest.addr, "DELETE", "/v1/nodes/ml-20", b"")
        .await
        .unwrap();
    assert_eq!(status, 404, "{text}");
    assert_eq!(
        reply(&text).error.unwrap().code.as_str(),
        "node_not_connected"
    );
    let bad = json!({"id": "bad id", "url": "ws://x/y"}).to_string();
    let (status, _) = http_request(ingest.addr, "POST", "/v1/nodes", bad.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(stored_hashes(&ingest.bus).await, sim.expected_hashes());
    ingest.stop().await;
}

async fn api(bus: &bus::Bus, method: &str, request: &NodeRequest) -> NodeReply {
    let payload = Bytes::from(encode_bus(request).unwrap());
    let subject = format!("sb.api.batch_ingest.{method}");
    let answer = bus
        .request(&subject, Headers::new(), payload, Duration::from_secs(5))
        .await
        .unwrap();
    decode_bus(&answer.payload).unwrap()
}

#[tokio::test]
async fn nodes_are_managed_over_nats_requests() {
    let sim = Sim::start(sim_config(21, 10)).await;
    let ingest = ingest(|_| {}).await;
    let registered = api(
        &ingest.bus,
        "register_node",
        &NodeRequest {
            id: Some("ml-21".into()),
            url: Some(sim.ws_url.clone()),
            active: None,
        },
    )
    .await;
    assert!(
        registered.ok && registered.nodes[0].active,
        "{registered:?}"
    );
    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    let stopped = api(
        &ingest.bus,
        "stop_node",
        &NodeRequest {
            id: Some("ml-21".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(stopped.ok && !stopped.nodes[0].active);
    let listed = api(&ingest.bus, "list_nodes", &NodeRequest::default()).await;
    assert_eq!(listed.nodes.len(), 1);
    let unknown = api(
        &ingest.bus,
        "start_node",
        &NodeRequest {
            id: Some("nope".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(!unknown.ok);
    let missing_id = api(&ingest.bus, "remove_node", &NodeRequest::default()).await;
    assert_eq!(missing_id.error.unwrap().code.as_str(), "invalid_message");
    let removed = api(
        &ingest.bus,
        "remove_node",
        &NodeRequest {
            id: Some("ml-21".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(removed.ok);
    assert!(
        api(&ingest.bus, "list_nodes", &NodeRequest::default())
            .await
            .nodes
            .is_empty()
    );
    ingest.stop().await;
}

#[tokio::test]
async fn progress_goes_to_the_tasks_room_and_health_endpoints_answer() {
    let ingest = ingest(|_| {}).await;
    let mut room = ingest.bus.subscribe("sb.room.tasks").await.unwrap();
    let mut config = sim_config(22, 8);
    config.callback_url = Some(ingest.callback_url());
    let sim = Sim::start(config).await;
    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let progress = loop {
        let message = tokio::time::timeout_at(deadline, room.next())
            .await
            .unwrap()
            .unwrap();
        let envelope: RoomEnvelope = decode_bus(&message.payload).unwrap();
        assert_eq!(envelope.event, "batch_progress");
        let progress: BatchProgress = serde_json::from_value(envelope.data).unwrap();
        if progress.stored.generated + progress.stored.validated == 8 {
            break progress;
        }
    };
    assert_eq!(progress.node, "ml-node-22");
    assert_eq!(
        (progress.stored.generated, progress.stored.validated),
        (6, 2)
    );
    assert_eq!(progress.received.http, 8);

    let (status, text) = http_request(ingest.addr, "GET", "/readyz", b"")
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let (status, _) = http_request(ingest.addr, "GET", "/healthz", b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (_, text) = http_request(ingest.addr, "GET", "/v1/progress", b"")
        .await
        .unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all[0]["node"], "ml-node-22");
    ingest.stop().await;
}

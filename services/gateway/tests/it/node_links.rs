//! Node network figures: the RTT of the gateway's own pings on node connections, message
//! counts, reported on `sb.gateway.nodes.<server_id>`; and the node detail endpoints. One test
//! runs the gateway on a real `nats-server` (started by `bus::test_util::NatsServer`).

use std::time::Duration;

use bus::{Bus, Subscription};
use gateway::test_util::{TestGateway, get_json, http_request, test_config};
use protocol::envelope::decode_bus;
use protocol::nodes::NodeLinksReport;
use protocol::{ClientMessage, NodeState};
use store::Store;

use crate::helpers::{RawClient, SilentClient, node, token, viewer};

const WAIT: Duration = Duration::from_secs(5);

async fn next_report(reports: &mut Subscription) -> NodeLinksReport {
    let message = tokio::time::timeout(WAIT, reports.next())
        .await
        .expect("a node links report in time")
        .expect("subscription open");
    decode_bus(&message.payload).expect("report decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_connections_rtt_comes_from_the_pong_to_the_gateways_ping_and_its_messages_are_counted()
 {
    let bus = Bus::memory();
    let mut config = test_config();
    config.gateway.heartbeat_interval = Duration::from_millis(160);
    config.gateway.heartbeat_timeout = Duration::from_secs(30);
    let gateway = TestGateway::start(config, bus.clone(), Store::memory()).await;
    let mut reports = bus.subscribe("sb.gateway.nodes.*").await.unwrap();

    // A node agent that answers pings (tungstenite answers every ping it reads), one that
    // never answers, and a viewer, which is not a node and is not measured.
    let mut answering =
        RawClient::connect(&gateway, &token(&node("agent-a", "node-a")), None).await;
    let silent = SilentClient::connect(gateway.addr, &token(&node("agent-s", "node-s"))).await;
    let mut dashboard = RawClient::connect(&gateway, &token(&viewer("dash")), None).await;
    for update_count in 1..=3 {
        answering
            .send(&ClientMessage::NodeState(NodeState {
                node_id: "node-a".into(),
                update_count,
                ..NodeState::default()
            }))
            .await;
    }
    let (_, pings) = answering.read_for(Duration::from_millis(700)).await;
    assert!(pings >= 2, "{pings} pings");
    dashboard.read_for(Duration::from_millis(10)).await;

    let report = loop {
        let report = next_report(&mut reports).await;
        let measured = report
            .nodes
            .iter()
            .any(|link| link.node_id == "node-a" && link.rtt_smoothed_ms.is_some());
        if measured {
            break report;
        }
    };
    assert_eq!(report.gateway_id, gateway.server_id);
    assert_eq!(report.interval_ms, 160);
    let ids: Vec<&str> = report.nodes.iter().map(|l| l.node_id.as_str()).collect();
    assert_eq!(ids, ["node-a", "node-s"], "viewers are not measured");
    let answering_link = &report.nodes[0];
    let rtt = answering_link.rtt_last_ms.expect("newest rtt");
    // A loopback round trip: more than nothing, less than a second even on a busy machine.
    assert!(rtt > 0.0 && rtt < 1000.0, "rtt {rtt} ms");
    let smoothed = answering_link.rtt_smoothed_ms.unwrap();
    assert!(
        smoothed > 0.0 && smoothed < 1000.0,
        "smoothed {smoothed} ms"
    );
    assert_eq!(answering_link.connections, 1);
    assert_eq!(answering_link.messages_in, 3, "the three node_state frames");
    // connection_established and the heartbeat that went with the measured ping, at least.
    assert!(answering_link.messages_out >= 2, "{answering_link:?}");
    let silent_link = &report.nodes[1];
    assert_eq!(silent_link.connections, 1);
    assert_eq!(
        (silent_link.rtt_last_ms, silent_link.rtt_smoothed_ms),
        (None, None),
        "no pong, no round trip"
    );
    assert_eq!(silent_link.messages_in, 0);

    // A node that disconnects leaves the next report (sent at once on the close).
    drop(answering);
    let after = loop {
        let report = next_report(&mut reports).await;
        if report.nodes.iter().all(|link| link.node_id != "node-a") {
            break report;
        }
    };
    assert_eq!(after.nodes.len(), 1);
    drop(silent);
    gateway.shutdown().await.expect("clean drain");
    // The gateway's last word: no node connections.
    let last = loop {
        let report = next_report(&mut reports).await;
        if report.nodes.is_empty() {
            break report;
        }
    };
    assert_eq!(last.gateway_id, after.gateway_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_detail_checks_the_id_answers_503_without_a_publisher_and_follows_the_stats_access_rule()
 {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.private_operations = true;
    })
    .await;
    let key = gateway::test_util::TEST_API_KEY;
    let auth = format!("Bearer {key}");
    let headers = [("Authorization", auth.as_str())];
    let (status, _) = http_request(gateway.addr, "GET", "/api/ws/nodes/node-1", &[], "")
        .await
        .unwrap();
    assert_eq!(status, 401, "private like /api/ws/stats");
    let (status, body) = http_request(gateway.addr, "GET", "/api/ws/nodes/a.b", &headers, "")
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_message"), "{body}");
    let (status, body) = http_request(gateway.addr, "GET", "/api/ws/nodes/node-1", &headers, "")
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(body["error"]["message"], "no publisher answered");

    let open = TestGateway::start_memory(|_| {}).await;
    let (status, body) = get_json(open.addr, "/api/ws/nodes").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &serde_json::json!("unavailable"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_real_nats_the_report_carries_the_measured_rtt_and_node_detail_asks_the_publisher_subject()
 {
    use bus::Headers;
    use protocol::envelope::encode_bus;
    use protocol::metrics::ApiReply;
    use protocol::nodes::{NodeDetail, NodeRequest, api};

    let nats = bus::test_util::NatsServer::start().await;
    let mut config = test_config();
    config.bus.nats_url = Some(nats.url());
    config.gateway.heartbeat_interval = Duration::from_millis(200);
    let gateway_bus = gateway::connect_bus(&config).await.expect("nats reachable");
    let gateway = TestGateway::start(config, gateway_bus, Store::memory()).await;
    let observer = Bus::connect_nats(&nats.url(), bus::NatsOptions::default())
        .await
        .expect("nats reachable");
    let mut reports = observer
        .subscribe(&format!("sb.gateway.nodes.{}", gateway.server_id))
        .await
        .unwrap();
    observer.flush().await.unwrap();

    let mut agent = RawClient::connect(&gateway, &token(&node("agent-n", "nats-node")), None).await;
    agent.read_for(Duration::from_millis(600)).await;
    let measured = loop {
        let report = next_report(&mut reports).await;
        if let Some(link) = report
            .nodes
            .iter()
            .find(|link| link.node_id == "nats-node" && link.rtt_last_ms.is_some())
        {
            break link.clone();
        }
    };
    let rtt = measured.rtt_last_ms.unwrap();
    assert!(rtt > 0.0 && rtt < 1000.0, "{measured:?}");

    // The detail endpoint sends the node id to sb.api.publisher.get_node and passes the
    // answer through (a responder on NATS stands in for the publisher here; the e2e test
    // node_monitoring runs the real one).
    let mut requests = observer
        .queue_subscribe(&format!("sb.api.{}.*", api::SERVICE), api::QUEUE_GROUP)
        .await
        .unwrap();
    observer.flush().await.unwrap();
    let responder_bus = observer.clone();
    let responder = tokio::spawn(async move {
        let request = requests.next().await.expect("a request");
        assert_eq!(request.subject, "sb.api.publisher.get_node");
        let asked: NodeRequest = decode_bus(&request.payload).unwrap();
        assert_eq!(asked.node_id, "nats-node");
        let reply = encode_bus(&ApiReply::ok(NodeDetail {
            node_id: asked.node_id,
            layer: "edge".into(),
            ..NodeDetail::default()
        }));
        responder_bus
            .respond(&request, Headers::new(), reply.unwrap().into())
            .await
            .unwrap();
    });
    let (status, body) = get_json(gateway.addr, "/api/ws/nodes/nats-node").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["node_id"], &body["layer"]),
        (&serde_json::json!("nats-node"), &serde_json::json!("edge"))
    );
    responder.await.unwrap();
    drop(agent);
    gateway.shutdown().await.expect("clean drain");
}

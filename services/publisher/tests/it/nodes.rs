//! Clean stops against outages, the gateways' connection figures, and the node query API.

use std::time::Duration;

use bus::{Bus, Headers};
use bytes::Bytes;
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::ApiReply;
use protocol::nodes::{NodeDetail, NodeLink, NodeLinksReport, NodeList, NodeRequest, api};
use protocol::streams::{NodeRunState, NodeStatusUpdate, TopologyChange};
use protocol::{ErrorCode, Subjects};
use serde_json::json;
use store::Store;

use crate::helpers::{Received, RoomFeed, TestPublisher, fast_config, report, send_report};

const WAIT: Duration = Duration::from_secs(5);

fn data<T: serde::de::DeserializeOwned>(received: &Received) -> T {
    serde_json::from_value(received.envelope.data.clone()).expect("payload has its stream's shape")
}

fn has_change(received: &Received, node_id: &str, change: &str) -> bool {
    received.envelope.data["changes"]
        .as_array()
        .is_some_and(|changes| {
            changes
                .iter()
                .any(|c| c["node_id"] == node_id && c["change"] == change)
        })
}

/// What `client::agent::Agent::stop` sends last: the log ends with the `stop` operation.
fn final_state(node_id: &str, update_count: u64) -> protocol::NodeState {
    let mut state = report(node_id, "edge", update_count, json!({"cpu_percent": 4.0}));
    state.operation_log = vec![
        json!({"timestamp": "2026-12-02T10:00:00Z", "operation": "connected"}),
        json!({"timestamp": "2026-12-02T10:00:05Z", "operation": "stop"}),
    ];
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_sends_its_final_state_is_stopped_without_an_offline_alert_until_it_reports_again()
 {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut topology = RoomFeed::subscribe(&bus, "topology").await;
    let mut alerts = RoomFeed::subscribe(&bus, "alerts").await;
    let mut nodes_feed = RoomFeed::subscribe(&bus, "nodes").await;
    let config = fast_config();
    let node_timeout = config.publisher.node_timeout;
    let publisher = TestPublisher::start(config, "pub-a", &bus, &store).await;
    // n-1 keeps reporting; n-2 and n-3 report, then n-2 stops cleanly and n-3 falls silent.
    let keep_alive_bus = bus.clone();
    let keep_alive = tokio::spawn(async move {
        for round in 0.. {
            send_report(&keep_alive_bus, &report("n-1", "edge", round, json!({}))).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    for id in ["n-2", "n-3"] {
        send_report(&bus, &report(id, "edge", 1, json!({}))).await;
    }
    nodes_feed
        .next_matching(WAIT, |r| r.envelope.data["active_nodes"] == 3)
        .await;
    send_report(&bus, &final_state("n-2", 2)).await;

    let stopped = topology
        .next_matching(WAIT, |r| has_change(r, "n-2", "stopped"))
        .await;
    let stopped: TopologyChange = data(&stopped);
    assert_eq!(stopped.stopped_nodes, 1);
    assert!(!stopped.layers["edge"].contains(&"n-2".to_owned()));

    // Past the timeout n-3 is an outage, n-2 is not.
    let outage = topology
        .next_matching(WAIT + node_timeout, |r| has_change(r, "n-3", "offline"))
        .await;
    assert!(
        !has_change(&outage, "n-2", "offline"),
        "{:?}",
        outage.envelope.data
    );
    let status = nodes_feed
        .next_matching(WAIT, |r| r.envelope.data["offline_nodes"] == 1)
        .await;
    let status: NodeStatusUpdate = data(&status);
    let states: Vec<_> = status
        .nodes
        .iter()
        .map(|n| (n.node_id.as_str(), n.state, n.online))
        .collect();
    assert_eq!(
        states,
        [
            ("n-1", NodeRunState::Online, true),
            ("n-2", NodeRunState::Stopped, false),
            ("n-3", NodeRunState::Offline, false)
        ]
    );
    assert_eq!(
        (
            status.active_nodes,
            status.offline_nodes,
            status.stopped_nodes,
            status.total_nodes
        ),
        (1, 1, 1, 3)
    );
    assert_eq!(status.layers["edge"].stopped, 1);
    let offline_alert = alerts
        .next_matching(WAIT, |r| r.envelope.data["type"] == "node_offline")
        .await;
    assert_eq!(offline_alert.envelope.data["node_id"], "n-3");

    // The stopped node comes back: online again.
    send_report(&bus, &report("n-2", "edge", 1, json!({}))).await;
    topology
        .next_matching(WAIT, |r| has_change(r, "n-2", "online"))
        .await;
    let back = nodes_feed
        .next_matching(WAIT, |r| r.envelope.data["active_nodes"] == 2)
        .await;
    let back: NodeStatusUpdate = data(&back);
    assert_eq!(back.stopped_nodes, 0);

    // Every alert so far: none says n-2 went offline.
    while let Some(alert) = alerts.next_within(Duration::from_millis(200)).await {
        assert!(
            !(alert.envelope.data["type"] == "node_offline"
                && alert.envelope.data["node_id"] == "n-2"),
            "{:?}",
            alert.envelope.data
        );
    }
    keep_alive.abort();
    publisher.shutdown().await.expect("clean drain");
}

async fn send_links(bus: &Bus, report: &NodeLinksReport) {
    let subject = Subjects::default().gateway_node_links(&report.gateway_id);
    let payload = Bytes::from(encode_bus(report).expect("report encodes"));
    bus.publish(&subject, payload).await.expect("published");
}

fn link(node_id: &str, rtt: f64, messages: (u64, u64)) -> NodeLink {
    NodeLink {
        node_id: node_id.into(),
        connections: 1,
        rtt_last_ms: Some(rtt),
        rtt_smoothed_ms: Some(rtt),
        messages_in: messages.0,
        messages_out: messages.1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_figures_from_the_bus_are_merged_per_node_and_drop_out_when_the_gateway_falls_silent()
 {
    let (bus, store) = (Bus::memory(), Store::memory());
    let mut nodes_feed = RoomFeed::subscribe(&bus, "nodes").await;
    let publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    let reporting_bus = bus.clone();
    let reporting = tokio::spawn(async move {
        for round in 0.. {
            for id in ["n-1", "n-2"] {
                send_report(&reporting_bus, &report(id, "edge", round, json!({}))).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let gw_a = NodeLinksReport {
        gateway_id: "gw-a".into(),
        interval_ms: 200,
        timestamp_ms: 0,
        page: 0,
        pages: 1,
        nodes: vec![link("n-1", 2.0, (5, 8)), link("n-2", 4.0, (1, 1))],
    };
    // gw-b is silent after one report: three intervals later its figures are gone.
    let gw_b = NodeLinksReport {
        gateway_id: "gw-b".into(),
        interval_ms: 200,
        timestamp_ms: 0,
        page: 0,
        pages: 1,
        nodes: vec![link("n-1", 8.0, (10, 10))],
    };
    send_links(&bus, &gw_b).await;
    let links_bus = bus.clone();
    let links = tokio::spawn(async move {
        loop {
            send_links(&links_bus, &gw_a).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Misaddressed: ignored.
    let forged = NodeLinksReport {
        gateway_id: "gw-c".into(),
        interval_ms: 200,
        timestamp_ms: 0,
        page: 0,
        pages: 1,
        nodes: vec![link("n-2", 500.0, (0, 0))],
    };
    let payload = Bytes::from(encode_bus(&forged).expect("report encodes"));
    bus.publish(&Subjects::default().gateway_node_links("gw-a"), payload)
        .await
        .expect("published");

    let merged = nodes_feed
        .next_matching(WAIT, |r| {
            r.envelope.data["nodes"][0]["network"]["connections"] == 2
        })
        .await;
    let merged: NodeStatusUpdate = data(&merged);
    let n1 = merged.nodes[0].network.expect("n-1 has figures");
    assert_eq!((n1.messages_in, n1.messages_out), (15, 18));
    assert_eq!(n1.rtt_ms, Some(5.0));
    assert_eq!(merged.network.connections, 3);
    assert_eq!(merged.network.avg_rtt_ms, Some(4.5));

    let settled = nodes_feed
        .next_matching(WAIT, |r| {
            r.envelope.data["nodes"][0]["network"]["connections"] == 1
        })
        .await;
    let settled: NodeStatusUpdate = data(&settled);
    assert_eq!(
        settled.nodes[0].network.expect("n-1 figures").rtt_ms,
        Some(2.0)
    );
    assert_eq!(
        settled.nodes[1].network.expect("n-2 figures").rtt_ms,
        Some(4.0)
    );
    assert_eq!(settled.network.avg_rtt_ms, Some(3.0));
    assert_eq!(
        (settled.network.messages_in, settled.network.messages_out),
        (6, 9)
    );

    links.abort();
    let gone = nodes_feed
        .next_matching(WAIT, |r| {
            r.envelope.data["nodes"][0].get("network").is_none()
        })
        .await;
    let gone: NodeStatusUpdate = data(&gone);
    assert_eq!(gone.network.connections, 0);
    assert_eq!(gone.network.avg_rtt_ms, None);
    reporting.abort();
    publisher.shutdown().await.expect("clean drain");
}

async fn ask<T: serde::de::DeserializeOwned>(
    bus: &Bus,
    method: &str,
    request: &impl serde::Serialize,
) -> ApiReply<T> {
    let reply = bus
        .request(
            &Subjects::default().api(api::SERVICE, method),
            Headers::new(),
            Bytes::from(encode_bus(request).expect("request encodes")),
            WAIT,
        )
        .await
        .expect("a publisher answers");
    decode_bus(&reply.payload).expect("reply decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_api_answers_the_latest_report_in_full_and_node_not_found_for_strangers() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let publisher = TestPublisher::start(fast_config(), "pub-a", &bus, &store).await;
    let mut state = report("n-1", "core", 9, json!({"cpu_percent": 12.5}));
    state.operation_log = vec![json!({"operation": "sync", "count": 3})];
    send_report(&bus, &state).await;
    let request = NodeRequest {
        node_id: "n-1".into(),
    };
    let detail = loop {
        if let Some(detail) = ask::<NodeDetail>(&bus, api::GET_NODE, &request)
            .await
            .result
        {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((detail.layer.as_str(), detail.update_count), ("core", 9));
    assert_eq!(detail.state, NodeRunState::Online);
    assert_eq!(detail.current_data, json!({"cpu_percent": 12.5}));
    assert_eq!(
        detail.operation_log,
        [json!({"operation": "sync", "count": 3})]
    );
    assert_eq!(detail.network, None);

    let unknown = ask::<NodeDetail>(
        &bus,
        api::GET_NODE,
        &NodeRequest {
            node_id: "nobody".into(),
        },
    )
    .await;
    assert_eq!(
        unknown.error.expect("an error reply").code,
        ErrorCode::NodeNotFound
    );

    let list = ask::<NodeList>(&bus, api::LIST_NODES, &json!({})).await;
    let list = list.result.expect("a list");
    let nodes = list.nodes;
    assert_eq!((nodes.len(), list.total), (1, 1));
    assert_eq!(nodes[0].node_id, "n-1");
    publisher.shutdown().await.expect("clean drain");
}

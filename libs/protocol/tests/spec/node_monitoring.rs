//! Samples of the node monitoring payloads, built from the Rust types: the `data` of
//! `node_status_update`, `resource_update` and `topology_change`, the gateways' node links
//! report on `sb.gateway.nodes.<gateway_id>`, and the publisher's node detail. The room
//! message example in `room_message.schema.json` is checked against the payload schema too.

use std::collections::BTreeMap;

use serde_json::json;
use switchboard_protocol::nodes::{NodeDetail, NodeLink, NodeLinksReport};
use switchboard_protocol::streams::{
    LayerCounts, NetworkTotals, NodeChange, NodeNetwork, NodeResources, NodeRunState, NodeStatus,
    NodeStatusUpdate, ResourceFigures, ResourceUpdate, StorageUse, TopologyChange,
};
use switchboard_protocol::time::{now_rfc3339, now_unix_ms};

use crate::support::{Sample, Schemas, read_proto_file};

fn network() -> NodeNetwork {
    NodeNetwork {
        connections: 2,
        rtt_ms: Some(0.42),
        messages_in: 45,
        messages_out: 61,
    }
}

fn status(state: NodeRunState, network: Option<NodeNetwork>) -> NodeStatus {
    NodeStatus {
        node_id: "edge-1".into(),
        layer: "edge".into(),
        online: state == NodeRunState::Online,
        state,
        update_count: 42,
        last_seen: now_rfc3339(),
        last_sync_time: Some(now_rfc3339()),
        last_sync_count: 3,
        network,
    }
}

fn node_status_update(nodes: Vec<NodeStatus>, avg_rtt_ms: Option<f64>) -> NodeStatusUpdate {
    NodeStatusUpdate {
        active_nodes: 1,
        offline_nodes: 1,
        stopped_nodes: 1,
        total_nodes: 3,
        total_updates: 90,
        reports_received: 91,
        layers: BTreeMap::from([(
            "edge".to_owned(),
            LayerCounts {
                active: 1,
                offline: 1,
                stopped: 1,
            },
        )]),
        nodes,
        network: NetworkTotals {
            connections: 2,
            avg_rtt_ms,
            messages_in: 45,
            messages_out: 61,
        },
        tick: 352_980_600,
        lease_epoch: 3,
    }
}

fn storage() -> Vec<StorageUse> {
    vec![StorageUse {
        mount: "/".into(),
        used_bytes: 700,
        total_bytes: 1000,
        used_percent: 73.68,
    }]
}

fn figures() -> ResourceFigures {
    ResourceFigures {
        cpu_percent: Some(12.5),
        memory_used_percent: Some(41.2),
        disk_used_percent: Some(73.68),
        load_1m: Some(0.4),
    }
}

fn link(rtt: Option<f64>) -> NodeLink {
    NodeLink {
        node_id: "edge-1".into(),
        connections: 1,
        rtt_last_ms: rtt,
        rtt_smoothed_ms: rtt,
        messages_in: 3,
        messages_out: 4,
    }
}

fn detail(network: Option<NodeNetwork>) -> NodeDetail {
    NodeDetail {
        node_id: "edge-1".into(),
        layer: "edge".into(),
        state: NodeRunState::Stopped,
        online: false,
        last_seen: now_rfc3339(),
        update_count: 42,
        last_sync_time: Some(now_rfc3339()),
        last_sync_count: 3,
        current_data: json!({"cpu_percent": 12.5, "storage": [{"mount": "/", "used_bytes": 1, "total_bytes": 2, "used_percent": 50.0}]}),
        operation_log: vec![json!({"timestamp": now_rfc3339(), "operation": "stop"})],
        network,
    }
}

/// Every field set.
pub fn samples_with_every_field() -> Vec<Sample> {
    vec![
        Sample::bus(
            "node_status_update.schema.json",
            "node_status_update",
            &node_status_update(
                vec![status(NodeRunState::Online, Some(network()))],
                Some(0.42),
            ),
        ),
        Sample::bus(
            "resource_update.schema.json",
            "resource_update",
            &ResourceUpdate {
                nodes_reporting: 1,
                average: figures(),
                max: figures(),
                top: vec![NodeResources {
                    node_id: "edge-1".into(),
                    layer: "edge".into(),
                    figures: figures(),
                    storage: storage(),
                }],
                tick: 7,
                lease_epoch: 3,
            },
        ),
        Sample::bus(
            "topology_change.schema.json",
            "topology_change",
            &TopologyChange {
                changes: vec![NodeChange {
                    node_id: "edge-2".into(),
                    layer: "edge".into(),
                    change: "stopped".into(),
                }],
                layers: BTreeMap::from([("edge".to_owned(), vec!["edge-1".to_owned()])]),
                active_nodes: 1,
                stopped_nodes: 1,
                total_nodes: 2,
                lease_epoch: 3,
            },
        ),
        Sample::bus(
            "node_links_report.schema.json",
            "node links report",
            &NodeLinksReport {
                gateway_id: "gw-1".into(),
                interval_ms: 5_000,
                timestamp_ms: now_unix_ms(),
                page: 0,
                pages: 1,
                nodes: vec![link(Some(0.3))],
            },
        ),
        Sample::bus(
            "node_detail.schema.json",
            "node detail",
            &detail(Some(network())),
        ),
    ]
}

/// Optional fields left out: no network figures, no RTT yet, no storage, no figures at all.
pub fn samples_with_optional_fields_absent() -> Vec<Sample> {
    let mut bare = status(NodeRunState::Offline, None);
    bare.last_sync_time = None;
    let no_rtt = NodeNetwork {
        rtt_ms: None,
        ..network()
    };
    vec![
        Sample::bus(
            "node_status_update.schema.json",
            "node_status_update without figures",
            &node_status_update(
                vec![bare, status(NodeRunState::Stopped, Some(no_rtt))],
                None,
            ),
        ),
        Sample::bus(
            "resource_update.schema.json",
            "resource_update without reports",
            &ResourceUpdate::default(),
        ),
        Sample::bus(
            "node_links_report.schema.json",
            "node links report before any pong",
            &NodeLinksReport {
                gateway_id: "gw-1".into(),
                interval_ms: 5_000,
                timestamp_ms: now_unix_ms(),
                page: 0,
                pages: 1,
                nodes: vec![link(None)],
            },
        ),
        Sample::bus("node_detail.schema.json", "node detail", &detail(None)),
    ]
}

#[test]
fn the_room_message_example_of_node_status_update_is_what_the_publisher_sends() {
    let schemas = Schemas::load();
    let room_message: serde_json::Value =
        serde_json::from_str(&read_proto_file("schemas/room_message.schema.json")).unwrap();
    let example = room_message["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|example| example["type"] == "node_status_update")
        .expect("room_message.schema.json has a node_status_update example");
    let errors = schemas.errors("node_status_update.schema.json", &example["data"]);
    assert!(errors.is_empty(), "{errors:?}");
    let update: NodeStatusUpdate = serde_json::from_value(example["data"].clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        example["data"],
        "the example is exactly what NodeStatusUpdate writes"
    );
    assert_eq!(example["seq"], update.tick);
}

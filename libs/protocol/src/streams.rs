//! The six monitoring streams of seed 001: their rooms, event names and payloads, as the
//! publisher sends them in [`RoomEnvelope::data`](crate::RoomEnvelope) and dashboards read
//! them from room messages.
//!
//! | room | event | cadence | payload |
//! | --- | --- | --- | --- |
//! | `nodes` | `node_status_update` | 5 s | [`NodeStatusUpdate`] |
//! | `tasks` | `task_progress_update` | 2 s | [`TaskProgressUpdate`] |
//! | `metrics` | `metrics_update` | 10 s | [`MetricsUpdate`] |
//! | `resources` | `resource_update` | 15 s | [`ResourceUpdate`] |
//! | `topology` | `topology_change` | on change | [`TopologyChange`] |
//! | `alerts` | `alert` | immediately | [`Alert`] |
//!
//! Periodic payloads carry `tick` (the wall-clock interval they belong to: unix time divided
//! by the interval, so the same `tick` is never published twice) and every payload from the
//! publisher carries `lease_epoch` (the fencing token of the publisher's leader lease; a
//! larger epoch means a newer leader). The envelope's `seq` equals `tick`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Room names of the six streams.
pub mod rooms {
    /// Node status.
    pub const NODES: &str = "nodes";
    /// Task progress.
    pub const TASKS: &str = "tasks";
    /// System health and service status.
    pub const METRICS: &str = "metrics";
    /// Alerts (publisher and aggregator).
    pub const ALERTS: &str = "alerts";
    /// Node resource use.
    pub const RESOURCES: &str = "resources";
    /// Topology changes.
    pub const TOPOLOGY: &str = "topology";
}

/// Event names (the room message `type`) of the six streams.
pub mod events {
    /// `nodes` room.
    pub const NODE_STATUS_UPDATE: &str = "node_status_update";
    /// `tasks` room.
    pub const TASK_PROGRESS_UPDATE: &str = "task_progress_update";
    /// `metrics` room.
    pub const METRICS_UPDATE: &str = "metrics_update";
    /// `resources` room.
    pub const RESOURCE_UPDATE: &str = "resource_update";
    /// `topology` room.
    pub const TOPOLOGY_CHANGE: &str = "topology_change";
    /// `alerts` room.
    pub const ALERT: &str = "alert";
}

/// One monitoring stream of the catalogue: its room, event, the publisher's default cadence
/// and what it carries (served by the gateway's `GET /api/ws/streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// Room name.
    pub room: &'static str,
    /// Event name (the room message `type`).
    pub event: &'static str,
    /// The publisher's default interval; `None` for streams sent on change.
    pub default_interval_ms: Option<u64>,
    /// One line for people.
    pub description: &'static str,
}

/// The six streams in the order the dashboard shows them (the table at the top of this module).
pub const CATALOGUE: [StreamSpec; 6] = [
    StreamSpec {
        room: rooms::NODES,
        event: events::NODE_STATUS_UPDATE,
        default_interval_ms: Some(5_000),
        description: "Node status: active and offline nodes, per-node state",
    },
    StreamSpec {
        room: rooms::TASKS,
        event: events::TASK_PROGRESS_UPDATE,
        default_interval_ms: Some(2_000),
        description: "Task progress and job queue statistics",
    },
    StreamSpec {
        room: rooms::METRICS,
        event: events::METRICS_UPDATE,
        default_interval_ms: Some(10_000),
        description: "System health metrics and service status",
    },
    StreamSpec {
        room: rooms::ALERTS,
        event: events::ALERT,
        default_interval_ms: None,
        description: "Threshold violations and anomaly detections, sent immediately",
    },
    StreamSpec {
        room: rooms::RESOURCES,
        event: events::RESOURCE_UPDATE,
        default_interval_ms: Some(15_000),
        description: "Device resource utilisation",
    },
    StreamSpec {
        room: rooms::TOPOLOGY,
        event: events::TOPOLOGY_CHANGE,
        default_interval_ms: None,
        description: "Network topology changes, sent on change",
    },
];

/// The catalogue entry of `room`, if it is one of the six streams.
pub fn stream_of_room(room: &str) -> Option<&'static StreamSpec> {
    CATALOGUE.iter().find(|stream| stream.room == room)
}

/// The catalogue's default interval of `room` as a [`std::time::Duration`] (the publisher's
/// defaults come from here); zero for streams sent on change and for unknown rooms.
pub fn default_interval(room: &str) -> std::time::Duration {
    stream_of_room(room)
        .and_then(|stream| stream.default_interval_ms)
        .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis)
}

/// Bus header carrying the publisher's lease epoch (fencing token) on every room message it
/// publishes, so consumers can drop messages from a deposed leader.
pub const HEADER_LEASE_EPOCH: &str = "Sb-Lease-Epoch";

/// `node_status_update`: every known node and the counts dashboards show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeStatusUpdate {
    /// Nodes that reported within the node timeout.
    pub active_nodes: u64,
    /// Known nodes that have not reported within the node timeout (an outage: they did not
    /// say goodbye).
    pub offline_nodes: u64,
    /// Known nodes whose last report was their agent's final state (a clean stop).
    #[serde(default)]
    pub stopped_nodes: u64,
    /// `active_nodes + offline_nodes + stopped_nodes`.
    pub total_nodes: u64,
    /// Sum of the nodes' `update_count`s.
    pub total_updates: u64,
    /// State reports received from all nodes since this publisher started.
    pub reports_received: u64,
    /// Active and offline counts per layer.
    pub layers: BTreeMap<String, LayerCounts>,
    /// One entry per known node, sorted by node id.
    pub nodes: Vec<NodeStatus>,
    /// Network figures over all listed nodes, as the gateways measure them.
    #[serde(default)]
    pub network: NetworkTotals,
    /// The interval this update belongs to.
    pub tick: u64,
    /// The publisher's lease epoch.
    pub lease_epoch: u64,
}

/// Node counts of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LayerCounts {
    /// Online nodes.
    pub active: u64,
    /// Offline nodes (silent past the timeout).
    pub offline: u64,
    /// Nodes that stopped cleanly.
    #[serde(default)]
    pub stopped: u64,
}

/// Where a node stands, in [`NodeStatus::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NodeRunState {
    /// Reported within the node timeout.
    #[default]
    Online,
    /// Silent past the node timeout without a final state: an outage.
    Offline,
    /// Its last report was the agent's final state (a clean stop, no alert).
    Stopped,
}

impl NodeRunState {
    /// The wire name (`online`, `offline`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRunState::Online => "online",
            NodeRunState::Offline => "offline",
            NodeRunState::Stopped => "stopped",
        }
    }
}

/// One node's connection figures, measured by the gateways holding its connections and
/// merged over them (in [`NodeStatus::network`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeNetwork {
    /// Open connections of the node, over all gateways.
    pub connections: u64,
    /// Smoothed round-trip time of the gateways' WebSocket pings, in ms (mean over the
    /// node's connections); `null` until a pong has come back.
    pub rtt_ms: Option<f64>,
    /// Messages the gateways received on the node's connections.
    pub messages_in: u64,
    /// Messages the gateways wrote to the node's connections.
    pub messages_out: u64,
}

/// Network figures over all nodes of a [`NodeStatusUpdate`] (seed 001's `connections`,
/// latency, messages sent and received), from real measurements only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct NetworkTotals {
    /// Open node connections.
    pub connections: u64,
    /// Mean of the nodes' `rtt_ms`; `null` when no node has one.
    pub avg_rtt_ms: Option<f64>,
    /// Messages received from nodes.
    pub messages_in: u64,
    /// Messages sent to nodes.
    pub messages_out: u64,
}

/// One node in [`NodeStatusUpdate::nodes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub node_id: String,
    /// Its layer, as last reported.
    pub layer: String,
    /// Whether it reported within the node timeout (and has not stopped).
    pub online: bool,
    /// `online`, `offline` (silent: an outage) or `stopped` (a clean stop).
    #[serde(default)]
    pub state: NodeRunState,
    /// Its `update_count`, as last reported.
    pub update_count: u64,
    /// When its last report arrived (RFC 3339).
    pub last_seen: String,
    /// Its `last_sync_time`, as last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Its `last_sync_count`, as last reported.
    #[serde(default)]
    pub last_sync_count: u64,
    /// Its connection figures; absent when no gateway reports a connection of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NodeNetwork>,
}

/// `task_progress_update`: tasks reported by nodes (and, later, batch events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TaskProgressUpdate {
    /// Tasks waiting to run.
    pub pending: u64,
    /// Tasks running.
    pub running: u64,
    /// Tasks finished successfully.
    pub completed: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Individual tasks, when sources report them one by one (running first).
    pub tasks: Vec<TaskStatus>,
    /// The interval this update belongs to.
    pub tick: u64,
    /// The publisher's lease epoch.
    pub lease_epoch: u64,
}

/// One task in [`TaskProgressUpdate::tasks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task's id.
    pub task_id: String,
    /// Where it runs (a node id).
    pub source: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// Progress from 0 to 100, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// A human-readable name, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `metrics_update`: system health and the status of each component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricsUpdate {
    /// `healthy`, `degraded` or `critical`.
    pub system_health: String,
    /// 0–100: the share of components up (degraded counts half).
    pub health_score: f64,
    /// Status per component, keyed by the names in [`components`]: `bus`, `store`,
    /// `gateways`, `nodes`, `publisher`, `aggregator`, `batch_ingest`, `device_reader`.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Online nodes.
    pub active_nodes: u64,
    /// Offline nodes.
    pub offline_nodes: u64,
    /// Node state reports per second over the last interval.
    pub reports_per_second: f64,
    /// Node state reports that could not be decoded, since start.
    pub rejected_reports: u64,
    /// The interval this update belongs to.
    pub tick: u64,
    /// The publisher's lease epoch.
    pub lease_epoch: u64,
}

/// Names of the components in [`MetricsUpdate::services`]. The service names are also the
/// names their instances announce their liveness under (the store's `sb:svc:<service>`).
pub mod components {
    /// The message bus.
    pub const BUS: &str = "bus";
    /// The metadata store.
    pub const STORE: &str = "store";
    /// The gateway replicas (their liveness entries in the store).
    pub const GATEWAYS: &str = "gateways";
    /// The node agents (their state reports).
    pub const NODES: &str = "nodes";
    /// The publisher replicas.
    pub const PUBLISHER: &str = "publisher";
    /// The aggregator replicas.
    pub const AGGREGATOR: &str = "aggregator";
    /// The batch-ingest instances.
    pub const BATCH_INGEST: &str = "batch_ingest";
    /// The device readers.
    pub const DEVICE_READER: &str = "device_reader";
    /// The services that announce the liveness of their instances.
    pub const ANNOUNCED: [&str; 4] = [PUBLISHER, AGGREGATOR, BATCH_INGEST, DEVICE_READER];
}

/// One component in [`MetricsUpdate::services`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ServiceStatus {
    /// `up` (every instance seen lately is live), `degraded` (some are), `down` (it was seen
    /// and none is live now, or the probe failed) or `unknown` (never seen, or no way to tell).
    pub status: String,
    /// A short explanation (`"2 of 2 instances up"`, `"no instance seen"`, `"redis"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Live instances, for components made of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_up: Option<u64>,
    /// Instances seen within the last hour (live or silent), for components made of instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
    /// Round-trip time of the health probe, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// `resource_update`: resource use reported by the nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ResourceUpdate {
    /// Online nodes that report at least one resource figure.
    pub nodes_reporting: u64,
    /// Averages over the reporting nodes; a figure no node reports is absent.
    pub average: ResourceFigures,
    /// Maxima over the reporting nodes.
    pub max: ResourceFigures,
    /// Up to ten nodes, busiest CPU first.
    pub top: Vec<NodeResources>,
    /// The interval this update belongs to.
    pub tick: u64,
    /// The publisher's lease epoch.
    pub lease_epoch: u64,
}

/// Resource figures as node agents report them in `current_data`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct ResourceFigures {
    /// CPU use, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Memory in use, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_percent: Option<f64>,
    /// Storage in use, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_percent: Option<f64>,
    /// One-minute load average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_1m: Option<f64>,
}

/// One node in [`ResourceUpdate::top`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResources {
    /// The node's id.
    pub node_id: String,
    /// Its layer.
    pub layer: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: ResourceFigures,
    /// Disk use per watched mount, as reported in `current_data.storage`; empty when the
    /// node reports none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageUse>,
}

/// Disk use of one mount, as the node agent reports it (`current_data.storage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageUse {
    /// The watched path (`/`, `/var/lib/data`).
    pub mount: String,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
    /// Used share of the space available to ordinary users, 0–100 (as `df` shows it).
    pub used_percent: f64,
}

/// `topology_change`: what changed, and the topology after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TopologyChange {
    /// The changes since the previous `topology_change`.
    pub changes: Vec<NodeChange>,
    /// Online node ids per layer, after the changes.
    pub layers: BTreeMap<String, Vec<String>>,
    /// Online nodes after the changes.
    pub active_nodes: u64,
    /// Stopped nodes after the changes.
    #[serde(default)]
    pub stopped_nodes: u64,
    /// Known nodes after the changes.
    pub total_nodes: u64,
    /// The publisher's lease epoch.
    pub lease_epoch: u64,
}

/// One change in [`TopologyChange::changes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChange {
    /// The node concerned.
    pub node_id: String,
    /// Its layer (the new one for `layer_changed`).
    pub layer: String,
    /// `joined` (first report), `online` (reports again after being offline or stopped),
    /// `offline` (no report within the timeout: an outage), `stopped` (its agent sent its
    /// final state: a clean stop), `left` (forgotten after a long silence) or
    /// `layer_changed`.
    pub change: String,
}

/// `alert`: something an operator should look at (seed 001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Alert {
    /// What happened: `node_offline`, `node_online`, `threshold_exceeded`,
    /// `anomaly_detected`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `critical`, `warning`/`high`/`medium`, or `info`.
    pub severity: String,
    /// One sentence for humans.
    pub message: String,
    /// The node concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The metric concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The value that triggered the alert, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// The publisher's lease epoch, for alerts the publisher derives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_epoch: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_update_has_the_fields_dashboards_read() {
        let update = NodeStatusUpdate {
            active_nodes: 1,
            total_nodes: 1,
            nodes: vec![NodeStatus {
                node_id: "n-1".into(),
                layer: "edge".into(),
                online: true,
                state: NodeRunState::Online,
                update_count: 4,
                last_seen: "2025-10-22T10:30:00.000Z".into(),
                last_sync_time: None,
                last_sync_count: 0,
                network: None,
            }],
            ..NodeStatusUpdate::default()
        };
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(json["active_nodes"], 1);
        assert_eq!(json["offline_nodes"], 0);
        assert_eq!(json["nodes"][0]["node_id"], "n-1");
        assert_eq!(json["nodes"][0]["online"], true);
        assert_eq!(json["nodes"][0]["state"], "online");
        assert!(json["nodes"][0].get("last_sync_time").is_none());
        assert!(json["nodes"][0].get("network").is_none());
        assert_eq!(json["network"]["connections"], 0);
        assert!(json["network"]["avg_rtt_ms"].is_null());
        let back: NodeStatusUpdate = serde_json::from_value(json).unwrap();
        assert_eq!(back, update);
    }

    #[test]
    fn alert_type_is_named_type_and_node_resources_are_flat() {
        let alert = Alert {
            kind: "node_offline".into(),
            severity: "warning".into(),
            ..Alert::default()
        };
        assert_eq!(
            serde_json::to_value(&alert).unwrap()["type"],
            "node_offline"
        );
        let node = NodeResources {
            node_id: "n".into(),
            layer: "l".into(),
            figures: ResourceFigures {
                cpu_percent: Some(5.0),
                ..ResourceFigures::default()
            },
            storage: Vec::new(),
        };
        let json = serde_json::to_value(&node).unwrap();
        assert_eq!(json["cpu_percent"], 5.0);
        assert!(json.get("load_1m").is_none());
    }

    #[test]
    fn every_stream_room_is_a_standard_room() {
        for room in [
            rooms::NODES,
            rooms::TASKS,
            rooms::METRICS,
            rooms::ALERTS,
            rooms::RESOURCES,
            rooms::TOPOLOGY,
        ] {
            assert!(crate::room::STANDARD_ROOMS.contains(&room), "{room}");
        }
        for event in [
            events::NODE_STATUS_UPDATE,
            events::TASK_PROGRESS_UPDATE,
            events::METRICS_UPDATE,
            events::RESOURCE_UPDATE,
            events::TOPOLOGY_CHANGE,
            events::ALERT,
        ] {
            assert!(crate::message::is_valid_event_name(event), "{event}");
        }
    }
}

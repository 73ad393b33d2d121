//! Node figures that travel between services: the connection figures gateways measure on
//! node connections (`sb.gateway.nodes.<gateway_id>`, gateway → publisher) and the node
//! detail query the gateway's HTTP API asks the publisher (`sb.api.publisher.<method>`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::streams::{NodeNetwork, NodeRunState, NodeStatus};

/// Every `sb.gateway.nodes.<gateway_id>` message: a full snapshot of one gateway's node
/// connections, in `pages` messages of at most [`NodeLinksReport::MAX_NODES_PER_PAGE`] nodes
/// each (so a gateway holding many nodes stays far below NATS's 1 MB payload limit).
/// Gateways send one every `interval_ms` and another soon after a node connection closes; a
/// page replaces the same page of the previous snapshot, pages at or past `pages` are gone,
/// and a page older than [`NodeLinksReport::stale_after_ms`] is dropped by its consumers (the
/// gateway is gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeLinksReport {
    /// The reporting gateway's `server_id`.
    pub gateway_id: String,
    /// How often this gateway reports.
    pub interval_ms: u64,
    /// When the snapshot was taken (Unix ms).
    pub timestamp_ms: u64,
    /// This page's index in the snapshot, from 0.
    #[serde(default)]
    pub page: u32,
    /// How many pages the snapshot has (at least 1; an empty snapshot is one empty page).
    #[serde(default = "one_page")]
    pub pages: u32,
    /// This page's nodes (with at least one connection on this gateway), sorted by node id.
    pub nodes: Vec<NodeLink>,
}

fn one_page() -> u32 {
    1
}

impl NodeLinksReport {
    /// Reports missed before a snapshot counts as stale: three, so one lost message does not
    /// make figures blink.
    pub const MISSED_REPORTS: u64 = 3;

    /// Most nodes in one page: about 115 bytes each in MessagePack, so a page stays near
    /// 256 KB.
    pub const MAX_NODES_PER_PAGE: usize = 2_000;

    /// How long after its arrival this snapshot stays valid.
    pub fn stale_after_ms(&self) -> u64 {
        self.interval_ms
            .max(100)
            .saturating_mul(Self::MISSED_REPORTS)
    }
}

/// One node's connections on one gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeLink {
    /// The node (the `node_id` claim of its connections' tokens).
    pub node_id: String,
    /// Its open connections on this gateway.
    pub connections: u64,
    /// Round-trip time of the newest answered WebSocket ping, in ms (the connection with the
    /// newest answer); `None` before any pong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_last_ms: Option<f64>,
    /// Smoothed round-trip time (exponentially weighted, 1/8 per sample as TCP's SRTT), mean
    /// over its connections that have one; `None` before any pong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_smoothed_ms: Option<f64>,
    /// Protocol messages received on its connections (text and binary frames).
    pub messages_in: u64,
    /// Messages written to its connections (text and binary frames).
    pub messages_out: u64,
}

impl NodeLink {
    /// The figures of this link as a [`NodeNetwork`] (smoothed RTT as `rtt_ms`).
    pub fn network(&self) -> NodeNetwork {
        NodeNetwork {
            connections: self.connections,
            rtt_ms: self.rtt_smoothed_ms,
            messages_in: self.messages_in,
            messages_out: self.messages_out,
        }
    }
}

/// Names of the publisher's query API on `sb.api.publisher.<method>`.
pub mod api {
    /// The `<service>` token.
    pub const SERVICE: &str = "publisher";
    /// `get_node`: [`NodeRequest`](super::NodeRequest) → [`NodeDetail`](super::NodeDetail)
    /// (`node_not_found` error when unknown).
    pub const GET_NODE: &str = "get_node";
    /// `list_nodes`: [`ListNodesRequest`](super::ListNodesRequest) →
    /// [`NodeList`](super::NodeList).
    pub const LIST_NODES: &str = "list_nodes";
    /// Queue group of the replicas: each request is answered by one of them (every replica
    /// consumes every report, so any one knows every node).
    pub const QUEUE_GROUP: &str = "sb-publisher-api";
}

/// `get_node` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeRequest {
    /// The node asked about.
    pub node_id: String,
}

/// `list_nodes` request (no parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ListNodesRequest {}

/// `list_nodes` reply: the known nodes as `node_status_update` lists them, the first
/// [`NodeList::MAX_NODES`] by node id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeList {
    /// Sorted by node id; at most [`NodeList::MAX_NODES`].
    pub nodes: Vec<NodeStatus>,
    /// Known nodes, listed or not.
    #[serde(default)]
    pub total: u64,
}

impl NodeList {
    /// Most nodes in one reply: about 250 bytes each, so a reply stays far below NATS's 1 MB
    /// payload limit.
    pub const MAX_NODES: usize = 2_000;
}

/// `get_node` reply and `GET /api/ws/nodes/{node_id}`: a node's latest state report with what
/// the publisher knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeDetail {
    /// The node's id.
    pub node_id: String,
    /// Its layer, as last reported.
    pub layer: String,
    /// `online`, `offline` or `stopped`.
    pub state: NodeRunState,
    /// `state == online`.
    pub online: bool,
    /// When its last report arrived (RFC 3339).
    pub last_seen: String,
    /// Its `update_count`, as last reported.
    pub update_count: u64,
    /// Its `last_sync_time`, as last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Its `last_sync_count`, as last reported.
    #[serde(default)]
    pub last_sync_count: u64,
    /// Its `current_data`, as last reported.
    #[serde(default)]
    pub current_data: Value,
    /// Its `operation_log`, as last reported (newest last).
    #[serde(default)]
    pub operation_log: Vec<Value>,
    /// Its connection figures; absent when no gateway reports a connection of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NodeNetwork>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_goes_stale_after_three_intervals_and_links_map_to_node_figures() {
        let report = NodeLinksReport {
            interval_ms: 5_000,
            ..NodeLinksReport::default()
        };
        assert_eq!(report.stale_after_ms(), 15_000);
        let link = NodeLink {
            node_id: "n".into(),
            connections: 2,
            rtt_last_ms: Some(1.5),
            rtt_smoothed_ms: Some(1.25),
            messages_in: 3,
            messages_out: 4,
        };
        let network = link.network();
        assert_eq!(network.rtt_ms, Some(1.25));
        assert_eq!((network.connections, network.messages_out), (2, 4));
        let detail = NodeDetail {
            node_id: "n".into(),
            state: NodeRunState::Stopped,
            ..NodeDetail::default()
        };
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json["state"], "stopped");
        assert!(json.get("network").is_none());
    }
}

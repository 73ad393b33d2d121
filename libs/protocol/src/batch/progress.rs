//! What batch-ingest reports about itself: per-node progress events in the `tasks` room, and
//! the node records of its management API (HTTP `/v1/nodes`, NATS `sb.api.batch_ingest.*`).

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// The state of batch-ingest's WebSocket client for one ML node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// The node's work is stopped; no connection is attempted.
    Stopped,
    /// Connecting, or waiting 3-5 s before the next attempt after a failure.
    Connecting,
    /// Connected; batches arrive over the WebSocket.
    Connected,
    /// The node closed with 1008 (another client, or PoW not running); retrying.
    Refused,
    /// Not a registered node: its batches arrive only over the HTTP callbacks.
    Unregistered,
}

impl ConnectionState {
    /// Every state, for metrics that export one series per state.
    pub const ALL: [ConnectionState; 5] = [
        ConnectionState::Stopped,
        ConnectionState::Connecting,
        ConnectionState::Connected,
        ConnectionState::Refused,
        ConnectionState::Unregistered,
    ];

    /// Returns the snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Stopped => "stopped",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Refused => "refused",
            ConnectionState::Unregistered => "unregistered",
        }
    }
}

/// Counts per batch kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KindCounts {
    /// Generated batches.
    pub generated: u64,
    /// Validated batches.
    pub validated: u64,
}

/// Counts per delivery path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PathCounts {
    /// Over the node's WebSocket.
    pub websocket: u64,
    /// Over the HTTP callbacks.
    pub http: u64,
}

/// The `data` of a [`super::PROGRESS_EVENT`] room message in [`super::PROGRESS_ROOM`]: one
/// node's totals since batch-ingest started, sent at most once per progress interval and
/// only when something changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// The node's configured id; `ml-node-<node_num>` for batches from an unregistered node.
    pub node: String,
    /// The ML node's numeric id, once a batch from it was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_num: Option<u64>,
    /// The WebSocket client's state.
    pub connection: ConnectionState,
    /// Batches stored in JetStream for the first time, by kind.
    pub stored: KindCounts,
    /// Deliveries of batches already stored (the second path, or a retry), acknowledged
    /// without storing.
    pub duplicates: u64,
    /// Deliveries refused as invalid.
    pub invalid: u64,
    /// Valid deliveries, by path (stored and duplicate alike).
    pub received: PathCounts,
    /// Block height of the node's latest batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block_height: Option<i64>,
}

/// A request to batch-ingest's management API; which fields matter depends on the method.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeRequest {
    /// The node's id (every method but `list_nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The node's WebSocket URL (`register_node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether to start the node's worker at once (`register_node`; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// One registered ML node as the management API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id.
    pub id: String,
    /// The node's WebSocket URL.
    pub url: String,
    /// Whether its work is started.
    pub active: bool,
    /// The WebSocket client's state.
    pub connection: ConnectionState,
}

/// The reply of batch-ingest's management API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The affected node (register, start, stop, remove) or every node (list).
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// A failed management request: a code from the closed set and a short public reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error code.
    pub code: ErrorCode,
    /// What went wrong, for the operator.
    pub message: String,
}

//! `GET /api/ws/nodes` and `GET /api/ws/nodes/{node_id}`: the node list and one node's
//! detail view (its latest state report in full: `current_data`, `operation_log`, state and
//! connection figures), asked of the publisher over the bus on
//! `sb.api.publisher.list_nodes|get_node`.
//!
//! The publisher holds the node registry (every replica consumes every report), so the
//! gateway stays stateless and the answer is the same from any gateway of a cluster and in
//! the embedded `switchboard`, where the same request travels over the in-memory bus.
//! A malformed id is 400 `invalid_message`; a node no publisher knows is 404
//! `node_not_found`; no publisher answering within [`PUBLISHER_TIMEOUT`] is 503 `unavailable`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use protocol::ErrorCode;
use protocol::nodes::{ListNodesRequest, NodeDetail, NodeList, NodeRequest, api};

use crate::bus_api::{proxy, refuse};
use crate::state::Shared;

/// How long the publisher may take to answer: it answers from memory, so only a missing or
/// stuck publisher takes this long.
const PUBLISHER_TIMEOUT: Duration = Duration::from_secs(3);

/// Who answers, for the 503's message.
const WHO: &str = "publisher";

/// `GET /api/ws/nodes`: every known node as `node_status_update` lists it.
pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Response {
    proxy::<_, NodeList>(
        &shared,
        (api::SERVICE, WHO),
        api::LIST_NODES,
        &ListNodesRequest {},
        PUBLISHER_TIMEOUT,
    )
    .await
}

/// `GET /api/ws/nodes/{node_id}`: one node's detail.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(node_id): Path<String>,
) -> Response {
    if protocol::room::validate_node_id(&node_id).is_err() {
        return refuse(
            ErrorCode::InvalidMessage,
            "node id must be one segment of A-Z a-z 0-9 _ - (at most 64 bytes)",
        );
    }
    proxy::<_, NodeDetail>(
        &shared,
        (api::SERVICE, WHO),
        api::GET_NODE,
        &NodeRequest { node_id },
        PUBLISHER_TIMEOUT,
    )
    .await
}

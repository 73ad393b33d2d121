//! The node query API on `sb.api.publisher.<method>` (queue group `sb-publisher-api`):
//! `get_node` answers a node's latest report with its state and connection figures (what
//! the gateway's `GET /api/ws/nodes/{node_id}` shows), `list_nodes` every node as
//! `node_status_update` lists it. Every replica consumes every report, so whichever replica
//! the queue group picks, leader or standby, knows every node: the gateway stays stateless and
//! the answer is the same on a cluster as in the embedded `switchboard`.

use std::sync::Arc;

use bus::{Headers, Message, Subscription};
use protocol::ErrorCode;
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::ApiReply;
use protocol::nodes::{ListNodesRequest, NodeList, NodeRequest, api};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::RunError;
use crate::registry::NodeRegistry;
use crate::state::Shared;

/// Answers requests until `shutdown`; fails only if the subscription ends.
pub(super) async fn serve(
    shared: Arc<Shared>,
    mut requests: Subscription,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = requests.next() => next,
        };
        let Some(request) = request else {
            return Err(RunError::InputEnded {
                subject: requests.subject().to_owned(),
            });
        };
        let Some(payload) = answer(&shared, &request) else {
            continue;
        };
        if let Err(error) = shared
            .bus
            .respond(&request, Headers::new(), payload.into())
            .await
        {
            debug!(error = %error, subject = %request.subject, "node api reply not sent");
        }
    }
}

/// The encoded reply to one request.
fn answer(shared: &Shared, request: &Message) -> Option<Vec<u8>> {
    let method = request.subject.rsplit('.').next().unwrap_or_default();
    match method {
        api::GET_NODE => {
            let Ok(NodeRequest { node_id }) = decode_bus::<NodeRequest>(&request.payload) else {
                return encode(&ApiReply::<()>::error(
                    ErrorCode::InvalidMessage,
                    "malformed request: node_id is required",
                ));
            };
            match swept(shared, |registry| registry.detail(&node_id)) {
                Some(detail) => encode(&ApiReply::ok(detail)),
                None => encode(&ApiReply::<()>::error(
                    ErrorCode::NodeNotFound,
                    ErrorCode::NodeNotFound.description(),
                )),
            }
        }
        api::LIST_NODES => {
            if decode_bus::<ListNodesRequest>(&request.payload).is_err() {
                debug!("list_nodes request with an unreadable body answered anyway");
            }
            let mut nodes = swept(shared, NodeRegistry::statuses);
            let total = crate::registry::as_u64(nodes.len());
            nodes.truncate(NodeList::MAX_NODES);
            encode(&ApiReply::ok(NodeList { nodes, total }))
        }
        _ => encode(&ApiReply::<()>::error(
            ErrorCode::InvalidMessage,
            "unknown method",
        )),
    }
}

/// Runs `read` on the registry after a sweep, so states are current (and wakes the topology
/// task if the sweep changed something, as the streams do).
fn swept<T>(shared: &Shared, read: impl FnOnce(&NodeRegistry) -> T) -> T {
    let mut registry = shared.registry();
    if registry.sweep(Instant::now()) {
        shared.changes_ready.notify_one();
    }
    read(&registry)
}

fn encode<T: Serialize>(reply: &ApiReply<T>) -> Option<Vec<u8>> {
    match encode_bus(reply) {
        Ok(payload) => Some(payload),
        Err(error) => {
            warn!(error = %error, "node api reply cannot be encoded");
            None
        }
    }
}

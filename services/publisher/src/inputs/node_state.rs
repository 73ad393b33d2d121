//! Node state reports (seed 000) on `sb.ingest.node.<node_id>`, published by gateways for
//! their node agents, into the registry.

use std::time::SystemTime;

use bus::Message;
use protocol::NodeState;
use protocol::envelope::{HEADER_TRACEPARENT, decode_bus};
use tokio::time::Instant;
use tracing::debug;

use crate::registry::Rejected;
use crate::state::Shared;

/// Decodes one report and records it; a bad report is counted and dropped, never fatal.
pub(super) fn record(shared: &Shared, message: &Message) {
    let span = tracing::info_span!("node_state", subject = %message.subject);
    if let Some(traceparent) = message.headers.get(HEADER_TRACEPARENT) {
        telemetry::set_parent_from_traceparent(&span, traceparent);
    }
    let _entered = span.enter();
    let rejected = |reason: &str| {
        shared
            .metrics
            .reports_rejected
            .with_label_values(&[reason])
            .inc();
    };
    let state: NodeState = match decode_bus(&message.payload) {
        Ok(state) => state,
        Err(error) => {
            debug!(error = %error, "undecodable node state dropped");
            return rejected("undecodable");
        }
    };
    // The gateway publishes each node's reports on its own subject; a report naming another
    // node did not come through that path.
    let subject_node = message.subject.rsplit('.').next().unwrap_or_default();
    if subject_node != state.node_id {
        debug!(node_id = %state.node_id, "node state on another node's subject dropped");
        return rejected("node_id_mismatch");
    }
    let outcome = shared
        .registry()
        .observe(state, Instant::now(), SystemTime::now());
    match outcome {
        Ok(changed) => {
            shared.metrics.reports.inc();
            if changed {
                shared.changes_ready.notify_one();
            }
        }
        Err(Rejected::Full) => {
            debug!("node registry full; report of a new node dropped");
            rejected("registry_full");
        }
    }
}

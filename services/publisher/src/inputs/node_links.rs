//! Gateways' node connection figures on `sb.gateway.nodes.<gateway_id>` (one full snapshot
//! per gateway every report interval and on each node disconnect) into the registry, which
//! merges them per node and drops a gateway's figures once they go stale.

use bus::Message;
use protocol::envelope::decode_bus;
use protocol::nodes::NodeLinksReport;
use tokio::time::Instant;
use tracing::debug;

use crate::state::Shared;

/// Decodes one snapshot and records it; a bad one is dropped, never fatal.
pub(super) fn record(shared: &Shared, message: &Message) {
    let report: NodeLinksReport = match decode_bus(&message.payload) {
        Ok(report) => report,
        Err(error) => {
            debug!(subject = %message.subject, error = %error, "undecodable node links report dropped");
            return;
        }
    };
    // Each gateway reports on its own subject; a snapshot naming another gateway would
    // replace that gateway's figures.
    let subject_gateway = message.subject.rsplit('.').next().unwrap_or_default();
    if subject_gateway != report.gateway_id {
        debug!(gateway_id = %report.gateway_id, "node links report on another gateway's subject dropped");
        return;
    }
    if !shared.registry().observe_links(report, Instant::now()) {
        debug!(subject = %message.subject, "node links report of one gateway too many dropped");
    }
}

//! What the publisher consumes. Each input is subscribed in `bind` (so a failure stops the
//! start-up, and nothing published after `bind` is missed) and consumed by its own task in
//! `serve`. Every replica consumes everything, leader or not, so a standby's registry is
//! warm when it takes over.
//!
//! Inputs today: node state reports on `sb.ingest.node.*` ([`node_state`]), the gateways'
//! node connection figures on `sb.gateway.nodes.*` ([`node_links`]) and node queries on
//! `sb.api.publisher.*` ([`node_api`], a queue group: one replica answers). Later issues add
//! batch events (`sb.ingest.batch.*`) and device events: each becomes one more module here,
//! one more field of [`Inputs`], and one more task in [`Inputs::spawn`], feeding the
//! registry (or a sibling of it) that the streams read.

mod node_api;
mod node_links;
mod node_state;

use std::sync::Arc;

use bus::{Bus, Message, Subscription};
use protocol::Subjects;
use service::supervise::Supervisor;
use tokio_util::sync::CancellationToken;

use crate::error::{RunError, StartError};
use crate::state::Shared;

/// Reasons a node state report is rejected, as used in the `reason` label.
pub(crate) const REJECT_REASONS: [&str; 3] = ["undecodable", "node_id_mismatch", "registry_full"];

/// The subscriptions of every input, made but not yet consumed.
pub(crate) struct Inputs {
    node_states: Subscription,
    node_links: Subscription,
    node_api: Subscription,
}

impl Inputs {
    /// Subscribes to every input subject.
    pub(crate) async fn subscribe(bus: &Bus, subjects: &Subjects) -> Result<Self, StartError> {
        let subject = subjects.ingest_all_nodes();
        let node_states = bus
            .subscribe(&subject)
            .await
            .map_err(|source| StartError::Subscribe { subject, source })?;
        let subject = subjects.all_gateway_node_links();
        let node_links = bus
            .subscribe(&subject)
            .await
            .map_err(|source| StartError::Subscribe { subject, source })?;
        let subject = subjects.api(protocol::nodes::api::SERVICE, "*");
        let node_api = bus
            .queue_subscribe(&subject, protocol::nodes::api::QUEUE_GROUP)
            .await
            .map_err(|source| StartError::Subscribe { subject, source })?;
        Ok(Self {
            node_states,
            node_links,
            node_api,
        })
    }

    /// Starts one consuming task per input on `tasks`.
    pub(crate) fn spawn(
        self,
        shared: &Arc<Shared>,
        tasks: &mut Supervisor<RunError>,
        shutdown: &CancellationToken,
    ) {
        tasks.spawn(
            "node state input",
            consume(
                shared.clone(),
                self.node_states,
                shutdown.clone(),
                node_state::record,
            ),
        );
        tasks.spawn(
            "node links input",
            consume(
                shared.clone(),
                self.node_links,
                shutdown.clone(),
                node_links::record,
            ),
        );
        tasks.spawn(
            "node api",
            node_api::serve(shared.clone(), self.node_api, shutdown.clone()),
        );
    }
}

/// Hands every message of `subscription` to `record` until `shutdown`; fails only if the
/// subscription ends (the bus connection was closed for good). `record` drops what it cannot
/// use: one bad message is never fatal.
async fn consume(
    shared: Arc<Shared>,
    mut subscription: Subscription,
    shutdown: CancellationToken,
    record: fn(&Shared, &Message),
) -> Result<(), RunError> {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = subscription.next() => next,
        };
        match message {
            Some(message) => record(&shared, &message),
            None => {
                return Err(RunError::InputEnded {
                    subject: subscription.subject().to_owned(),
                });
            }
        }
    }
}

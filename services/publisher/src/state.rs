//! What every task of one publisher instance shares.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bus::Bus;
use protocol::Subjects;
use store::Store;
use tokio::sync::Notify;

use crate::config::PublisherConfig;
use crate::metrics::Metrics;
use crate::registry::NodeRegistry;

/// The state of one publisher instance, behind an `Arc`.
pub(crate) struct Shared {
    pub config: PublisherConfig,
    /// This replica's name as a lease holder.
    pub instance_id: String,
    pub subjects: Subjects,
    pub bus: Bus,
    pub store: Store,
    pub metrics: Metrics,
    /// Locked only for short synchronous work, never across an `.await`.
    registry: Mutex<NodeRegistry>,
    /// Woken whenever the registry has new topology changes.
    pub changes_ready: Notify,
}

impl Shared {
    pub(crate) fn new(
        config: PublisherConfig,
        instance_id: String,
        subjects: Subjects,
        bus: Bus,
        store: Store,
    ) -> Self {
        let registry = NodeRegistry::new(
            config.node_timeout,
            config.node_forget_after,
            config.max_nodes,
        );
        Self {
            config,
            instance_id,
            subjects,
            bus,
            store,
            metrics: Metrics::new(),
            registry: Mutex::new(registry),
            changes_ready: Notify::new(),
        }
    }

    /// Locks the registry. Registry methods cannot panic halfway through an update, so a
    /// poisoned lock still guards consistent data.
    pub(crate) fn registry(&self) -> MutexGuard<'_, NodeRegistry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

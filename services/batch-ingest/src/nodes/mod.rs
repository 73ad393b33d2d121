//! The registry of ML nodes: one worker per started node, each owning its connection (the
//! seed's per-node WebSocket client, no central manager). Nodes are registered, removed,
//! started and stopped at run time by the HTTP and NATS management APIs.
//!
//! The registry lock is a `std` mutex held only for map updates and spawning; it is never
//! held across an `.await`.

mod worker;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;
use protocol::batch::{ConnectionState, NodeInfo};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

pub(crate) use worker::WorkerSettings;

use crate::config::check_node;
use crate::pipeline::Pipeline;

/// Why a management request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NodeError {
    /// The id or URL is malformed, or a field is missing.
    #[error("{0}")]
    Invalid(String),
    /// No node has this id.
    #[error("no node {0:?}")]
    NotFound(String),
}

/// A node's identity and live connection state, shared by the registry and its worker.
pub(crate) struct NodeStatus {
    pub id: String,
    pub url: String,
    state: Mutex<ConnectionState>,
}

impl NodeStatus {
    fn new(id: &str, url: &str) -> Self {
        Self {
            id: id.to_owned(),
            url: url.to_owned(),
            state: Mutex::new(ConnectionState::Stopped),
        }
    }

    pub(crate) fn state(&self) -> ConnectionState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a state change in the status, the metrics and the progress events.
    pub(crate) fn report(&self, pipeline: &Pipeline, state: ConnectionState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        pipeline.metrics().set_node_state(&self.id, state);
        pipeline.progress().set_connection(&self.id, state);
    }
}

struct Slot {
    status: Arc<NodeStatus>,
    /// The running worker's stop token; `None` while stopped.
    stop: Option<CancellationToken>,
    /// The latest worker's task, possibly still finishing after a stop.
    handle: Option<JoinHandle<()>>,
}

impl Slot {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.status.id.clone(),
            url: self.status.url.clone(),
            active: self.stop.is_some(),
            connection: self.status.state(),
        }
    }
}

/// The registered nodes and their workers.
pub(crate) struct Nodes {
    slots: Mutex<BTreeMap<String, Slot>>,
    pipeline: Pipeline,
    settings: WorkerSettings,
    tasks: TaskTracker,
    /// Parent of every worker's stop token; cancelled at shutdown.
    shutdown: CancellationToken,
    /// The first worker that panicked (a bug): [`Nodes::worker_panicked`] hands it to the
    /// supervisor, which ends batch-ingest like any failed background task, instead of the
    /// node going unserved without a word until the next restart.
    panicked: Arc<WorkerPanic>,
}

/// A node worker's panic, reported once.
#[derive(Default)]
struct WorkerPanic {
    first: Mutex<Option<(String, String)>>,
    reported: tokio::sync::Notify,
}

impl Nodes {
    pub(crate) fn new(pipeline: Pipeline, settings: WorkerSettings) -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
            pipeline,
            settings,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            panicked: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        // Only map updates and spawns happen under the lock; none panics mid-update.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a node, or replaces one with the same id and another URL (stopping its
    /// worker first); then starts or stops it as `active` says. Registering the same id and
    /// URL again only applies `active`.
    pub(crate) fn register(
        &self,
        id: &str,
        url: &str,
        active: bool,
    ) -> Result<NodeInfo, NodeError> {
        check_node(id, url).map_err(NodeError::Invalid)?;
        let mut slots = self.lock();
        let replaced = slots.get(id).is_some_and(|slot| slot.status.url != url);
        if replaced && let Some(mut old) = slots.remove(id) {
            Self::stop_slot(&mut old);
            // The new worker waits for the old one through `handle`.
            slots.insert(
                id.to_owned(),
                Slot {
                    status: Arc::new(NodeStatus::new(id, url)),
                    stop: None,
                    handle: old.handle,
                },
            );
        }
        let slot = slots.entry(id.to_owned()).or_insert_with(|| Slot {
            status: Arc::new(NodeStatus::new(id, url)),
            stop: None,
            handle: None,
        });
        if slot.stop.is_none() {
            slot.status.report(&self.pipeline, ConnectionState::Stopped);
        }
        if active {
            self.start_slot(slot);
        } else {
            Self::stop_slot(slot);
        }
        Ok(slot.info())
    }

    /// Stops a node's worker and forgets the node.
    pub(crate) fn remove(&self, id: &str) -> Result<NodeInfo, NodeError> {
        let mut slot = self
            .lock()
            .remove(id)
            .ok_or_else(|| NodeError::NotFound(id.to_owned()))?;
        Self::stop_slot(&mut slot);
        let mut info = slot.info();
        info.connection = ConnectionState::Unregistered;
        self.pipeline.metrics().forget_node(id);
        self.pipeline.progress().forget(id);
        Ok(info)
    }

    /// Starts a node's worker; starting a started node does nothing.
    pub(crate) fn start(&self, id: &str) -> Result<NodeInfo, NodeError> {
        let mut slots = self.lock();
        let slot = slots
            .get_mut(id)
            .ok_or_else(|| NodeError::NotFound(id.to_owned()))?;
        self.start_slot(slot);
        Ok(slot.info())
    }

    /// Stops a node's worker: it stops reading, acknowledges the batches it is storing and
    /// closes the connection with 1001. Stopping a stopped node does nothing.
    pub(crate) fn stop(&self, id: &str) -> Result<NodeInfo, NodeError> {
        let mut slots = self.lock();
        let slot = slots
            .get_mut(id)
            .ok_or_else(|| NodeError::NotFound(id.to_owned()))?;
        Self::stop_slot(slot);
        Ok(slot.info())
    }

    /// Returns every node, sorted by id.
    pub(crate) fn list(&self) -> Vec<NodeInfo> {
        self.lock().values().map(Slot::info).collect()
    }

    /// Stops every worker and waits until they are done, up to `grace`; returns how many
    /// were cut off.
    pub(crate) async fn stop_all(&self, grace: std::time::Duration) -> usize {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            let remaining = self.tasks.len();
            for slot in self.lock().values() {
                if let Some(handle) = &slot.handle {
                    handle.abort();
                }
            }
            return remaining;
        }
        0
    }

    /// Waits until a node worker panics; returns its node id and the panic message.
    pub(crate) async fn worker_panicked(&self) -> (String, String) {
        loop {
            let reported = self.panicked.reported.notified();
            if let Some(first) = self
                .panicked
                .first
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return first;
            }
            reported.await;
        }
    }

    fn start_slot(&self, slot: &mut Slot) {
        if slot.stop.is_some() || self.shutdown.is_cancelled() {
            return;
        }
        let stop = self.shutdown.child_token();
        let previous = slot.handle.take();
        let worker = worker::run(
            Arc::clone(&slot.status),
            self.pipeline.clone(),
            self.settings.clone(),
            previous,
            stop.clone(),
        );
        let node = slot.status.id.clone();
        let panicked = Arc::clone(&self.panicked);
        let handle = self.tasks.spawn(async move {
            if let Err(panic) = AssertUnwindSafe(worker).catch_unwind().await {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!(node = %node, panic = %message, "ml node worker panicked");
                panicked
                    .first
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert((node, message));
                panicked.reported.notify_waiters();
            }
        });
        slot.stop = Some(stop);
        slot.handle = Some(handle);
    }

    fn stop_slot(slot: &mut Slot) {
        if let Some(stop) = slot.stop.take() {
            stop.cancel();
        }
    }
}

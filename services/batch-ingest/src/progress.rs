//! Per-node progress, published to room `tasks` as `batch_progress` events.
//!
//! Counting happens on the batch path (one short lock per batch); publishing happens on a
//! timer, one event per node whose counts changed since the last tick, so a burst of
//! thousands of batches costs a handful of room messages. The events are realtime fan-out:
//! one that cannot be published is counted and dropped (the next tick carries the totals).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bus::{Bus, Headers};
use bytes::Bytes;
use protocol::batch::{
    BatchKind, BatchProgress, ConnectionState, KindCounts, PROGRESS_EVENT, PROGRESS_ROOM,
    PathCounts,
};
use protocol::envelope::encode_bus;
use protocol::{RoomEnvelope, RoomName, Subjects};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::pipeline::{Outcome, Path};

/// Totals per node, with a dirty flag per node.
#[derive(Default)]
pub(crate) struct Progress {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Entry>,
    /// ML node number → registered node id, learned from WebSocket batches, so the same
    /// node's HTTP batches are counted under its id.
    by_num: HashMap<u64, String>,
}

struct Entry {
    progress: BatchProgress,
    dirty: bool,
}

impl Entry {
    fn new(node: &str) -> Self {
        Self {
            progress: BatchProgress {
                node: node.to_owned(),
                node_num: None,
                connection: ConnectionState::Unregistered,
                stored: KindCounts::default(),
                duplicates: 0,
                invalid: 0,
                received: PathCounts::default(),
                last_block_height: None,
            },
            dirty: true,
        }
    }
}

impl State {
    fn entry(&mut self, node: &str) -> &mut Entry {
        let entry = self
            .nodes
            .entry(node.to_owned())
            .or_insert_with(|| Entry::new(node));
        entry.dirty = true;
        entry
    }
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Only counter updates happen under the lock; none panics mid-update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the label a batch is counted under: the registered node it came from (and
    /// remembers its number), else the node registered with that number, else
    /// `ml-node-<number>`.
    pub(crate) fn label(&self, node: Option<&str>, node_num: u64) -> String {
        let mut state = self.lock();
        match node {
            Some(node) => {
                if state.by_num.get(&node_num).map(String::as_str) != Some(node) {
                    state.by_num.insert(node_num, node.to_owned());
                }
                node.to_owned()
            }
            None => state
                .by_num
                .get(&node_num)
                .cloned()
                .unwrap_or_else(|| format!("ml-node-{node_num}")),
        }
    }

    /// Counts one valid delivery and its outcome.
    pub(crate) fn record(
        &self,
        label: &str,
        node_num: u64,
        kind: BatchKind,
        path: Path,
        outcome: &Outcome,
        block_height: i64,
    ) {
        let mut state = self.lock();
        let progress = &mut state.entry(label).progress;
        progress.node_num = Some(node_num);
        progress.last_block_height = Some(block_height);
        match path {
            Path::WebSocket => progress.received.websocket += 1,
            Path::Http => progress.received.http += 1,
        }
        match (outcome, kind) {
            (Outcome::Stored { .. }, BatchKind::Generated) => progress.stored.generated += 1,
            (Outcome::Stored { .. }, BatchKind::Validated) => progress.stored.validated += 1,
            (Outcome::Duplicate { .. }, _) => progress.duplicates += 1,
        }
    }

    /// Counts an invalid delivery from a registered node's WebSocket.
    pub(crate) fn record_invalid(&self, node: &str) {
        self.lock().entry(node).progress.invalid += 1;
    }

    /// Notes a node's connection state.
    pub(crate) fn set_connection(&self, node: &str, connection: ConnectionState) {
        let mut state = self.lock();
        let entry = state.entry(node);
        entry.progress.connection = connection;
    }

    /// Notes that a node was removed; its totals stay, under `unregistered`.
    pub(crate) fn forget(&self, node: &str) {
        let mut state = self.lock();
        state.by_num.retain(|_, id| id != node);
        if state.nodes.contains_key(node) {
            state.entry(node).progress.connection = ConnectionState::Unregistered;
        }
    }

    /// Returns the nodes that changed since the last call, and clears their flags.
    pub(crate) fn take_changed(&self) -> Vec<BatchProgress> {
        let mut state = self.lock();
        state
            .nodes
            .values_mut()
            .filter(|entry| entry.dirty)
            .map(|entry| {
                entry.dirty = false;
                entry.progress.clone()
            })
            .collect()
    }

    /// Returns every node's totals (`GET /v1/progress`).
    pub(crate) fn snapshot(&self) -> Vec<BatchProgress> {
        self.lock()
            .nodes
            .values()
            .map(|entry| entry.progress.clone())
            .collect()
    }
}

/// Publishes changed nodes every `interval` until `shutdown`, then once more.
pub(crate) async fn publish_progress(
    progress: Arc<Progress>,
    bus: Bus,
    subjects: Subjects,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let room = RoomName::parse(PROGRESS_ROOM).expect("the progress room is a valid room name");
    let subject = subjects.room(&room);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            () = shutdown.cancelled() => true,
        };
        for node in progress.take_changed() {
            publish_one(&bus, &subject, &node, &metrics).await;
        }
        if stopping {
            return;
        }
    }
}

async fn publish_one(bus: &Bus, subject: &str, node: &BatchProgress, metrics: &Metrics) {
    let envelope = RoomEnvelope {
        event: PROGRESS_EVENT.to_owned(),
        data: serde_json::to_value(node).unwrap_or_default(),
        timestamp: Some(protocol::time::now_rfc3339()),
        seq: None,
        priority: None,
    };
    let payload = match encode_bus(&envelope) {
        Ok(payload) => Bytes::from(payload),
        Err(error) => {
            metrics.progress_failures.inc();
            tracing::warn!(error = %error, "batch progress not encodable");
            return;
        }
    };
    if let Err(error) = bus
        .publish_with_headers(subject, Headers::new(), payload)
        .await
    {
        metrics.progress_failures.inc();
        tracing::debug!(error = %error, node = %node.node, "batch progress not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_batches_count_under_the_node_learned_from_its_websocket() {
        let progress = Progress::default();
        assert_eq!(progress.label(None, 7), "ml-node-7");
        assert_eq!(progress.label(Some("ml-a"), 7), "ml-a");
        assert_eq!(progress.label(None, 7), "ml-a");
        let stored = Outcome::Stored { sequence: 1 };
        progress.record("ml-a", 7, BatchKind::Validated, Path::Http, &stored, 9);
        progress.set_connection("ml-a", ConnectionState::Connected);
        let changed = progress.take_changed();
        let ml_a = changed.iter().find(|p| p.node == "ml-a").unwrap();
        assert_eq!(ml_a.stored.validated, 1);
        assert_eq!(ml_a.received.http, 1);
        assert_eq!(ml_a.connection, ConnectionState::Connected);
        assert!(progress.take_changed().is_empty());
        progress.forget("ml-a");
        assert_eq!(progress.label(None, 7), "ml-node-7");
        assert_eq!(
            progress.snapshot()[0].connection,
            ConnectionState::Unregistered
        );
    }
}

//! The node registry: the latest state report of every node, whether each is online, and the
//! topology changes not yet published.
//!
//! Pure data: every method takes the current time, so tests drive it without a clock. A node
//! is online while its last report is at most `node_timeout` old; [`NodeRegistry::sweep`]
//! turns silent nodes offline and forgets nodes silent for `forget_after`. Changes pile up
//! in a bounded list that the topology task takes with [`NodeRegistry::take_changes`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use protocol::NodeState;
use tokio::time::Instant;

/// Most changes kept between two takes; more are dropped (and counted), because a topology
/// task that stopped taking them would otherwise grow this list forever. The next
/// `topology_change` still carries the full layer map, so nothing stays wrong for long.
const MAX_PENDING_CHANGES: usize = 10_000;

/// One known node.
#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    /// Its latest report.
    pub state: NodeState,
    /// Whether it was online at the last sweep or report.
    pub online: bool,
    /// When its latest report arrived (monotonic, for the timeout).
    pub last_seen: Instant,
    /// When its latest report arrived (wall clock, for display).
    pub last_seen_wall: SystemTime,
}

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// First report ever (or since it was forgotten).
    Joined,
    /// Reports again after being offline.
    Online,
    /// No report within the timeout.
    Offline,
    /// Forgotten after a long silence.
    Left,
    /// Reports a different layer.
    LayerChanged,
}

impl ChangeKind {
    /// The name used in `topology_change`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Joined => "joined",
            ChangeKind::Online => "online",
            ChangeKind::Offline => "offline",
            ChangeKind::Left => "left",
            ChangeKind::LayerChanged => "layer_changed",
        }
    }
}

/// One change, with what an alert about it needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub node_id: String,
    pub layer: String,
    pub kind: ChangeKind,
    pub last_seen_wall: SystemTime,
}

/// Why a report was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// The registry holds `max_nodes` nodes and this one is new.
    Full,
}

/// Every node the publisher has heard from.
#[derive(Debug)]
pub(crate) struct NodeRegistry {
    nodes: BTreeMap<String, NodeEntry>,
    node_timeout: Duration,
    forget_after: Duration,
    max_nodes: usize,
    pending: Vec<Change>,
    dropped_changes: u64,
}

impl NodeRegistry {
    pub(crate) fn new(node_timeout: Duration, forget_after: Duration, max_nodes: usize) -> Self {
        Self {
            nodes: BTreeMap::new(),
            node_timeout,
            forget_after,
            max_nodes,
            pending: Vec::new(),
            dropped_changes: 0,
        }
    }

    /// Records a report that arrived at `now`/`wall`; returns whether it changed the
    /// topology (a change is then waiting in [`NodeRegistry::take_changes`]).
    pub(crate) fn observe(
        &mut self,
        state: NodeState,
        now: Instant,
        wall: SystemTime,
    ) -> Result<bool, Rejected> {
        let is_full = self.nodes.len() >= self.max_nodes;
        let change = match self.nodes.get_mut(&state.node_id) {
            Some(entry) => {
                let kind = if !entry.online {
                    Some(ChangeKind::Online)
                } else if entry.state.layer != state.layer {
                    Some(ChangeKind::LayerChanged)
                } else {
                    None
                };
                entry.state = state;
                entry.online = true;
                entry.last_seen = now;
                entry.last_seen_wall = wall;
                kind.map(|kind| change_of(entry, kind))
            }
            None if is_full => return Err(Rejected::Full),
            None => {
                let entry = NodeEntry {
                    state,
                    online: true,
                    last_seen: now,
                    last_seen_wall: wall,
                };
                let change = change_of(&entry, ChangeKind::Joined);
                self.nodes.insert(entry.state.node_id.clone(), entry);
                Some(change)
            }
        };
        let changed = change.is_some();
        if let Some(change) = change {
            self.push_change(change);
        }
        Ok(changed)
    }

    /// Turns nodes silent for longer than the timeout offline and forgets nodes silent for
    /// `forget_after`. Returns whether anything changed.
    pub(crate) fn sweep(&mut self, now: Instant) -> bool {
        let mut changes = Vec::new();
        self.nodes.retain(|_, entry| {
            let silence = now.saturating_duration_since(entry.last_seen);
            if entry.online && silence > self.node_timeout {
                entry.online = false;
                changes.push(change_of(entry, ChangeKind::Offline));
            }
            if silence > self.forget_after {
                changes.push(change_of(entry, ChangeKind::Left));
                return false;
            }
            true
        });
        let changed = !changes.is_empty();
        for change in changes {
            self.push_change(change);
        }
        changed
    }

    fn push_change(&mut self, change: Change) {
        if self.pending.len() >= MAX_PENDING_CHANGES {
            self.dropped_changes += 1;
            return;
        }
        self.pending.push(change);
    }

    /// Returns the changes since the last take, oldest first.
    pub(crate) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.pending)
    }

    /// Returns how many changes were dropped because nobody took them.
    pub(crate) fn dropped_changes(&self) -> u64 {
        self.dropped_changes
    }

    /// Iterates over the known nodes, sorted by node id.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values()
    }

    /// Iterates over the online nodes, sorted by node id.
    pub(crate) fn online_nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values().filter(|entry| entry.online)
    }

    /// Returns `(online, offline)` node counts.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let online = self.online_nodes().count();
        let offline = self.nodes.len() - online;
        (as_u64(online), as_u64(offline))
    }
}

fn change_of(entry: &NodeEntry, kind: ChangeKind) -> Change {
    Change {
        node_id: entry.state.node_id.clone(),
        layer: entry.state.layer.clone(),
        kind,
        last_seen_wall: entry.last_seen_wall,
    }
}

/// Converts a count to `u64`; `usize` is at most 64 bits on every supported target.
pub(crate) fn as_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node_id: &str, layer: &str) -> NodeState {
        NodeState {
            node_id: node_id.into(),
            layer: layer.into(),
            ..NodeState::default()
        }
    }

    fn registry() -> NodeRegistry {
        NodeRegistry::new(Duration::from_secs(15), Duration::from_secs(60), 3)
    }

    fn kinds(registry: &mut NodeRegistry) -> Vec<(String, ChangeKind)> {
        registry
            .take_changes()
            .into_iter()
            .map(|change| (change.node_id, change.kind))
            .collect()
    }

    #[test]
    fn first_report_joins_and_silence_past_the_timeout_goes_offline() {
        let start = Instant::now();
        let wall = SystemTime::now();
        let mut registry = registry();
        registry.observe(report("a", "edge"), start, wall).unwrap();
        registry.observe(report("b", "core"), start, wall).unwrap();
        assert_eq!(registry.counts(), (2, 0));
        assert_eq!(
            kinds(&mut registry),
            [
                ("a".into(), ChangeKind::Joined),
                ("b".into(), ChangeKind::Joined)
            ]
        );

        let later = start + Duration::from_secs(10);
        registry.observe(report("b", "core"), later, wall).unwrap();
        assert!(!registry.sweep(start + Duration::from_secs(15)));
        assert!(registry.sweep(start + Duration::from_secs(16)));
        assert_eq!(registry.counts(), (1, 1));
        assert_eq!(kinds(&mut registry), [("a".into(), ChangeKind::Offline)]);
        assert!(
            !registry.sweep(start + Duration::from_secs(17)),
            "offline once"
        );
    }

    #[test]
    fn an_offline_node_that_reports_again_comes_online_and_long_silence_forgets_it() {
        let start = Instant::now();
        let wall = SystemTime::now();
        let mut registry = registry();
        registry.observe(report("a", "edge"), start, wall).unwrap();
        registry.sweep(start + Duration::from_secs(20));
        registry.take_changes();
        let back = start + Duration::from_secs(21);
        registry.observe(report("a", "core"), back, wall).unwrap();
        assert_eq!(kinds(&mut registry), [("a".into(), ChangeKind::Online)]);
        registry.observe(report("a", "edge"), back, wall).unwrap();
        assert_eq!(
            kinds(&mut registry),
            [("a".into(), ChangeKind::LayerChanged)]
        );

        registry.sweep(back + Duration::from_secs(61));
        assert_eq!(
            kinds(&mut registry),
            [
                ("a".into(), ChangeKind::Offline),
                ("a".into(), ChangeKind::Left)
            ]
        );
        assert_eq!(registry.counts(), (0, 0));
    }

    #[test]
    fn a_full_registry_rejects_new_nodes_but_keeps_updating_known_ones() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut registry = registry();
        for id in ["a", "b", "c"] {
            registry.observe(report(id, "l"), now, wall).unwrap();
        }
        assert_eq!(
            registry.observe(report("d", "l"), now, wall),
            Err(Rejected::Full)
        );
        assert!(registry.observe(report("a", "l"), now, wall).is_ok());
    }
}

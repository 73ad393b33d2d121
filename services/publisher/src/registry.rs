//! The node registry: the latest state report of every node, whether each is online,
//! offline or stopped, the gateways' connection figures of the nodes, and the topology
//! changes not yet published.
//!
//! Pure data: every method takes the current time, so tests drive it without a clock. A node
//! is online while its last report is at most `node_timeout` old; [`NodeRegistry::sweep`]
//! turns silent nodes offline (an outage) and forgets nodes silent for `forget_after`. A
//! report that is the agent's final state (its newest `operation_log` entry is
//! `{"operation": "stop"}`, what `client::agent::Agent::stop` and so `switchboard-agent` on
//! SIGTERM send) makes the node `stopped` at once: a clean stop, never swept offline. Changes
//! pile up in a bounded list that the topology task takes with [`NodeRegistry::take_changes`].

mod links;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use protocol::NodeState;
use protocol::nodes::{NodeDetail, NodeLinksReport};
use protocol::streams::{NodeRunState, NodeStatus};
use tokio::time::Instant;

use links::Links;

/// The `operation` of the `operation_log` entry an agent's final state ends with.
pub(crate) const STOP_OPERATION: &str = "stop";

/// Most changes kept between two takes; more are dropped (and counted), because a topology
/// task that stopped taking them would otherwise grow this list forever. The next
/// `topology_change` still carries the full layer map, so nothing stays wrong for long.
const MAX_PENDING_CHANGES: usize = 10_000;

/// One known node.
#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    /// Its latest report.
    pub state: NodeState,
    /// Online, offline or stopped, as of the last sweep or report.
    pub run_state: NodeRunState,
    /// When its latest report arrived (monotonic, for the timeout).
    pub last_seen: Instant,
    /// When its latest report arrived (wall clock, for display).
    pub last_seen_wall: SystemTime,
}

impl NodeEntry {
    /// Whether it is online (reported within the timeout and has not stopped).
    pub(crate) fn online(&self) -> bool {
        self.run_state == NodeRunState::Online
    }
}

/// Whether `state` is an agent's final state (its newest log entry is the `stop` operation).
pub(crate) fn is_final_state(state: &NodeState) -> bool {
    state
        .operation_log
        .last()
        .and_then(|entry| entry.get("operation"))
        .and_then(serde_json::Value::as_str)
        == Some(STOP_OPERATION)
}

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// First report ever (or since it was forgotten).
    Joined,
    /// Reports again after being offline or stopped.
    Online,
    /// No report within the timeout: an outage.
    Offline,
    /// Its agent sent its final state: a clean stop.
    Stopped,
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
            ChangeKind::Stopped => "stopped",
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
    links: Links,
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
            links: Links::default(),
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
        let stopping = is_final_state(&state);
        let run_state = if stopping {
            NodeRunState::Stopped
        } else {
            NodeRunState::Online
        };
        let change = match self.nodes.get_mut(&state.node_id) {
            Some(entry) => {
                let kind = match (entry.run_state, stopping) {
                    (NodeRunState::Stopped, true) => None,
                    (_, true) => Some(ChangeKind::Stopped),
                    (NodeRunState::Offline | NodeRunState::Stopped, false) => {
                        Some(ChangeKind::Online)
                    }
                    (NodeRunState::Online, false) if entry.state.layer != state.layer => {
                        Some(ChangeKind::LayerChanged)
                    }
                    (NodeRunState::Online, false) => None,
                };
                entry.state = state;
                entry.run_state = run_state;
                entry.last_seen = now;
                entry.last_seen_wall = wall;
                kind.map(|kind| change_of(entry, kind))
            }
            None if is_full => return Err(Rejected::Full),
            None => {
                let entry = NodeEntry {
                    state,
                    run_state,
                    last_seen: now,
                    last_seen_wall: wall,
                };
                // A node first heard of in its final state has stopped, not joined.
                let kind = if stopping {
                    ChangeKind::Stopped
                } else {
                    ChangeKind::Joined
                };
                let change = change_of(&entry, kind);
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

    /// Records a gateway's snapshot of its node connections, received at `now`.
    pub(crate) fn observe_links(&mut self, report: NodeLinksReport, now: Instant) -> bool {
        self.links.observe(report, now, self.max_nodes)
    }

    /// Turns online nodes silent for longer than the timeout offline (stopped nodes stay
    /// stopped), forgets nodes silent for `forget_after`, and drops stale gateway figures.
    /// Returns whether the topology changed.
    pub(crate) fn sweep(&mut self, now: Instant) -> bool {
        self.links.sweep(now);
        let mut changes = Vec::new();
        self.nodes.retain(|_, entry| {
            let silence = now.saturating_duration_since(entry.last_seen);
            if entry.online() && silence > self.node_timeout {
                entry.run_state = NodeRunState::Offline;
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

    /// Iterates over the online nodes, sorted by node id.
    pub(crate) fn online_nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values().filter(|entry| entry.online())
    }

    /// Returns `(online, offline)` node counts; stopped nodes are in neither (see
    /// [`NodeRegistry::stopped_count`]): a clean stop is not an outage.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let online = self.online_nodes().count();
        let offline = self
            .nodes
            .values()
            .filter(|entry| entry.run_state == NodeRunState::Offline)
            .count();
        (as_u64(online), as_u64(offline))
    }

    /// Returns how many known nodes stopped cleanly.
    pub(crate) fn stopped_count(&self) -> u64 {
        as_u64(
            self.nodes
                .values()
                .filter(|entry| entry.run_state == NodeRunState::Stopped)
                .count(),
        )
    }

    /// The `node_status_update` entry of `entry`, with its connection figures.
    pub(crate) fn status(&self, entry: &NodeEntry) -> NodeStatus {
        let state = &entry.state;
        NodeStatus {
            node_id: state.node_id.clone(),
            layer: state.layer.clone(),
            online: entry.online(),
            state: entry.run_state,
            update_count: state.update_count,
            last_seen: humantime::format_rfc3339_millis(entry.last_seen_wall).to_string(),
            last_sync_time: state.last_sync_time.clone(),
            last_sync_count: state.last_sync_count,
            network: self.links.network_of(&state.node_id),
        }
    }

    /// Every known node as `node_status_update` lists it, sorted by node id.
    pub(crate) fn statuses(&self) -> Vec<NodeStatus> {
        self.nodes
            .values()
            .map(|entry| self.status(entry))
            .collect()
    }

    /// Everything known about `node_id`: its latest report in full, its state and its
    /// connection figures; `None` for a node never heard of (or forgotten).
    pub(crate) fn detail(&self, node_id: &str) -> Option<NodeDetail> {
        let entry = self.nodes.get(node_id)?;
        let status = self.status(entry);
        Some(NodeDetail {
            node_id: status.node_id,
            layer: status.layer,
            state: status.state,
            online: status.online,
            last_seen: status.last_seen,
            update_count: status.update_count,
            last_sync_time: status.last_sync_time,
            last_sync_count: status.last_sync_count,
            current_data: entry.state.current_data.clone(),
            operation_log: entry.state.operation_log.clone(),
            network: status.network,
        })
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

    fn final_report(node_id: &str) -> NodeState {
        NodeState {
            operation_log: vec![
                serde_json::json!({"operation": "connected"}),
                serde_json::json!({"operation": "stop", "timestamp": "2026-12-02T10:00:00Z"}),
            ],
            current_data: serde_json::json!({"cpu_percent": 3.0}),
            ..report(node_id, "edge")
        }
    }

    #[test]
    fn a_final_state_stops_the_node_and_silence_after_it_is_no_outage() {
        let start = Instant::now();
        let wall = SystemTime::now();
        let mut registry = registry();
        registry.observe(report("a", "edge"), start, wall).unwrap();
        registry.observe(report("b", "edge"), start, wall).unwrap();
        registry.take_changes();
        assert!(registry.observe(final_report("a"), start, wall).unwrap());
        assert_eq!(kinds(&mut registry), [("a".into(), ChangeKind::Stopped)]);
        assert_eq!((registry.counts(), registry.stopped_count()), ((1, 0), 1));
        assert!(
            !registry.observe(final_report("a"), start, wall).unwrap(),
            "stopped once"
        );

        // Past the timeout only the silent running node is an outage.
        assert!(registry.sweep(start + Duration::from_secs(20)));
        assert_eq!(kinds(&mut registry), [("b".into(), ChangeKind::Offline)]);
        let states: Vec<_> = registry
            .statuses()
            .into_iter()
            .map(|status| (status.node_id, status.state, status.online))
            .collect();
        assert_eq!(
            states,
            [
                ("a".into(), NodeRunState::Stopped, false),
                ("b".into(), NodeRunState::Offline, false)
            ]
        );

        // A stopped node that reports again is online.
        let back = start + Duration::from_secs(21);
        registry.observe(report("a", "edge"), back, wall).unwrap();
        assert_eq!(kinds(&mut registry), [("a".into(), ChangeKind::Online)]);
        assert_eq!((registry.counts(), registry.stopped_count()), ((1, 1), 0));
    }

    #[test]
    fn a_node_first_heard_of_in_its_final_state_is_stopped_and_its_detail_is_the_full_report() {
        let now = Instant::now();
        let mut registry = registry();
        registry
            .observe(final_report("z"), now, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(kinds(&mut registry), [("z".into(), ChangeKind::Stopped)]);
        let detail = registry.detail("z").unwrap();
        assert_eq!(detail.state, NodeRunState::Stopped);
        assert_eq!(detail.last_seen, "1970-01-01T00:00:00.000Z");
        assert_eq!(detail.current_data["cpu_percent"], 3.0);
        assert_eq!(detail.operation_log.len(), 2);
        assert_eq!(detail.network, None);
        assert!(registry.detail("nobody").is_none());
        assert!(!is_final_state(&report("z", "edge")));
    }

    #[test]
    fn gateway_figures_show_on_the_node_until_they_go_stale() {
        let start = Instant::now();
        let mut registry = registry();
        registry
            .observe(report("a", "edge"), start, SystemTime::now())
            .unwrap();
        let links = NodeLinksReport {
            gateway_id: "gw".into(),
            interval_ms: 1_000,
            timestamp_ms: 0,
            page: 0,
            pages: 1,
            nodes: vec![protocol::nodes::NodeLink {
                node_id: "a".into(),
                connections: 1,
                rtt_last_ms: Some(0.4),
                rtt_smoothed_ms: Some(0.5),
                messages_in: 7,
                messages_out: 9,
            }],
        };
        assert!(registry.observe_links(links, start));
        let network = registry.statuses()[0].network.unwrap();
        assert_eq!((network.rtt_ms, network.messages_in), (Some(0.5), 7));
        registry.sweep(start + Duration::from_secs(4));
        assert_eq!(registry.statuses()[0].network, None);
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

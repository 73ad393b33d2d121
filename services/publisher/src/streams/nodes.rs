//! `node_status_update` (room `nodes`): every known node with its online flag, plus counts.

use std::collections::BTreeMap;

use protocol::metrics::MetricSample;
use protocol::streams::{LayerCounts, NodeStatus, NodeStatusUpdate};

use super::Stamp;
use crate::registry::NodeRegistry;

/// Builds the update and its samples (`nodes.active`, `nodes.offline`, `nodes.total`,
/// `nodes.updates_total`) from the registry as it is now.
pub(super) fn build(
    registry: &NodeRegistry,
    reports_received: u64,
    stamp: Stamp,
) -> (NodeStatusUpdate, Vec<MetricSample>) {
    let mut layers: BTreeMap<String, LayerCounts> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut total_updates = 0u64;
    for entry in registry.nodes() {
        let state = &entry.state;
        let counts = layers.entry(state.layer.clone()).or_default();
        if entry.online {
            counts.active += 1;
        } else {
            counts.offline += 1;
        }
        total_updates = total_updates.saturating_add(state.update_count);
        nodes.push(NodeStatus {
            node_id: state.node_id.clone(),
            layer: state.layer.clone(),
            online: entry.online,
            update_count: state.update_count,
            last_seen: humantime::format_rfc3339_millis(entry.last_seen_wall).to_string(),
            last_sync_time: state.last_sync_time.clone(),
            last_sync_count: state.last_sync_count,
        });
    }
    let (active_nodes, offline_nodes) = registry.counts();
    let update = NodeStatusUpdate {
        active_nodes,
        offline_nodes,
        total_nodes: active_nodes + offline_nodes,
        total_updates,
        reports_received,
        layers,
        nodes,
        tick: stamp.tick,
        lease_epoch: stamp.lease_epoch,
    };
    let samples = [
        ("nodes.active", active_nodes as f64),
        ("nodes.offline", offline_nodes as f64),
        ("nodes.total", update.total_nodes as f64),
        ("nodes.updates_total", total_updates as f64),
    ]
    .into_iter()
    .map(|(metric, value)| MetricSample::new(metric, value, stamp.at_ms))
    .collect();
    (update, samples)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use protocol::NodeState;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn counts_layers_and_lists_every_node_with_its_online_flag() {
        let start = Instant::now();
        let wall = SystemTime::now();
        let mut registry = NodeRegistry::new(Duration::from_secs(15), Duration::from_secs(60), 10);
        for (id, layer, updates) in [("a", "edge", 3), ("b", "edge", 4), ("c", "core", 5)] {
            let state = NodeState {
                node_id: id.into(),
                layer: layer.into(),
                update_count: updates,
                ..NodeState::default()
            };
            let seen = if id == "a" {
                start
            } else {
                start + Duration::from_secs(10)
            };
            registry.observe(state, seen, wall).unwrap();
        }
        registry.sweep(start + Duration::from_secs(16));
        let stamp = Stamp {
            tick: 9,
            lease_epoch: 2,
            at_ms: 1_000,
        };
        let (update, samples) = build(&registry, 7, stamp);
        assert_eq!((update.active_nodes, update.offline_nodes), (2, 1));
        assert_eq!(update.total_updates, 12);
        assert_eq!(update.reports_received, 7);
        assert_eq!(
            update.layers["edge"],
            LayerCounts {
                active: 1,
                offline: 1
            }
        );
        assert_eq!(
            update.layers["core"],
            LayerCounts {
                active: 1,
                offline: 0
            }
        );
        let flags: Vec<_> = update
            .nodes
            .iter()
            .map(|n| (n.node_id.as_str(), n.online))
            .collect();
        assert_eq!(flags, [("a", false), ("b", true), ("c", true)]);
        assert_eq!((update.tick, update.lease_epoch), (9, 2));
        assert_eq!(samples[0], MetricSample::new("nodes.active", 2.0, 1_000));
    }
}

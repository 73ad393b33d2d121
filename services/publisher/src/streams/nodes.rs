//! `node_status_update` (room `nodes`): every known node with its state (online, offline or
//! stopped) and the connection figures the gateways measured, plus counts.

use std::collections::BTreeMap;

use protocol::metrics::MetricSample;
use protocol::streams::{LayerCounts, NetworkTotals, NodeRunState, NodeStatusUpdate};

use super::Stamp;
use crate::registry::NodeRegistry;

/// Builds the update and its samples (`nodes.active`, `nodes.offline`, `nodes.stopped`,
/// `nodes.total`, `nodes.updates_total`, and `nodes.rtt_ms.avg` when some node has an RTT)
/// from the registry as it is now.
pub(super) fn build(
    registry: &NodeRegistry,
    reports_received: u64,
    stamp: Stamp,
) -> (NodeStatusUpdate, Vec<MetricSample>) {
    let mut layers: BTreeMap<String, LayerCounts> = BTreeMap::new();
    let mut total_updates = 0u64;
    let mut network = NetworkTotals::default();
    let mut rtts = Vec::new();
    let nodes = registry.statuses();
    for status in &nodes {
        let counts = layers.entry(status.layer.clone()).or_default();
        match status.state {
            NodeRunState::Online => counts.active += 1,
            NodeRunState::Offline => counts.offline += 1,
            NodeRunState::Stopped => counts.stopped += 1,
        }
        total_updates = total_updates.saturating_add(status.update_count);
        if let Some(figures) = &status.network {
            network.connections = network.connections.saturating_add(figures.connections);
            network.messages_in = network.messages_in.saturating_add(figures.messages_in);
            network.messages_out = network.messages_out.saturating_add(figures.messages_out);
            rtts.extend(figures.rtt_ms);
        }
    }
    if !rtts.is_empty() {
        network.avg_rtt_ms = Some(rtts.iter().sum::<f64>() / rtts.len() as f64);
    }
    let (active_nodes, offline_nodes) = registry.counts();
    let stopped_nodes = registry.stopped_count();
    let update = NodeStatusUpdate {
        active_nodes,
        offline_nodes,
        stopped_nodes,
        total_nodes: active_nodes + offline_nodes + stopped_nodes,
        total_updates,
        reports_received,
        layers,
        nodes,
        network,
        tick: stamp.tick,
        lease_epoch: stamp.lease_epoch,
    };
    let mut samples: Vec<MetricSample> = [
        ("nodes.active", active_nodes as f64),
        ("nodes.offline", offline_nodes as f64),
        ("nodes.stopped", stopped_nodes as f64),
        ("nodes.total", update.total_nodes as f64),
        ("nodes.updates_total", total_updates as f64),
    ]
    .into_iter()
    .map(|(metric, value)| MetricSample::new(metric, value, stamp.at_ms))
    .collect();
    if let Some(rtt) = network.avg_rtt_ms {
        samples.push(MetricSample::new("nodes.rtt_ms.avg", rtt, stamp.at_ms));
    }
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
                offline: 1,
                stopped: 0,
            }
        );
        assert_eq!(
            update.layers["core"],
            LayerCounts {
                active: 1,
                offline: 0,
                stopped: 0,
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
        assert_eq!(update.network, NetworkTotals::default());
        assert!(update.nodes.iter().all(|node| node.network.is_none()));
    }

    #[test]
    fn a_stopped_node_is_counted_apart_and_network_totals_sum_the_gateways_figures() {
        use protocol::nodes::{NodeLink, NodeLinksReport};

        let now = Instant::now();
        let wall = SystemTime::now();
        let mut registry = NodeRegistry::new(Duration::from_secs(15), Duration::from_secs(60), 10);
        for id in ["a", "b", "c"] {
            let mut state = NodeState {
                node_id: id.into(),
                layer: "edge".into(),
                ..NodeState::default()
            };
            if id == "c" {
                state.operation_log = vec![serde_json::json!({"operation": "stop"})];
            }
            registry.observe(state, now, wall).unwrap();
        }
        let link = |node_id: &str, rtt: Option<f64>, messages_in: u64| NodeLink {
            node_id: node_id.into(),
            connections: 1,
            rtt_last_ms: rtt,
            rtt_smoothed_ms: rtt,
            messages_in,
            messages_out: 2,
        };
        registry.observe_links(
            NodeLinksReport {
                gateway_id: "gw".into(),
                interval_ms: 5_000,
                timestamp_ms: 0,
                page: 0,
                pages: 1,
                nodes: vec![link("a", Some(1.0), 3), link("b", Some(3.0), 4)],
            },
            now,
        );
        let stamp = Stamp {
            tick: 1,
            lease_epoch: 1,
            at_ms: 5,
        };
        let (update, samples) = build(&registry, 3, stamp);
        assert_eq!(
            (
                update.active_nodes,
                update.offline_nodes,
                update.stopped_nodes,
                update.total_nodes
            ),
            (2, 0, 1, 3)
        );
        assert_eq!(update.layers["edge"].stopped, 1);
        assert_eq!(update.nodes[2].state, NodeRunState::Stopped);
        assert!(!update.nodes[2].online);
        assert_eq!(
            update.network,
            NetworkTotals {
                connections: 2,
                avg_rtt_ms: Some(2.0),
                messages_in: 7,
                messages_out: 4,
            }
        );
        assert_eq!(update.nodes[0].network.unwrap().rtt_ms, Some(1.0));
        assert!(update.nodes[2].network.is_none());
        assert!(samples.contains(&MetricSample::new("nodes.rtt_ms.avg", 2.0, 5)));
        assert!(samples.contains(&MetricSample::new("nodes.stopped", 1.0, 5)));
    }
}

//! `resource_update` (room `resources`): CPU, memory, storage and load as the online nodes
//! report them in `current_data` (`cpu_percent`, `memory_used_percent`,
//! `disk_used_percent`, `load_1m`, and `storage: [{mount, used_bytes, total_bytes,
//! used_percent}]` per watched mount; the node agent binary reports real host figures).
//! Figures no node reports stay absent rather than showing a made-up zero.

use protocol::metrics::MetricSample;
use protocol::streams::{NodeResources, ResourceFigures, ResourceUpdate, StorageUse};
use serde_json::Value;

use super::Stamp;
use crate::registry::NodeRegistry;

/// Nodes listed in [`ResourceUpdate::top`] (seed 001: "top 10 device details").
const TOP_NODES: usize = 10;

/// Most mounts listed per node; a node reporting more is cut to its first ones.
const MAX_MOUNTS: usize = 32;

/// The figures read from `current_data`, by field name.
const FIELDS: [&str; 4] = [
    "cpu_percent",
    "memory_used_percent",
    "disk_used_percent",
    "load_1m",
];

/// Builds the update and its samples: per node `node.<figure>` labelled `node_id`/`layer`,
/// and cluster-wide `resources.<figure>.avg` / `.max`.
pub(super) fn build(registry: &NodeRegistry, stamp: Stamp) -> (ResourceUpdate, Vec<MetricSample>) {
    let mut reporting = Vec::new();
    let mut samples = Vec::new();
    for entry in registry.online_nodes() {
        let storage = storage_of(&entry.state.current_data);
        let mut figures = figures_of(&entry.state.current_data);
        // The fullest mount stands for the node's disk when it lists mounts only.
        if figures.disk_used_percent.is_none() {
            figures.disk_used_percent = storage
                .iter()
                .map(|mount| mount.used_percent)
                .reduce(f64::max);
        }
        if figures == ResourceFigures::default() && storage.is_empty() {
            continue;
        }
        for mount in &storage {
            samples.push(
                MetricSample::new("node.storage_used_percent", mount.used_percent, stamp.at_ms)
                    .with_label("node_id", entry.state.node_id.as_str())
                    .with_label("mount", mount.mount.as_str()),
            );
        }
        for (field, value) in FIELDS.iter().zip(values(&figures)) {
            if let Some(value) = value {
                samples.push(
                    MetricSample::new(format!("node.{field}"), value, stamp.at_ms)
                        .with_label("node_id", entry.state.node_id.as_str())
                        .with_label("layer", entry.state.layer.as_str()),
                );
            }
        }
        reporting.push(NodeResources {
            node_id: entry.state.node_id.clone(),
            layer: entry.state.layer.clone(),
            figures,
            storage,
        });
    }
    let mut average = [None; 4];
    let mut max = [None; 4];
    for (index, slot) in average.iter_mut().enumerate() {
        let reported: Vec<f64> = reporting
            .iter()
            .filter_map(|node| values(&node.figures)[index])
            .collect();
        if reported.is_empty() {
            continue;
        }
        let mean = reported.iter().sum::<f64>() / reported.len() as f64;
        *slot = Some(mean);
        max[index] = reported.iter().copied().reduce(f64::max);
    }
    for (field, (avg, top)) in FIELDS.iter().zip(average.iter().zip(max.iter())) {
        if let (Some(avg), Some(top)) = (avg, top) {
            samples.push(MetricSample::new(
                format!("resources.{field}.avg"),
                *avg,
                stamp.at_ms,
            ));
            samples.push(MetricSample::new(
                format!("resources.{field}.max"),
                *top,
                stamp.at_ms,
            ));
        }
    }
    let nodes_reporting = crate::registry::as_u64(reporting.len());
    // Busiest first; nodes without a CPU figure last, in node id order (the sort is stable).
    reporting.sort_by(|a, b| {
        let cpu = |node: &NodeResources| node.figures.cpu_percent.unwrap_or(f64::NEG_INFINITY);
        cpu(b).total_cmp(&cpu(a))
    });
    reporting.truncate(TOP_NODES);
    let update = ResourceUpdate {
        nodes_reporting,
        average: from_values(average),
        max: from_values(max),
        top: reporting,
        tick: stamp.tick,
        lease_epoch: stamp.lease_epoch,
    };
    (update, samples)
}

fn figures_of(current_data: &Value) -> ResourceFigures {
    let read = |field: &str| {
        current_data
            .get(field)
            .and_then(Value::as_f64)
            .filter(|value| value.is_finite())
    };
    from_values(FIELDS.map(read))
}

/// The well-formed entries of `current_data.storage` (others are skipped, not fatal).
fn storage_of(current_data: &Value) -> Vec<StorageUse> {
    let Some(entries) = current_data.get("storage").and_then(Value::as_array) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<StorageUse>(entry.clone()).ok())
        .filter(|mount| mount.used_percent.is_finite())
        .take(MAX_MOUNTS)
        .collect()
}

fn values(figures: &ResourceFigures) -> [Option<f64>; 4] {
    [
        figures.cpu_percent,
        figures.memory_used_percent,
        figures.disk_used_percent,
        figures.load_1m,
    ]
}

fn from_values([cpu, memory, disk, load]: [Option<f64>; 4]) -> ResourceFigures {
    ResourceFigures {
        cpu_percent: cpu,
        memory_used_percent: memory,
        disk_used_percent: disk,
        load_1m: load,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use protocol::NodeState;
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn averages_and_top_nodes_come_from_reported_figures_only() {
        let mut registry = NodeRegistry::new(Duration::from_secs(15), Duration::from_secs(60), 20);
        let data = [
            (
                "a",
                json!({"cpu_percent": 10.0, "memory_used_percent": 50.0}),
            ),
            ("b", json!({"cpu_percent": 30.0, "load_1m": 1.5})),
            (
                "c",
                json!({"unrelated": true, "storage": [{"mount": "/", "bad": 1}]}),
            ),
            (
                "e",
                json!({"storage": [
                    {"mount": "/", "used_bytes": 70, "total_bytes": 100, "used_percent": 70.0},
                    {"mount": "/data", "used_bytes": 90, "total_bytes": 100, "used_percent": 90.0}
                ]}),
            ),
            (
                "d",
                json!({"memory_used_percent": 70.0, "cpu_percent": "high"}),
            ),
        ];
        for (id, current_data) in data {
            let state = NodeState {
                node_id: id.into(),
                layer: "edge".into(),
                current_data,
                ..NodeState::default()
            };
            registry
                .observe(state, Instant::now(), SystemTime::now())
                .unwrap();
        }
        let stamp = Stamp {
            tick: 3,
            lease_epoch: 1,
            at_ms: 9,
        };
        let (update, samples) = build(&registry, stamp);
        assert_eq!(update.nodes_reporting, 4);
        assert_eq!(update.average.cpu_percent, Some(20.0));
        assert_eq!(update.average.memory_used_percent, Some(60.0));
        assert_eq!(update.average.load_1m, Some(1.5));
        // Only e lists mounts: its fullest one is its disk figure.
        assert_eq!(update.average.disk_used_percent, Some(90.0));
        assert_eq!(update.max.cpu_percent, Some(30.0));
        let order: Vec<_> = update
            .top
            .iter()
            .map(|node| node.node_id.as_str())
            .collect();
        assert_eq!(order, ["b", "a", "d", "e"]);
        let storage = &update.top[3].storage;
        assert_eq!(storage.len(), 2);
        assert_eq!(
            (storage[1].mount.as_str(), storage[1].used_bytes),
            ("/data", 90)
        );
        assert!(update.top[0].storage.is_empty());
        assert!(
            samples
                .iter()
                .any(|s| s.metric == "node.storage_used_percent"
                    && s.labels["mount"] == "/data"
                    && s.value == 90.0)
        );
        let cpu_of_a = samples
            .iter()
            .find(|s| s.metric == "node.cpu_percent" && s.labels["node_id"] == "a")
            .unwrap();
        assert_eq!(cpu_of_a.value, 10.0);
        assert!(
            samples
                .iter()
                .any(|s| s.metric == "resources.cpu_percent.avg" && s.value == 20.0)
        );
    }
}

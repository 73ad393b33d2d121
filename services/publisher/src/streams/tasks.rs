//! `task_progress_update` (room `tasks`): tasks as the online nodes report them.
//!
//! A node reports tasks in its state, in one of two ways (the first found wins):
//! - `current_data.tasks` as a list of `{task_id|id, status, progress?, name?}`, or as counts
//!   `{pending, running, completed, failed}`;
//! - `operation_log` entries carrying `task_id` and `status` (the newest entry per task wins;
//!   entries without `task_id`, such as the agent's command log, are not tasks).
//!
//! Statuses are `pending`, `running`, `completed` and `failed` (common synonyms such as
//! `queued`, `in_progress`, `done`, `error` are mapped). Nodes reporting no tasks add
//! nothing: with none at all the update honestly shows zeros and an empty list.

use std::collections::BTreeMap;

use protocol::metrics::MetricSample;
use protocol::streams::{TaskProgressUpdate, TaskStatus};
use serde_json::Value;

use super::Stamp;
use crate::registry::NodeRegistry;

/// Most tasks listed in one update (running ones first); counts always cover all of them.
const MAX_LISTED_TASKS: usize = 100;

/// The four task states, in the order tasks are listed.
const STATES: [&str; 4] = ["running", "pending", "failed", "completed"];

/// Builds the update and its samples (`tasks.pending`, `tasks.running`, …).
pub(super) fn build(
    registry: &NodeRegistry,
    stamp: Stamp,
) -> (TaskProgressUpdate, Vec<MetricSample>) {
    let mut counts: BTreeMap<&'static str, u64> = STATES.iter().map(|state| (*state, 0)).collect();
    let mut tasks = Vec::new();
    for entry in registry.online_nodes() {
        let state = &entry.state;
        let reported = state.current_data.get("tasks");
        if let Some(Value::Object(fields)) = reported {
            for status in STATES {
                let count = fields.get(status).and_then(Value::as_u64).unwrap_or(0);
                add(&mut counts, status, count);
            }
            continue;
        }
        let listed = match reported {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| task_of(item, &state.node_id))
                .collect(),
            _ => tasks_from_log(&state.operation_log, &state.node_id),
        };
        for task in listed {
            if let Some(status) = STATES.iter().find(|status| **status == task.status) {
                add(&mut counts, status, 1);
            }
            tasks.push(task);
        }
    }
    tasks.sort_by_key(|task| STATES.iter().position(|status| *status == task.status));
    tasks.truncate(MAX_LISTED_TASKS);
    let count = |status: &str| counts.get(status).copied().unwrap_or(0);
    let update = TaskProgressUpdate {
        pending: count("pending"),
        running: count("running"),
        completed: count("completed"),
        failed: count("failed"),
        tasks,
        tick: stamp.tick,
        lease_epoch: stamp.lease_epoch,
    };
    let samples = STATES
        .iter()
        .map(|status| {
            MetricSample::new(format!("tasks.{status}"), count(status) as f64, stamp.at_ms)
        })
        .collect();
    (update, samples)
}

fn add(counts: &mut BTreeMap<&'static str, u64>, status: &'static str, count: u64) {
    let slot = counts.entry(status).or_insert(0);
    *slot = slot.saturating_add(count);
}

/// Maps a reported status to one of [`STATES`].
fn normalise_status(status: &str) -> Option<&'static str> {
    match status.to_ascii_lowercase().as_str() {
        "pending" | "queued" | "waiting" | "scheduled" => Some("pending"),
        "running" | "in_progress" | "active" | "started" => Some("running"),
        "completed" | "complete" | "done" | "succeeded" | "success" => Some("completed"),
        "failed" | "failure" | "error" | "errored" | "cancelled" => Some("failed"),
        _ => None,
    }
}

fn task_of(item: &Value, node_id: &str) -> Option<TaskStatus> {
    let id = item.get("task_id").or_else(|| item.get("id"))?;
    let task_id = match id {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let status = normalise_status(item.get("status")?.as_str()?)?;
    Some(TaskStatus {
        task_id,
        source: node_id.to_owned(),
        status: status.to_owned(),
        progress: item
            .get("progress")
            .and_then(Value::as_f64)
            .filter(|progress| progress.is_finite()),
        name: item.get("name").and_then(Value::as_str).map(str::to_owned),
    })
}

/// The newest status of every task mentioned in the log, in order of last mention.
fn tasks_from_log(log: &[Value], node_id: &str) -> Vec<TaskStatus> {
    let mut latest: Vec<TaskStatus> = Vec::new();
    // Only `task_id` marks a task here: other log entries (commands) carry a plain `id`.
    let task_entries = log.iter().filter(|entry| entry.get("task_id").is_some());
    for task in task_entries.filter_map(|entry| task_of(entry, node_id)) {
        latest.retain(|seen| seen.task_id != task.task_id);
        latest.push(task);
    }
    latest
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use protocol::NodeState;
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;

    fn registry_with(states: Vec<NodeState>) -> NodeRegistry {
        let mut registry = NodeRegistry::new(Duration::from_secs(15), Duration::from_secs(60), 10);
        for state in states {
            registry
                .observe(state, Instant::now(), SystemTime::now())
                .unwrap();
        }
        registry
    }

    fn stamp() -> Stamp {
        Stamp {
            tick: 1,
            lease_epoch: 1,
            at_ms: 5,
        }
    }

    #[test]
    fn no_task_data_gives_honest_zeros() {
        let registry = registry_with(vec![NodeState {
            node_id: "a".into(),
            current_data: json!({"cpu_percent": 3.0}),
            ..NodeState::default()
        }]);
        let (update, samples) = build(&registry, stamp());
        assert_eq!(
            (
                update.pending,
                update.running,
                update.completed,
                update.failed
            ),
            (0, 0, 0, 0)
        );
        assert!(update.tasks.is_empty());
        assert_eq!(samples.len(), 4);
    }

    #[test]
    fn tasks_come_from_lists_counts_and_the_operation_log() {
        let registry = registry_with(vec![
            NodeState {
                node_id: "a".into(),
                current_data: json!({"tasks": [
                    {"task_id": "t1", "status": "running", "progress": 40.0, "name": "sync"},
                    {"id": 7, "status": "done"},
                    {"status": "running"}
                ]}),
                ..NodeState::default()
            },
            NodeState {
                node_id: "b".into(),
                current_data: json!({"tasks": {"pending": 2, "failed": 1}}),
                ..NodeState::default()
            },
            NodeState {
                node_id: "c".into(),
                operation_log: vec![
                    json!({"operation": "command", "id": "c1", "status": "done"}),
                    json!({"task_id": "x", "status": "queued"}),
                    json!({"op": "sync"}),
                    json!({"task_id": "x", "status": "error"}),
                ],
                ..NodeState::default()
            },
        ]);
        let (update, _) = build(&registry, stamp());
        assert_eq!(
            (
                update.pending,
                update.running,
                update.completed,
                update.failed
            ),
            (2, 1, 1, 2)
        );
        let listed: Vec<_> = update
            .tasks
            .iter()
            .map(|task| {
                (
                    task.task_id.as_str(),
                    task.status.as_str(),
                    task.source.as_str(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("t1", "running", "a"),
                ("x", "failed", "c"),
                ("7", "completed", "a")
            ]
        );
        assert_eq!(update.tasks[0].progress, Some(40.0));
    }
}

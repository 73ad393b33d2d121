//! Simulated node agents for the embedded engine, so the dashboard shows live data on first
//! start. They are real agents (`client::agent`) speaking the real protocol to the in-process
//! gateway; only their figures are invented — a bounded random walk, marked `simulated`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::{Claims, Issuer, Role};
use client::agent::{Agent, AgentError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

/// The `[simulation]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Simulated node agents started with the process; 0 disables them.
    pub nodes: usize,
    /// How often each simulated node reports.
    #[serde(with = "humantime_serde")]
    pub node_interval: Duration,
    /// Run one simulated ML node (seed 002) that batch-ingest collects from.
    pub ml_node: bool,
    /// Time between two batches of the simulated ML node.
    #[serde(with = "humantime_serde")]
    pub ml_batch_interval: Duration,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            node_interval: Duration::from_secs(2),
            ml_node: true,
            ml_batch_interval: Duration::from_secs(1),
        }
    }
}

/// More simulated nodes than this is a load test, which `loadgen` does better.
const MAX_SIMULATED_NODES: usize = 1000;

impl SimulationConfig {
    /// Checks the section and lists every problem found.
    ///
    /// # Errors
    /// Every problem, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.nodes > MAX_SIMULATED_NODES {
            problems.push(format!(
                "simulation.nodes must be at most {MAX_SIMULATED_NODES}"
            ));
        }
        if !(client::agent::MIN_UPDATE_INTERVAL..=client::agent::MAX_UPDATE_INTERVAL)
            .contains(&self.node_interval)
        {
            problems.push("simulation.node_interval must be between 100ms and 1day".to_owned());
        }
        if self.ml_batch_interval.is_zero() {
            problems.push("simulation.ml_batch_interval must be positive".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Layers the simulated nodes are spread over.
const LAYERS: [&str; 3] = ["edge", "core", "ml"];

/// Figures of one simulated node, walked a little at every report.
#[derive(Debug, Clone)]
struct Figures {
    node_id: String,
    cpu_percent: f64,
    memory_used_percent: f64,
    load_1m: f64,
    queue_depth: u64,
    processed: u64,
    /// Disk size and use of the one simulated mount, in bytes.
    disk_total_bytes: u64,
    disk_used_bytes: u64,
    tasks: SimulatedTasks,
}

/// Simulated disk: 256 GiB.
const SIMULATED_DISK_BYTES: u64 = 256 * 1024 * 1024 * 1024;

impl Figures {
    fn new(node_id: String) -> Self {
        let mut rng = rand::rng();
        let disk_total_bytes = SIMULATED_DISK_BYTES;
        Self {
            node_id,
            cpu_percent: rng.random_range(10.0..60.0),
            memory_used_percent: rng.random_range(30.0..70.0),
            load_1m: 0.5,
            queue_depth: rng.random_range(0..10),
            processed: 0,
            disk_total_bytes,
            disk_used_bytes: (disk_total_bytes as f64 * rng.random_range(0.2..0.7)) as u64,
            tasks: SimulatedTasks::default(),
        }
    }

    fn step(&mut self) -> Value {
        let mut rng = rand::rng();
        self.cpu_percent = (self.cpu_percent + rng.random_range(-8.0..8.0)).clamp(2.0, 98.0);
        self.memory_used_percent =
            (self.memory_used_percent + rng.random_range(-2.0..2.0)).clamp(10.0, 95.0);
        self.load_1m = (self.cpu_percent / 25.0 + rng.random_range(-0.2..0.2)).max(0.0);
        self.queue_depth = self
            .queue_depth
            .saturating_add_signed(rng.random_range(-3..4));
        self.processed += rng.random_range(0..20);
        // The disk fills slowly and is cleaned up before it is full.
        self.disk_used_bytes += rng.random_range(0..64 * 1024 * 1024);
        if self.disk_used_bytes > self.disk_total_bytes / 10 * 9 {
            self.disk_used_bytes = self.disk_total_bytes / 2;
        }
        let disk_used_percent =
            (self.disk_used_bytes as f64 * 1000.0 / self.disk_total_bytes as f64).round() / 10.0;
        let tasks = self.tasks.step(&self.node_id);
        json!({
            "simulated": true,
            "cpu_percent": (self.cpu_percent * 10.0).round() / 10.0,
            "memory_used_percent": (self.memory_used_percent * 10.0).round() / 10.0,
            "disk_used_percent": disk_used_percent,
            "storage": [{
                "mount": "/",
                "used_bytes": self.disk_used_bytes,
                "total_bytes": self.disk_total_bytes,
                "used_percent": disk_used_percent,
            }],
            "load_1m": (self.load_1m * 100.0).round() / 100.0,
            "queue_depth": self.queue_depth,
            "processed_total": self.processed,
            "tasks": tasks,
        })
    }
}

/// How many tasks a simulated node keeps: waiting and running ones, plus the last finished.
const SIMULATED_OPEN_TASKS: usize = 3;
const SIMULATED_FINISHED_TASKS: usize = 2;

/// A simulated node's work, so the tasks view has running tasks with progress to show: every
/// report moves running tasks on; a finished task (completed, or now and then failed) makes
/// room for a new waiting one.
#[derive(Debug, Clone, Default)]
struct SimulatedTasks {
    next_id: u64,
    open: Vec<SimulatedTask>,
    finished: std::collections::VecDeque<SimulatedTask>,
}

#[derive(Debug, Clone)]
struct SimulatedTask {
    id: u64,
    status: &'static str,
    progress: f64,
}

impl SimulatedTasks {
    fn step(&mut self, node_id: &str) -> Value {
        let mut rng = rand::rng();
        while self.open.len() < SIMULATED_OPEN_TASKS {
            self.next_id += 1;
            self.open.push(SimulatedTask {
                id: self.next_id,
                status: "pending",
                progress: 0.0,
            });
        }
        // One task runs at a time per node, the oldest waiting one next.
        let idle = !self.open.iter().any(|task| task.status == "running");
        if let Some(task) = self
            .open
            .iter_mut()
            .find(|task| idle && task.status == "pending")
        {
            task.status = "running";
        }
        for task in self.open.iter_mut().filter(|task| task.status == "running") {
            task.progress = (task.progress + rng.random_range(3.0..12.0)).min(100.0);
            if task.progress >= 100.0 {
                task.status = "completed";
            } else if rng.random_bool(0.01) {
                task.status = "failed";
            }
        }
        let (finished, open): (Vec<_>, Vec<_>) = self
            .open
            .drain(..)
            .partition(|task| matches!(task.status, "completed" | "failed"));
        self.open = open;
        for task in finished {
            self.finished.push_back(task);
            if self.finished.len() > SIMULATED_FINISHED_TASKS {
                self.finished.pop_front();
            }
        }
        self.open
            .iter()
            .chain(&self.finished)
            .map(|task| {
                json!({
                    "task_id": format!("{node_id}-job-{}", task.id),
                    "name": format!("simulated job {}", task.id),
                    "status": task.status,
                    "progress": (task.progress * 10.0).round() / 10.0,
                })
            })
            .collect()
    }
}

/// The running simulated agents.
pub struct SimulatedNodes {
    agents: Vec<Agent>,
}

impl SimulatedNodes {
    /// Starts `config.nodes` agents against `gateway_url`, each with a node token signed by
    /// `hmac_secret` (the gateway's own).
    ///
    /// # Errors
    /// The first agent that cannot start.
    pub fn start(
        config: &SimulationConfig,
        gateway_url: &str,
        hmac_secret: &[u8],
    ) -> Result<Self, AgentError> {
        let issuer = Issuer::hs256(hmac_secret);
        let mut agents = Vec::with_capacity(config.nodes);
        for index in 0..config.nodes {
            let node_id = format!("sim-node-{}", index + 1);
            let Some(token) = node_token(&issuer, &node_id) else {
                warn!(node_id, "simulated node skipped: token could not be issued");
                continue;
            };
            let figures = Arc::new(Mutex::new(Figures::new(node_id.clone())));
            let agent = Agent::builder(gateway_url, token)
                .node_id(node_id.clone())
                .layer(LAYERS[index % LAYERS.len()])
                .update_interval(config.node_interval)
                .state_provider(move || {
                    figures
                        .lock()
                        .map(|mut figures| figures.step())
                        .unwrap_or(Value::Null)
                })
                .start()?;
            agent
                .handle()
                .log_operation("start", json!({"simulated": true}));
            agents.push(agent);
        }
        if !agents.is_empty() {
            info!(count = agents.len(), "simulated node agents started");
        }
        Ok(Self { agents })
    }

    /// Stops every agent (final state, close frame).
    pub async fn stop(self) {
        for agent in self.agents {
            agent.stop().await;
        }
    }
}

fn node_token(issuer: &Issuer, node_id: &str) -> Option<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let claims = Claims {
        sub: node_id.to_owned(),
        // Simulated nodes live as long as the process; a year outlives any demo.
        exp: (now + Duration::from_secs(365 * 24 * 3600)).as_secs(),
        iat: Some(now.as_secs()),
        rooms: Vec::new(),
        publish: Vec::new(),
        role: Role::Node,
        node_id: Some(node_id.to_owned()),
    };
    issuer.issue(&claims).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_tasks_run_one_at_a_time_and_finish_into_new_ones() {
        let mut tasks = SimulatedTasks::default();
        let mut seen_running_progress = false;
        let mut seen_completed = false;
        for _ in 0..200 {
            let list = tasks.step("n");
            let list = list.as_array().expect("a list");
            let running = list.iter().filter(|t| t["status"] == "running").count();
            assert!(running <= 1, "{list:?}");
            assert!(list.len() <= SIMULATED_OPEN_TASKS + SIMULATED_FINISHED_TASKS);
            for task in list {
                let progress = task["progress"].as_f64().expect("progress");
                assert!((0.0..=100.0).contains(&progress));
                seen_running_progress |= task["status"] == "running" && progress > 0.0;
                seen_completed |= task["status"] == "completed";
                assert!(task["task_id"].as_str().expect("id").starts_with("n-job-"));
            }
        }
        assert!(seen_running_progress && seen_completed);
    }

    #[test]
    fn simulated_storage_stays_below_the_disk_size() {
        let mut figures = Figures::new("n".into());
        for _ in 0..50 {
            let data = figures.step();
            let used = data["storage"][0]["used_bytes"].as_u64().expect("used");
            let total = data["storage"][0]["total_bytes"].as_u64().expect("total");
            assert!(used < total);
            assert_eq!(
                data["disk_used_percent"],
                data["storage"][0]["used_percent"]
            );
        }
    }
}

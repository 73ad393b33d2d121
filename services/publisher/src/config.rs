//! The publisher's configuration: shared sections from `settings` plus the `[publisher]`
//! section.

use std::time::Duration;

use protocol::streams;
use serde::{Deserialize, Serialize};
use settings::{BusConfig, StoreConfig, TelemetryConfig};

/// Everything `switchboard-publisher` reads from defaults, `--config FILE` and `SWITCHBOARD__*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The publisher itself.
    pub publisher: PublisherConfig,
    /// The message bus (NATS, or the embedded in-memory bus when `nats_url` is unset).
    pub bus: BusConfig,
    /// The store holding the leader lease (Redis, or in-memory when `redis_url` is unset).
    pub store: StoreConfig,
    /// Logs, traces and the admin server.
    pub telemetry: TelemetryConfig,
}

/// The `[publisher]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublisherConfig {
    /// This replica's name as a lease holder; a random `pub-xxxxxxxx` when unset. Must be
    /// unique per running process (a pod name is fine).
    pub instance_id: Option<String>,
    /// Period of `node_status_update` in room `nodes` (seed 001: 5 s).
    #[serde(with = "humantime_serde")]
    pub nodes_interval: Duration,
    /// Period of `task_progress_update` in room `tasks` (seed 001: 2 s).
    #[serde(with = "humantime_serde")]
    pub tasks_interval: Duration,
    /// Period of `metrics_update` in room `metrics` (seed 001: 10 s).
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// Period of `resource_update` in room `resources` (seed 001: 15 s).
    #[serde(with = "humantime_serde")]
    pub resources_interval: Duration,
    /// A node with no state report for this long is offline. Keep it at about three of the
    /// agents' report intervals, so one lost report does not flap the node.
    #[serde(with = "humantime_serde")]
    pub node_timeout: Duration,
    /// An offline node is forgotten (topology change `left`) after this much silence.
    #[serde(with = "humantime_serde")]
    pub node_forget_after: Duration,
    /// How often nodes are checked against `node_timeout`; bounds how late an `offline`
    /// topology change and alert can be.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Most nodes kept in the registry; reports from further nodes are rejected and counted.
    pub max_nodes: usize,
    /// Name of the leader lease in the store; replicas sharing it elect one publisher.
    pub lease_name: String,
    /// How long the lease outlives its last renewal. A crashed leader is replaced within
    /// about `lease_ttl + lease_renew_interval`; keep that under two `nodes_interval`s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often the leader renews the lease and a standby tries to take it. At most half
    /// of `lease_ttl`, so one slow renewal does not lose the lease.
    #[serde(with = "humantime_serde")]
    pub lease_renew_interval: Duration,
    /// Send metric samples (`nodes.active`, `node.cpu_percent`, …) to `sb.ingest.metric`.
    pub emit_metric_samples: bool,
    /// Upper bound on the drain after SIGTERM (stop streams, release the lease, flush the bus).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            instance_id: None,
            nodes_interval: streams::default_interval(streams::rooms::NODES),
            tasks_interval: streams::default_interval(streams::rooms::TASKS),
            metrics_interval: streams::default_interval(streams::rooms::METRICS),
            resources_interval: streams::default_interval(streams::rooms::RESOURCES),
            node_timeout: Duration::from_secs(15),
            node_forget_after: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(1),
            max_nodes: 10_000,
            lease_name: "publisher".to_owned(),
            lease_ttl: Duration::from_secs(5),
            lease_renew_interval: Duration::from_secs(1),
            emit_metric_samples: true,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Shortest accepted stream interval: shorter ones would flood rooms and the store.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

impl Config {
    /// Checks the configuration and lists every problem found.
    ///
    /// # Errors
    /// Returns all problems at once, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.bus.validate(&mut problems);
        self.store.validate(&mut problems);
        self.telemetry.validate(&mut problems);
        let publisher = &self.publisher;
        for (key, interval) in [
            ("nodes_interval", publisher.nodes_interval),
            ("tasks_interval", publisher.tasks_interval),
            ("metrics_interval", publisher.metrics_interval),
            ("resources_interval", publisher.resources_interval),
        ] {
            if interval < MIN_INTERVAL {
                problems.push(format!(
                    "publisher.{key} must be at least {}ms",
                    MIN_INTERVAL.as_millis()
                ));
            }
        }
        if publisher.node_timeout.is_zero() || publisher.sweep_interval.is_zero() {
            problems.push(
                "publisher.node_timeout and publisher.sweep_interval must be greater than zero"
                    .to_owned(),
            );
        }
        if publisher.node_forget_after <= publisher.node_timeout {
            problems
                .push("publisher.node_forget_after must be longer than node_timeout".to_owned());
        }
        if publisher.max_nodes == 0 {
            problems.push("publisher.max_nodes must be at least 1".to_owned());
        }
        if publisher.lease_name.is_empty() || publisher.lease_name.contains(char::is_whitespace) {
            problems.push("publisher.lease_name must be non-empty without whitespace".to_owned());
        }
        if publisher.lease_renew_interval.is_zero()
            || publisher.lease_renew_interval * 2 > publisher.lease_ttl
        {
            problems.push(
                "publisher.lease_renew_interval must be positive and at most half of lease_ttl"
                    .to_owned(),
            );
        }
        if publisher
            .instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            problems.push("publisher.instance_id must not be blank when set".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl service::ServiceConfig for Config {
    /// [`Config::validate`], plus the NATS and Redis URLs the `switchboard-publisher` process needs.
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        service::with_cluster_backends(
            self.validate(),
            "switchboard-publisher",
            &self.bus,
            &self.store,
        )
    }

    fn telemetry(&self) -> &settings::TelemetryConfig {
        &self.telemetry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_seed_001() {
        let config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        let publisher = config.publisher;
        assert_eq!(publisher.nodes_interval, Duration::from_secs(5));
        assert_eq!(publisher.tasks_interval, Duration::from_secs(2));
        assert_eq!(publisher.metrics_interval, Duration::from_secs(10));
        assert_eq!(publisher.resources_interval, Duration::from_secs(15));
    }

    #[test]
    fn every_problem_is_listed() {
        let mut config = Config::default();
        config.publisher.tasks_interval = Duration::from_millis(1);
        config.publisher.node_forget_after = Duration::from_secs(1);
        config.publisher.lease_renew_interval = Duration::from_secs(4);
        config.publisher.lease_name = String::new();
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn intervals_load_from_the_environment_in_human_form() {
        let env = [
            ("SWITCHBOARD__PUBLISHER__NODES_INTERVAL", "750ms"),
            ("SWITCHBOARD__PUBLISHER__LEASE_TTL", "9s"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let config: Config = settings::load(None, &env).unwrap();
        assert_eq!(config.publisher.nodes_interval, Duration::from_millis(750));
        assert_eq!(config.publisher.lease_ttl, Duration::from_secs(9));
    }
}

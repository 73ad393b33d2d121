//! Batch-ingest's configuration: shared sections from `settings` plus `[batch_ingest]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use settings::{BusConfig, StoreConfig, TelemetryConfig};

/// Everything `switchboard-batch-ingest` reads from defaults, `--config FILE` and
/// `SWITCHBOARD__*` variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Batch-ingest itself.
    pub batch_ingest: BatchIngestConfig,
    /// The message bus: JetStream stores the batches (or the embedded in-memory bus when
    /// `nats_url` is unset).
    pub bus: BusConfig,
    /// Where content-hash records live (Redis, or memory when `redis_url` is unset).
    pub store: StoreConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

/// Whether the batch stream keeps its messages on disk or in the NATS server's memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStorage {
    /// On disk; survives a NATS restart. The default.
    #[default]
    File,
    /// In memory; lost when NATS restarts. Only for throwaway set-ups.
    Memory,
}

/// One ML node, as `[[batch_ingest.nodes]]` in the TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id: one token of `[A-Za-z0-9_-]`, at most 64 characters.
    pub id: String,
    /// The node's WebSocket URL, `ws://host:port/api/v1/pow/ws` (or `wss://`, verified
    /// against the platform's roots plus `batch_ingest.tls_ca_file`).
    pub url: String,
    /// Whether the node's work starts with the service. Set it to false for a node whose PoW
    /// is started later through the management API.
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

/// The `[batch_ingest]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchIngestConfig {
    /// Address of the HTTP listener: the callbacks ML nodes post to
    /// (`/v1/poc-batches/generated|validated`), the node management API (`/v1/nodes`),
    /// `/metrics`, `/healthz` and `/readyz`. Use `0.0.0.0:8090` in containers.
    pub listen: SocketAddr,
    /// ML nodes connected at start. More can be registered at run time.
    pub nodes: Vec<NodeConfig>,
    /// Shortest wait before reconnecting to a node after a failure or refusal. The seed's
    /// ML nodes expect 3-5 s; lower it only in tests.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest wait before reconnecting; each wait is drawn uniformly between the two.
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// CA certificates (PEM) to trust for `wss://` ML nodes besides the platform's root store
    /// (or `SSL_CERT_FILE`/`SSL_CERT_DIR`): the private CA that signed the nodes' certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// How long a WebSocket connect and handshake to a node may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one store step (hash-record check, JetStream publish and ack, hash-record
    /// write) may take before the delivery is answered 503 (HTTP) or left unacknowledged
    /// (WebSocket), so the node retries. Keep it below the ML node's 3 s ack timeout.
    #[serde(with = "humantime_serde")]
    pub store_timeout: Duration,
    /// JetStream's deduplication window of `SB_BATCHES`; it must cover the ML node's retry
    /// horizon, since within it JetStream alone catches a batch whose hash record was not
    /// written (a crash between the two steps).
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How long a batch's content-hash record is kept, catching duplicates older than the
    /// window. At least `duplicate_window`; raise it if nodes can resend older batches.
    #[serde(with = "humantime_serde")]
    pub hash_ttl: Duration,
    /// Stored batches older than this are removed from `SB_BATCHES`; `0s` keeps them forever.
    /// Size it to how long downstream consumers may lag.
    #[serde(with = "humantime_serde")]
    pub stream_max_age: Duration,
    /// Storage of `SB_BATCHES`.
    pub stream_storage: StreamStorage,
    /// Largest accepted batch, in bytes of JSON (HTTP body or WebSocket message). Keep it
    /// below the NATS server's `max_payload` (1 MiB by default): the stored MessagePack is
    /// about the same size.
    pub max_batch_bytes: usize,
    /// Batches of one node's WebSocket being stored at once. When it is reached, the worker
    /// stops reading that socket until one finishes (backpressure to the node).
    pub max_in_flight_per_node: usize,
    /// HTTP callbacks being stored at once; further requests wait for a slot.
    pub max_http_in_flight: usize,
    /// Interval of `batch_progress` events to room `tasks` (one per node that changed).
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// Upper bound on the drain after SIGTERM: in-flight batches finish and are acknowledged,
    /// node connections close with 1001.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for BatchIngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            nodes: Vec::new(),
            reconnect_min: Duration::from_secs(3),
            reconnect_max: Duration::from_secs(5),
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(5),
            store_timeout: Duration::from_secs(2),
            duplicate_window: Duration::from_secs(15 * 60),
            hash_ttl: Duration::from_secs(24 * 3600),
            stream_max_age: Duration::from_secs(7 * 24 * 3600),
            stream_storage: StreamStorage::File,
            max_batch_bytes: 1024 * 1024,
            max_in_flight_per_node: 64,
            max_http_in_flight: 256,
            progress_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

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
        self.batch_ingest.validate(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl BatchIngestConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        let mut positive = |key: &str, value: Duration| {
            if value.is_zero() {
                problems.push(format!("batch_ingest.{key} must be greater than zero"));
            }
        };
        positive("reconnect_min", self.reconnect_min);
        positive("connect_timeout", self.connect_timeout);
        positive("store_timeout", self.store_timeout);
        positive("duplicate_window", self.duplicate_window);
        positive("progress_interval", self.progress_interval);
        positive("shutdown_grace", self.shutdown_grace);
        if self.reconnect_max < self.reconnect_min {
            problems.push("batch_ingest.reconnect_max must not be below reconnect_min".into());
        }
        if self.hash_ttl < self.duplicate_window {
            problems.push("batch_ingest.hash_ttl must be at least duplicate_window".into());
        }
        if !self.stream_max_age.is_zero() && self.stream_max_age < self.duplicate_window {
            problems
                .push("batch_ingest.stream_max_age must be 0s or at least duplicate_window".into());
        }
        if self.max_batch_bytes < 1024 {
            problems.push("batch_ingest.max_batch_bytes must be at least 1024".into());
        }
        if self.max_in_flight_per_node == 0 || self.max_http_in_flight == 0 {
            problems.push(
                "batch_ingest.max_in_flight_per_node and max_http_in_flight must be positive"
                    .into(),
            );
        }
        if let Err(problem) = self.node_tls() {
            problems.push(problem);
        }
        let mut seen = std::collections::HashSet::new();
        for node in &self.nodes {
            if let Err(problem) = check_node(&node.id, &node.url) {
                problems.push(format!("batch_ingest.nodes: {problem}"));
            }
            if !seen.insert(node.id.as_str()) {
                problems.push(format!(
                    "batch_ingest.nodes: id {:?} appears twice",
                    node.id
                ));
            }
        }
    }
}

impl BatchIngestConfig {
    /// The TLS client configuration of `wss://` nodes: the platform's roots plus
    /// `tls_ca_file`. `None` when neither holds a certificate (then only `ws://` nodes can
    /// connect, and a `wss://` one fails its attempts with "no native root CA certificates").
    ///
    /// # Errors
    /// One sentence naming `batch_ingest.tls_ca_file` when the file is set but unusable.
    pub(crate) fn node_tls(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        match client::tls::client_config(self.tls_ca_file.as_deref()) {
            Ok(config) => Ok(Some(config)),
            Err(client::tls::TlsError::NoRoots) => Ok(None),
            Err(error) => Err(format!("batch_ingest.tls_ca_file: {error}")),
        }
    }
}

/// Checks a node's id and URL; shared by the configuration and the management API.
pub(crate) fn check_node(id: &str, url: &str) -> Result<(), String> {
    protocol::room::validate_node_id(id).map_err(|error| format!("node id {id:?}: {error}"))?;
    let well_formed = ["ws://", "wss://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    });
    if !well_formed {
        return Err(format!(
            "node {id:?}: url {url:?} must be ws://host:port/path or wss://…"
        ));
    }
    Ok(())
}

impl service::ServiceConfig for Config {
    /// [`Config::validate`], plus the NATS and Redis URLs the `switchboard-batch-ingest` process needs.
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        service::with_cluster_backends(
            self.validate(),
            "switchboard-batch-ingest",
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
    fn defaults_are_valid_and_match_the_seed() {
        let config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        let section = &config.batch_ingest;
        assert_eq!(
            (section.reconnect_min, section.reconnect_max),
            (Duration::from_secs(3), Duration::from_secs(5))
        );
        assert_eq!(section.duplicate_window, Duration::from_secs(900));
    }

    #[test]
    fn every_problem_is_listed() {
        let mut config = Config::default();
        let section = &mut config.batch_ingest;
        section.reconnect_max = Duration::from_secs(1);
        section.hash_ttl = Duration::from_secs(60);
        section.max_batch_bytes = 10;
        section.nodes = vec![
            NodeConfig {
                id: "a.b".into(),
                url: "ws://x/api/v1/pow/ws".into(),
                active: true,
            },
            NodeConfig {
                id: "n1".into(),
                url: "http://x".into(),
                active: true,
            },
            NodeConfig {
                id: "n1".into(),
                url: "ws://x".into(),
                active: false,
            },
        ];
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }

    #[test]
    fn nodes_come_from_toml_tables() {
        let toml = r#"
            [batch_ingest]
            listen = "127.0.0.1:9000"
            duplicate_window = "20m"

            [[batch_ingest.nodes]]
            id = "ml-1"
            url = "ws://10.0.0.5:8080/api/v1/pow/ws"

            [[batch_ingest.nodes]]
            id = "ml-2"
            url = "ws://10.0.0.6:8080/api/v1/pow/ws"
            active = false
        "#;
        let dir = tempfile_dir();
        let path = dir.join("batch.toml");
        std::fs::write(&path, toml).unwrap();
        let config: Config = settings::load(Some(&path), &Default::default()).unwrap();
        assert_eq!(config.batch_ingest.nodes.len(), 2);
        assert!(!config.batch_ingest.nodes[1].active);
        assert_eq!(
            config.batch_ingest.duplicate_window,
            Duration::from_secs(1200)
        );
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "batch-ingest-config-{}-{}",
            std::process::id(),
            protocol::time::now_unix_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_unreadable_tls_ca_file_is_a_configuration_problem() {
        let mut config = Config::default();
        config.batch_ingest.tls_ca_file = Some("/nonexistent/ca.pem".into());
        let problems = config.validate().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|problem| problem.starts_with("batch_ingest.tls_ca_file: cannot read CA file")),
            "{problems:?}"
        );
    }
}

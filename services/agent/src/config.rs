//! The agent's configuration: the `[agent]` section plus the shared `[auth]` (for
//! self-signed development tokens only) and `[telemetry]` sections.

use std::path::PathBuf;
use std::time::Duration;

use client::agent::{MAX_UPDATE_INTERVAL, MIN_UPDATE_INTERVAL};
use serde::{Deserialize, Serialize};
use settings::{AuthConfig, Secret, TelemetryConfig};

/// Everything `switchboard-agent` reads from defaults, `--config FILE` and `SWITCHBOARD__*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The node agent itself.
    pub agent: AgentConfig,
    /// Only `auth.hmac_secret` is read, and only when `agent.token` is unset: the agent then
    /// signs its own node token with the cluster's HS256 secret. Meant for development
    /// clusters that share one environment (compose's demo agents, the local cluster); real
    /// nodes get a token from your issuer and never hold the secret.
    pub auth: AuthConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

/// The `[agent]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The gateway's WebSocket endpoint. Point it at the load balancer in a cluster.
    /// `wss://` verifies the gateway's certificate against the platform's root store (or
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus `tls_ca_file`.
    pub gateway_url: String,
    /// CA certificates (PEM) to trust for a `wss://` gateway besides the platform's roots:
    /// the private CA that signed the gateway's certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// A node token (role `node`) whose `node_id` claim equals `node_id`. Required unless
    /// `auth.hmac_secret` is set (then the agent signs its own).
    pub token: Option<Secret>,
    /// This node's id (`A-Z a-z 0-9 _ -`, at most 64 bytes). Unset: the host name, with
    /// other characters replaced by `-`.
    pub node_id: Option<String>,
    /// The node's layer as shown on the dashboard.
    pub layer: String,
    /// How often host figures are reported; operators change it at run time with the
    /// `set_interval` command. Lower it for a livelier dashboard, raise it for many hosts.
    #[serde(with = "humantime_serde")]
    pub update_interval: Duration,
    /// A connection without any frame for this long is dead and is replaced. Keep it above
    /// twice the gateway's `heartbeat_interval`.
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// Upper bound of the reconnect backoff (full jitter, doubling from 1 s). Raise it when
    /// very many agents share one gateway.
    #[serde(with = "humantime_serde")]
    pub reconnect_max_delay: Duration,
    /// How long SIGTERM may take to send the final state and close the connection.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Paths whose file system's disk use is reported (`current_data.storage`, one entry per
    /// path, and `disk_used_percent` of the fullest). Add the mounts that hold data; an
    /// empty list reports no storage.
    pub storage_mounts: Vec<PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            gateway_url: "ws://127.0.0.1:8000/api/ws/connect".to_owned(),
            tls_ca_file: None,
            token: None,
            node_id: None,
            layer: "host".to_owned(),
            update_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(60),
            reconnect_max_delay: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            storage_mounts: vec![PathBuf::from("/")],
        }
    }
}

impl Config {
    /// Checks the configuration and lists every problem found.
    ///
    /// # Errors
    /// Returns all problems at once, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let agent = &self.agent;
        let mut problems = Vec::new();
        self.telemetry.validate(&mut problems);
        self.auth.validate(&mut problems);
        let url = agent.gateway_url.to_ascii_lowercase();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            problems.push("agent.gateway_url must start with ws:// or wss://".to_owned());
        }
        // Checked here so `--check-config` reads the CA file (or the platform store) too.
        if (url.starts_with("wss://") || agent.tls_ca_file.is_some())
            && let Err(error) = client::tls::client_config(agent.tls_ca_file.as_deref())
        {
            problems.push(format!("agent.tls_ca_file: {error}"));
        }
        let has_token = agent
            .token
            .as_ref()
            .is_some_and(|token| !token.expose().trim().is_empty());
        if !has_token && self.auth.hmac_secret.is_none() {
            problems.push(
                "agent.token is required (a node token for this node_id), or auth.hmac_secret to sign one"
                    .to_owned(),
            );
        }
        if let Some(node_id) = &agent.node_id
            && protocol::room::validate_node_id(node_id).is_err()
        {
            problems.push(
                "agent.node_id must be one segment of A-Z a-z 0-9 _ - of at most 64 bytes"
                    .to_owned(),
            );
        }
        if !(MIN_UPDATE_INTERVAL..=MAX_UPDATE_INTERVAL).contains(&agent.update_interval) {
            problems.push("agent.update_interval must be between 100ms and 1day".to_owned());
        }
        if agent.heartbeat_timeout < Duration::from_secs(1) {
            problems.push("agent.heartbeat_timeout must be at least 1s".to_owned());
        }
        if agent.reconnect_max_delay < Duration::from_secs(1) {
            problems.push("agent.reconnect_max_delay must be at least 1s".to_owned());
        }
        if agent
            .storage_mounts
            .iter()
            .any(|mount| !mount.is_absolute())
        {
            problems.push("agent.storage_mounts must be absolute paths".to_owned());
        }
        if agent.shutdown_grace.is_zero() {
            problems.push("agent.shutdown_grace must be positive".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl service::ServiceConfig for Config {
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        self.validate()
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }

    /// Two workers: one report stream and a sampler need no more.
    fn worker_threads(&self) -> usize {
        2
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Config {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        settings::load_with_lists(None, &env, crate::LIST_KEYS).unwrap()
    }

    #[test]
    fn the_documented_environment_keys_set_the_agent_section() {
        let config = load(&[
            (
                "SWITCHBOARD__AGENT__GATEWAY_URL",
                "ws://gw:8000/api/ws/connect",
            ),
            ("SWITCHBOARD__AGENT__TOKEN", "tok"),
            ("SWITCHBOARD__AGENT__NODE_ID", "host-1"),
            ("SWITCHBOARD__AGENT__LAYER", "edge"),
            ("SWITCHBOARD__AGENT__UPDATE_INTERVAL", "2s"),
            ("SWITCHBOARD__AGENT__STORAGE_MOUNTS", "/,/tmp"),
        ]);
        assert_eq!(config.agent.gateway_url, "ws://gw:8000/api/ws/connect");
        assert_eq!(config.agent.token.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(config.agent.node_id.as_deref(), Some("host-1"));
        assert_eq!(config.agent.layer, "edge");
        assert_eq!(config.agent.update_interval, Duration::from_secs(2));
        assert_eq!(
            config.agent.storage_mounts,
            [PathBuf::from("/"), PathBuf::from("/tmp")]
        );
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(Config::default().agent.storage_mounts, [PathBuf::from("/")]);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut config = Config::default();
        config.agent.gateway_url = "http://gw".into();
        config.agent.node_id = Some("a.b".into());
        config.agent.update_interval = Duration::ZERO;
        config.agent.storage_mounts = vec![PathBuf::from("relative")];
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(format!("{config:?}").contains("token: None"));
    }
}

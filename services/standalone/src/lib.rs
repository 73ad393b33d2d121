//! `switchboard`: every Switchboard service in one process on the embedded engine (the
//! in-memory bus and store), so a newcomer sees it working with one command and nothing
//! else installed: the gateway with its dashboard, the publisher, the aggregator,
//! batch-ingest with one simulated ML node, the device reader with two mock instruments (one
//! with occasional faults), and simulated node agents that report through the gateway like
//! real ones. Auth stays on: when no key is configured,
//! a secret is generated for the run and a ready-to-use development token is printed.
//!
//! Contract: [`Standalone::bind`] prepares everything (bus, store, keys, every service's
//! set-up, the gateway's listener); [`Standalone::serve`] runs until the token is cancelled,
//! then stops the simulated agents and drains every service. The first service that fails
//! or panics ends it the same way, and [`Standalone::serve`] returns that service's error.
#![warn(missing_docs)]

pub mod simulation;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aggregator::{Aggregator, AggregatorConfig};
use auth::{Claims, Issuer, Role};
use batch_ingest::{BatchIngest, BatchIngestConfig, HashRecords, NodeConfig};
use device_reader::{DeviceConfig, DeviceReader, DeviceReaderConfig};
use gateway::{Gateway, GatewayConfig};
use mlnode_sim::{MlNodeSim, SimConfig};
use publisher::{Publisher, PublisherConfig};
use rand::Rng;
use serde::{Deserialize, Serialize};
use service::supervise::{Supervisor, TaskFailure};
use settings::{AuthConfig, BusConfig, Secret, StoreConfig, TelemetryConfig};
use simulation::{SimulatedNodes, SimulationConfig};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long the printed development token stays valid.
const DEV_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Everything `switchboard` reads: each service's own section plus the shared ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The WebSocket gateway.
    pub gateway: GatewayConfig,
    /// The six periodic room publishers.
    pub publisher: PublisherConfig,
    /// Metric windows, anomaly and threshold alerts, history.
    pub aggregator: AggregatorConfig,
    /// ML-node batches into the batch stream.
    pub batch_ingest: BatchIngestConfig,
    /// Lab instruments read into rooms `devices.<id>.m<module>`.
    pub device_reader: DeviceReaderConfig,
    /// Simulated node agents.
    pub simulation: SimulationConfig,
    /// The bus; unset `nats_url` keeps it in memory.
    pub bus: BusConfig,
    /// The store; unset `redis_url` keeps it in memory.
    pub store: StoreConfig,
    /// Token keys and the API key; generated for the run when unset.
    pub auth: AuthConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        // One process may run next to others: the callback listener picks a free port
        // (printed at start), and the in-memory batch log is kept to an hour.
        let batch_ingest = BatchIngestConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            stream_max_age: Duration::from_secs(3600),
            ..BatchIngestConfig::default()
        };
        Self {
            device_reader: demo_device_reader(),
            gateway: GatewayConfig::default(),
            publisher: PublisherConfig::default(),
            aggregator: AggregatorConfig::default(),
            batch_ingest,
            simulation: SimulationConfig::default(),
            bus: BusConfig::default(),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// The device reader of the embedded demo: a free port and two mock power meters, `opm-1`
/// (modules 1 and 4 at seed 003's 0.1 s) and `opm-2` (module 1 every 0.5 s, with a
/// "hardware temporarily unavailable" error now and then), so instrument data and recoverable
/// errors show with the first command.
fn demo_device_reader() -> DeviceReaderConfig {
    let mut faulty = DeviceConfig::mock("opm-2", vec![1], Duration::from_millis(500));
    faulty.fault_rate = 0.05;
    faulty.wavelength_nm = 1550.0;
    faulty.level_dbm = -12.0;
    DeviceReaderConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        devices: vec![
            DeviceConfig::mock("opm-1", vec![1, 4], Duration::from_millis(100)),
            faulty,
        ],
        ..DeviceReaderConfig::default()
    }
}

/// Keys whose environment values are comma-separated lists: the gateway's (the only
/// section of the embedded run with list keys), so the two binaries never drift apart.
pub const LIST_KEYS: [&str; gateway::config::LIST_KEYS.len()] = gateway::config::LIST_KEYS;

/// Why `switchboard` could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The gateway could not start.
    #[error("gateway: {0}")]
    Gateway(#[from] gateway::StartError),
    /// The publisher could not start.
    #[error("publisher: {0}")]
    Publisher(#[from] publisher::StartError),
    /// The aggregator could not start.
    #[error("aggregator: {0}")]
    Aggregator(#[from] aggregator::StartError),
    /// Batch-ingest could not start.
    #[error("batch-ingest: {0}")]
    BatchIngest(#[from] batch_ingest::StartError),
    /// The device reader could not start.
    #[error("device reader: {0}")]
    DeviceReader(#[from] device_reader::StartError),
    /// The simulated ML node could not bind.
    #[error("simulated ML node: {0}")]
    MlNode(#[source] std::io::Error),
}

/// Why `switchboard` stopped other than by a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The gateway failed.
    #[error("gateway: {0}")]
    Gateway(#[from] gateway::RunError),
    /// The publisher failed.
    #[error("publisher: {0}")]
    Publisher(#[from] publisher::RunError),
    /// The aggregator failed.
    #[error("aggregator: {0}")]
    Aggregator(#[from] aggregator::RunError),
    /// Batch-ingest failed.
    #[error("batch-ingest: {0}")]
    BatchIngest(#[from] batch_ingest::RunError),
    /// The device reader failed.
    #[error("device reader: {0}")]
    DeviceReader(#[from] device_reader::RunError),
    /// A service's task panicked (a bug); the others drained and stopped.
    #[error("{service} panicked")]
    ServicePanicked {
        /// The service.
        service: String,
        /// The panic.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Config {
    /// Checks every service's configuration as [`Standalone::bind`] will build it (with a
    /// generated key where none is configured), listing every problem once.
    ///
    /// # Errors
    /// Every problem, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut config = self.clone();
        if !config.auth.has_verification_key() {
            config.auth.hmac_secret = Some(Secret::new(random_secret()));
        }
        let parts = ServiceConfigs::split(config);
        let mut problems: Vec<String> = Vec::new();
        for result in [
            parts.gateway.validate(),
            parts.publisher.validate(),
            parts.aggregator.validate(),
            parts.batch_ingest.validate(),
            parts.device_reader.validate(),
            parts.simulation.validate(),
        ] {
            for problem in result.err().unwrap_or_default() {
                // The shared sections are checked once per service; say each problem once.
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl service::ServiceConfig for Config {
    /// Needs no URLs: unset ones mean the embedded in-memory bus and store.
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        self.validate()
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

/// The standalone's configuration cut into each service's own.
struct ServiceConfigs {
    gateway: gateway::Config,
    publisher: publisher::Config,
    aggregator: aggregator::Config,
    batch_ingest: batch_ingest::Config,
    device_reader: device_reader::Config,
    simulation: SimulationConfig,
}

impl ServiceConfigs {
    fn split(config: Config) -> Self {
        // One process, one admin surface: the gateway's port serves /metrics and health.
        let quiet_telemetry = TelemetryConfig {
            admin_listen: None,
            ..config.telemetry.clone()
        };
        Self {
            gateway: gateway::Config {
                gateway: config.gateway,
                bus: config.bus.clone(),
                store: config.store.clone(),
                auth: config.auth,
                telemetry: config.telemetry,
            },
            publisher: publisher::Config {
                publisher: config.publisher,
                bus: config.bus.clone(),
                store: config.store.clone(),
                telemetry: quiet_telemetry.clone(),
            },
            aggregator: aggregator::Config {
                aggregator: config.aggregator,
                bus: config.bus.clone(),
                store: config.store.clone(),
                telemetry: quiet_telemetry.clone(),
            },
            batch_ingest: batch_ingest::Config {
                batch_ingest: config.batch_ingest,
                bus: config.bus.clone(),
                store: config.store.clone(),
                telemetry: quiet_telemetry.clone(),
            },
            device_reader: device_reader::Config {
                device_reader: config.device_reader,
                bus: config.bus,
                store: config.store,
                telemetry: quiet_telemetry,
            },
            simulation: config.simulation,
        }
    }
}

/// What a user needs to talk to the running process.
#[derive(Debug, Clone)]
pub struct Access {
    /// The gateway's HTTP/WebSocket address.
    pub addr: SocketAddr,
    /// A development token allowed to subscribe and publish everywhere.
    pub dev_token: String,
    /// The API key for `POST /api/ws/publish`.
    pub api_key: String,
    /// Batch-ingest's HTTP listener (callbacks, node management, metrics).
    pub batch_ingest_addr: SocketAddr,
    /// The device reader's HTTP listener (device management, metrics).
    pub device_reader_addr: SocketAddr,
}

/// The whole system in one process, bound and ready to serve.
pub struct Standalone {
    gateway: Gateway,
    publisher: Publisher,
    aggregator: Aggregator,
    batch_ingest: BatchIngest,
    device_reader: DeviceReader,
    ml_node: Option<MlNodeSim>,
    simulation: SimulationConfig,
    hmac_secret: Option<String>,
    access: Access,
    drain_grace: Duration,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Standalone {
    /// Fills in generated secrets where none are configured, creates the bus and store
    /// (in-memory unless URLs are configured) and binds every service.
    ///
    /// # Errors
    /// The first service that cannot start.
    pub async fn bind(mut config: Config) -> Result<Self, StartError> {
        if !config.auth.has_verification_key() {
            config.auth.hmac_secret = Some(Secret::new(random_secret()));
        }
        let api_key = match &config.auth.api_key {
            Some(key) => key.expose().to_owned(),
            None => {
                let key = random_secret();
                config.auth.api_key = Some(Secret::new(key.clone()));
                key
            }
        };
        let hmac_secret = config
            .auth
            .hmac_secret
            .as_ref()
            .map(|secret| secret.expose().to_owned());
        let dev_token = match &hmac_secret {
            Some(secret) => issue_dev_token(secret.as_bytes()),
            None => String::from(
                "(tokens come from your own issuer: auth.public_key_pem is configured)",
            ),
        };
        let drain_grace = drain_grace(&config);
        let ServiceConfigs {
            gateway: gateway_config,
            publisher: publisher_config,
            aggregator: aggregator_config,
            batch_ingest: batch_config,
            device_reader: device_config,
            simulation,
        } = ServiceConfigs::split(config);
        let bus = gateway::connect_bus(&gateway_config).await?;
        let store = gateway::connect_store(&gateway_config).await?;
        let (batch_ingest, ml_node) = bind_batches(batch_config, &simulation, &bus).await?;
        let batch_ingest = batch_ingest.announce_liveness(store.clone());
        let device_reader = DeviceReader::bind(device_config, bus.clone(), store.clone()).await?;
        let aggregator = Aggregator::bind(aggregator_config, bus.clone(), store.clone()).await?;
        let publisher = Publisher::bind(publisher_config, bus.clone(), store.clone()).await?;
        let gateway = Gateway::bind(gateway_config, bus, store).await?;
        let access = Access {
            addr: gateway.local_addr(),
            dev_token,
            api_key,
            batch_ingest_addr: batch_ingest.local_addr(),
            device_reader_addr: device_reader.local_addr(),
        };
        Ok(Self {
            gateway,
            publisher,
            aggregator,
            batch_ingest,
            device_reader,
            ml_node,
            simulation,
            hmac_secret,
            access,
            drain_grace,
        })
    }

    /// Returns the address, development token and API key of this process.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Serves until `shutdown` is cancelled, then stops the simulated agents and drains.
    ///
    /// The first service that fails or panics stops the others (they drain as on a
    /// shutdown) and its error is returned.
    ///
    /// # Errors
    /// [`RunError`] naming the service that failed or panicked.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let Standalone {
            gateway,
            publisher,
            aggregator,
            batch_ingest,
            device_reader,
            ml_node,
            simulation,
            hmac_secret,
            access,
            drain_grace,
        } = self;
        let services = shutdown.child_token();
        let mut tasks: Supervisor<RunError> = Supervisor::new();
        let stop = services.clone();
        tasks.spawn("gateway", async move { Ok(gateway.serve(stop).await?) });
        let stop = services.clone();
        tasks.spawn("publisher", async move { Ok(publisher.serve(stop).await?) });
        let stop = services.clone();
        tasks.spawn(
            "aggregator",
            async move { Ok(aggregator.serve(stop).await?) },
        );
        let stop = services.clone();
        tasks.spawn("batch-ingest", async move {
            Ok(batch_ingest.serve(stop).await?)
        });
        let stop = services.clone();
        tasks.spawn("device reader", async move {
            Ok(device_reader.serve(stop).await?)
        });
        // The ML node stops last-but-one: after batch-ingest has drained it has nobody to send to.
        let ml_node_task = ml_node.map(|node| tokio::spawn(node.serve(services.clone())));
        let gateway_url = format!("ws://{}/api/ws/connect", access.addr);
        let nodes = match &hmac_secret {
            Some(secret) => {
                match SimulatedNodes::start(&simulation, &gateway_url, secret.as_bytes()) {
                    Ok(nodes) => Some(nodes),
                    Err(error) => {
                        warn!(error = %error, "simulated nodes not started");
                        None
                    }
                }
            }
            None => None,
        };
        // Until asked to stop, or until a service fails or panics: then the others drain too
        // and the process exits non-zero instead of running on without it.
        let failure = tasks.watch(&shutdown).await;
        // Agents leave first, so their final states reach the publisher before it stops.
        if let Some(nodes) = nodes {
            nodes.stop().await;
        }
        services.cancel();
        let failure = failure.or(tasks.drain(drain_grace).await);
        if let Some(task) = ml_node_task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => warn!(error = %error, "simulated ML node stopped with an error"),
                Err(error) => warn!(error = %error, "simulated ML node panicked"),
            }
        }
        TaskFailure::into_outcome(failure, |service, source| RunError::ServicePanicked {
            service,
            source,
        })
    }
}

/// How long the standalone waits for its services to drain after the first has stopped:
/// each bounds its own drain, so this is a backstop above the longest of them.
fn drain_grace(config: &Config) -> Duration {
    let longest_service = [
        config.publisher.shutdown_grace,
        config.batch_ingest.shutdown_grace,
        config.device_reader.shutdown_grace,
        config.gateway.shutdown_delay + config.gateway.drain_timeout * 2,
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    longest_service + Duration::from_secs(5)
}

impl service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(
            self,
            RunError::Start(
                StartError::Gateway(gateway::StartError::Config(_))
                    | StartError::Publisher(publisher::StartError::Config(_))
                    | StartError::Aggregator(aggregator::StartError::Config(_))
                    | StartError::BatchIngest(batch_ingest::StartError::Config(_))
                    | StartError::DeviceReader(device_reader::StartError::Config(_))
            )
        )
    }
}

/// Binds batch-ingest on the shared bus and, if enabled, one simulated ML node that it
/// collects from over WebSocket, with batch-ingest's callback as the node's fallback.
async fn bind_batches(
    mut config: batch_ingest::Config,
    simulation: &SimulationConfig,
    bus: &bus::Bus,
) -> Result<(BatchIngest, Option<MlNodeSim>), StartError> {
    let ml_node = if simulation.ml_node {
        let sim_config = SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            batches: None,
            interval: simulation.ml_batch_interval,
            ..SimConfig::default()
        };
        let node = MlNodeSim::bind(sim_config)
            .await
            .map_err(StartError::MlNode)?;
        config.batch_ingest.nodes.push(NodeConfig {
            id: "ml-node-1".to_owned(),
            url: node.ws_url(),
            active: true,
        });
        Some(node)
    } else {
        None
    };
    let ingest = BatchIngest::bind(config, bus.clone(), HashRecords::memory()).await?;
    if let Some(node) = &ml_node {
        node.handle().set_callback_url(Some(format!(
            "http://{}/v1/poc-batches",
            ingest.local_addr()
        )));
    }
    Ok((ingest, ml_node))
}

fn issue_dev_token(secret: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let claims = Claims {
        sub: "dev".to_owned(),
        exp: (now + DEV_TOKEN_LIFETIME).as_secs(),
        iat: Some(now.as_secs()),
        rooms: vec![">".to_owned()],
        publish: vec![">".to_owned()],
        role: Role::Admin,
        node_id: None,
    };
    Issuer::hs256(secret)
        .issue(&claims)
        .unwrap_or_else(|error| format!("(token could not be issued: {error})"))
}

//! Bind, serve, drain.

use std::net::SocketAddr;
use std::sync::Arc;

use bus::Bus;
use protocol::Subjects;
use service::supervise::{Supervisor, TaskFailure};
use store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::error::{RunError, StartError};
use crate::inputs::Inputs;
use crate::state::Shared;
use crate::streams::Periodic;
use crate::{admin, events, leader, streams};

/// A publisher with its inputs subscribed, ready to serve.
pub struct Publisher {
    shared: Arc<Shared>,
    inputs: Inputs,
    admin: Option<TcpListener>,
}

impl Publisher {
    /// Validates the configuration, subscribes to the inputs and binds the admin listener
    /// (if configured). Reports published on the bus from now on reach the registry.
    ///
    /// # Errors
    /// [`StartError::Config`] for invalid settings, [`StartError::Subscribe`] when an input
    /// cannot be subscribed to, [`StartError::AdminBind`] when the admin address is taken.
    pub async fn bind(config: Config, bus: Bus, store: Store) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let subjects = Subjects::new(&config.bus.subject_prefix);
        let inputs = Inputs::subscribe(&bus, &subjects).await?;
        let admin = match config.telemetry.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::AdminBind { addr, source })?,
            ),
            None => None,
        };
        let instance_id =
            config.publisher.instance_id.clone().unwrap_or_else(|| {
                format!("pub-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            });
        let shared = Shared::new(config.publisher, instance_id, subjects, bus, store);
        Ok(Self {
            shared: Arc::new(shared),
            inputs,
            admin,
        })
    }

    /// Returns this replica's name as a lease holder.
    pub fn instance_id(&self) -> &str {
        &self.shared.instance_id
    }

    /// Returns the admin server's address, if one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Consumes the inputs, takes part in the leader election and, while leading, publishes
    /// the six streams; until `shutdown` is cancelled. Then it drains: the streams, inputs
    /// and admin server stop (waiting up to `shutdown_grace`), the lease is released so a
    /// standby takes over at once, and the bus is flushed.
    ///
    /// Dropping the future instead (a crash, as far as the cluster can tell) aborts every
    /// task and keeps the lease until its TTL runs out.
    ///
    /// # Errors
    /// [`RunError::InputEnded`] when the bus closes an input for good,
    /// [`RunError::Admin`] when the admin server fails, [`RunError::TaskPanicked`] when a
    /// task panics; the publisher drains before returning either.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let Publisher {
            shared,
            inputs,
            admin,
        } = self;
        let config = &shared.config;
        info!(
            instance_id = %shared.instance_id,
            bus = shared.bus.backend_name(),
            store = shared.store.backend_name(),
            lease = %config.lease_name,
            "publisher started"
        );
        let (state_tx, leader) = leader::channel();
        let election_stop = CancellationToken::new();
        let mut election = JoinSet::new();
        election.spawn(leader::run(shared.clone(), state_tx, election_stop.clone()));

        let work = shutdown.child_token();
        let mut tasks: Supervisor<RunError> = Supervisor::new();
        inputs.spawn(&shared, &mut tasks, &work);
        tasks.spawn_plain(
            "event sweeper",
            events::run_sweeper(shared.clone(), work.clone()),
        );
        // Every replica, leader or standby, announces its liveness (`sb:svc:publisher`): the
        // health in `metrics_update` and `publishers_active` in the gateway's stats count them.
        let announcer = shared.clone();
        let announcer_stop = work.clone();
        tasks.spawn_plain("liveness", async move {
            announcer
                .store
                .keep_announced(
                    protocol::streams::components::PUBLISHER,
                    &announcer.instance_id,
                    announcer.config.lease_ttl,
                    announcer_stop.cancelled_owned(),
                )
                .await;
        });
        tasks.spawn_plain(
            "events",
            events::run(shared.clone(), leader.clone(), work.clone()),
        );
        for stream in Periodic::ALL {
            tasks.spawn_plain(
                format!("stream {stream:?}"),
                streams::run(shared.clone(), stream, leader.clone(), work.clone()),
            );
        }
        if let Some(listener) = admin {
            tasks.spawn(
                "admin server",
                admin::serve(listener, shared.clone(), work.clone()),
            );
        }

        let failure = tasks.watch(&work).await;
        work.cancel();
        let grace = config.shutdown_grace;
        let failure = failure.or(tasks.drain(grace).await);
        election_stop.cancel();
        if tokio::time::timeout(grace, election.join_next())
            .await
            .is_err()
        {
            warn!("leader election did not stop in time; the lease expires with its ttl");
        }
        if let Err(error) = shared.bus.flush().await {
            warn!(error = %error, "bus flush at shutdown failed");
        }
        info!(instance_id = %shared.instance_id, "publisher drained");
        TaskFailure::into_outcome(failure, |task, source| RunError::TaskPanicked {
            task,
            source,
        })
    }
}

/// Connects the bus and store named in `config`, binds, and serves until `shutdown`.
///
/// The `switchboard-publisher` binary requires `bus.nats_url` and `store.redis_url`: with
/// the in-memory engine nothing outside the process could reach it. The standalone binary
/// calls [`Publisher::bind`] with its shared in-memory bus and store instead.
///
/// # Errors
/// Any [`StartError`] (as [`RunError::Start`]) or a [`Publisher::serve`] error.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    service::ServiceConfig::validate_for_start(&config).map_err(StartError::Config)?;
    let bus = connect_bus(&config).await?;
    let store = connect_store(&config).await?;
    let publisher = Publisher::bind(config, bus, store).await?;
    publisher.serve(shutdown).await
}

/// Connects the bus from `config.bus`, or creates an in-memory bus when `nats_url` is unset.
///
/// # Errors
/// [`StartError::Bus`] when NATS cannot be reached.
pub async fn connect_bus(config: &Config) -> Result<Bus, StartError> {
    let client_name = config
        .publisher
        .instance_id
        .as_deref()
        .unwrap_or("switchboard-publisher");
    Bus::connect(&config.bus, client_name)
        .await
        .map_err(StartError::Bus)
}

/// Connects the store from `config.store`, or creates an in-memory store when `redis_url`
/// is unset.
///
/// # Errors
/// [`StartError::Store`] when Redis cannot be reached.
pub async fn connect_store(config: &Config) -> Result<Store, StartError> {
    Store::connect(&config.store)
        .await
        .map_err(StartError::Store)
}

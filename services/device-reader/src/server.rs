//! Bind, serve, drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bus::{Bus, Subscription};
use protocol::device::{STATUS_ROOM, control_subject};
use protocol::{RoomName, Subjects};
use service::supervise::{Supervisor, TaskFailure};
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, DeviceConfig, DeviceReaderConfig};
use crate::devices::{Control, Devices};
use crate::error::{RunError, StartError};
use crate::metrics::Metrics;
use crate::{api, http};

/// What every reader and handler needs.
pub(crate) struct Context {
    pub section: DeviceReaderConfig,
    pub instance_id: String,
    pub bus: Bus,
    pub store: Store,
    pub subjects: Subjects,
    pub metrics: Metrics,
}

/// State shared by the HTTP handlers and the bus tasks.
pub(crate) struct App {
    pub context: Arc<Context>,
    pub devices: Devices,
    /// Set when shutdown begins: readiness turns false. Shared on its own because axum runs
    /// the shutdown signal as a detached task, which must not keep the whole app alive.
    pub draining: Arc<AtomicBool>,
}

/// A bound device reader, ready to serve.
pub struct DeviceReader {
    listener: TcpListener,
    app: Arc<App>,
    configured: Vec<DeviceConfig>,
    api_requests: Subscription,
    control: Subscription,
    statuses: Subscription,
}

impl DeviceReader {
    /// Validates the configuration, subscribes the management API (queue group), the
    /// replicas' control subject and room `devices`, and binds the management listener.
    /// The configured devices start reading in [`DeviceReader::serve`].
    ///
    /// # Errors
    /// [`StartError::Config`] for invalid settings, [`StartError::Subscribe`] when the bus
    /// refuses a subscription, [`StartError::Bind`] when the address cannot be bound.
    pub async fn bind(config: Config, bus: Bus, store: Store) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let subjects = Subjects::new(&config.bus.subject_prefix);
        let api_requests = api::subscribe(&bus, &subjects)
            .await
            .map_err(StartError::Subscribe)?;
        let control = bus
            .subscribe(&control_subject(&subjects))
            .await
            .map_err(StartError::Subscribe)?;
        let status_room = RoomName::parse(STATUS_ROOM)
            .map_err(|error| StartError::Config(vec![format!("status room: {error}")]))?;
        let statuses = bus
            .subscribe(&subjects.room(&status_room))
            .await
            .map_err(StartError::Subscribe)?;
        let mut section = config.device_reader;
        let addr = section.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let instance_id = section
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("dr-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let configured = std::mem::take(&mut section.devices);
        let context = Arc::new(Context {
            section,
            instance_id,
            bus,
            store,
            subjects,
            metrics: Metrics::new(),
        });
        let app = Arc::new(App {
            devices: Devices::new(Arc::clone(&context)),
            context,
            draining: Arc::new(AtomicBool::new(false)),
        });
        Ok(Self {
            listener,
            app,
            configured,
            api_requests,
            control,
            statuses,
        })
    }

    /// Returns the management listener's address (useful with port 0 in tests).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.app.context.section.listen)
    }

    /// Returns this replica's name as a lease holder (`reader_id` in statuses).
    pub fn instance_id(&self) -> &str {
        &self.app.context.instance_id
    }

    /// Starts the configured devices and serves until `shutdown` is cancelled, then drains:
    /// readiness goes false and the listener stops accepting; every reader stops and releases
    /// its lease (so another replica takes over at once and publishes its own status); after at most `shutdown_grace` the rest is cut off; the bus is
    /// flushed.
    ///
    /// Dropping the future instead (a crash, as far as the cluster can tell) aborts every
    /// reader and keeps the leases until their TTL runs out.
    ///
    /// A background task (management API, control and status followers) that fails or
    /// panics makes the device reader drain the same way and return the failure.
    ///
    /// # Errors
    /// [`RunError::InputEnded`] when the bus ends one of its subscriptions,
    /// [`RunError::Task`] when a background task panics.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let DeviceReader {
            listener,
            app,
            configured,
            api_requests,
            control,
            statuses,
        } = self;
        let background_stop = CancellationToken::new();
        let mut background: Supervisor<RunError> = Supervisor::new();
        background.spawn(
            "management api",
            api::serve(Arc::clone(&app), api_requests, background_stop.clone()),
        );
        background.spawn(
            "control follower",
            api::follow_control(Arc::clone(&app), control, background_stop.clone()),
        );
        background.spawn(
            "status follower",
            api::follow_status(Arc::clone(&app), statuses, background_stop.clone()),
        );
        // Liveness for the health in `metrics_update` (`sb:svc:device_reader`).
        let announcer = Arc::clone(&app);
        let announcer_stop = background_stop.clone();
        background.spawn_plain("liveness", async move {
            let context = &announcer.context;
            context
                .store
                .keep_announced(
                    protocol::streams::components::DEVICE_READER,
                    &context.instance_id,
                    store::liveness::ANNOUNCE_TTL,
                    announcer_stop.cancelled_owned(),
                )
                .await;
        });
        for device in &configured {
            if let Err(error) = app.devices.apply(&Control::Add(Box::new(device.clone()))) {
                // Validated at bind; only reachable if validation and registration drift.
                warn!(device = %device.id, error = %error, "configured device not registered");
            }
        }
        info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            instance_id = %app.context.instance_id,
            bus = app.context.bus.backend_name(),
            store = app.context.store.backend_name(),
            devices = configured.len(),
            "device reader listening"
        );

        // Cancelled by the caller's shutdown, or here when a background task fails.
        let stop = shutdown.child_token();
        let drain_signal = stop.clone();
        let draining = Arc::clone(&app.draining);
        let grace = app.context.section.shutdown_grace;
        let serving = http_front::FrontDoor::new(http_front::Limits::internal()).serve(
            listener,
            http::router(Arc::clone(&app)),
            async move {
                drain_signal.cancelled().await;
                draining.store(true, Ordering::Relaxed);
                tokio::time::Instant::now() + grace
            },
        );
        let mut serving = std::pin::pin!(serving);
        let (drained, failure) = tokio::select! {
            drained = &mut serving => (drained, None),
            failure = background.watch(&stop) => {
                if failure.is_some() {
                    stop.cancel();
                }
                (serving.await, failure)
            }
        };
        if drained.cut_off > 0 {
            warn!(
                cut_off = drained.cut_off,
                "shutdown grace reached; HTTP connections cut off"
            );
        }

        app.draining.store(true, Ordering::Relaxed);
        let cut_off = app
            .devices
            .stop_all(app.context.section.shutdown_grace)
            .await;
        if cut_off > 0 {
            warn!(cut_off, "shutdown grace reached; device readers cut off");
        }
        background_stop.cancel();
        let failure = failure.or(background.drain(grace).await);
        if let Err(error) = app.context.bus.flush().await {
            warn!(error = %error, "bus flush at shutdown failed");
        }
        info!(instance_id = %app.context.instance_id, "device reader drained");
        TaskFailure::into_outcome(failure, |task, error| {
            RunError::Task(TaskFailure::Panicked { task, error })
        })
    }
}

/// Connects the bus and store named in `config`, binds and serves until `shutdown`.
///
/// The `switchboard-device-reader` binary requires `bus.nats_url` and `store.redis_url`;
/// the standalone `switchboard` calls [`DeviceReader::bind`] with its in-memory bus and store.
///
/// # Errors
/// Any [`StartError`] (as [`RunError::Start`]).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    service::ServiceConfig::validate_for_start(&config).map_err(StartError::Config)?;
    let bus = connect_bus(&config).await?;
    let store = connect_store(&config).await?;
    DeviceReader::bind(config, bus, store)
        .await?
        .serve(shutdown)
        .await
}

/// Connects the bus from `config.bus`, or creates an in-memory bus when `nats_url` is unset.
///
/// # Errors
/// [`StartError::Bus`] when NATS cannot be reached.
pub async fn connect_bus(config: &Config) -> Result<Bus, StartError> {
    let client_name = config
        .device_reader
        .instance_id
        .as_deref()
        .unwrap_or("switchboard-device-reader");
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

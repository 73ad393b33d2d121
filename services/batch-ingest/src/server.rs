//! Bind, serve, drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bus::{Bus, StorageKind, StreamSpec, Subscription};
use protocol::Subjects;
use protocol::batch::{STREAM_NAME, stream_subjects};
use service::supervise::{Supervisor, TaskFailure};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{BatchIngestConfig, Config, StreamStorage};
use crate::error::{RunError, StartError};
use crate::metrics::Metrics;
use crate::nodes::{Nodes, WorkerSettings};
use crate::pipeline::{Pipeline, PipelineSettings};
use crate::progress::{self, Progress};
use crate::records::HashRecords;
use crate::{api, http};

/// State shared by the HTTP handlers, the workers and the background tasks.
pub(crate) struct App {
    pub config: BatchIngestConfig,
    pub bus: Bus,
    pub records: HashRecords,
    pub pipeline: Pipeline,
    pub nodes: Arc<Nodes>,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    pub subjects: Subjects,
    /// Caps concurrent HTTP callbacks being stored (`max_http_in_flight`).
    pub http_slots: Semaphore,
    /// Set when shutdown begins: readiness turns false.
    pub draining: AtomicBool,
}

/// A bound batch-ingest, ready to serve.
pub struct BatchIngest {
    listener: TcpListener,
    app: Arc<App>,
    api_requests: Subscription,
    /// Where this instance announces its liveness, and under which id.
    liveness: Option<(store::Store, String)>,
}

/// Returns the `SB_BATCHES` stream as configured.
pub fn stream_spec(config: &Config) -> StreamSpec {
    let section = &config.batch_ingest;
    StreamSpec {
        name: STREAM_NAME.to_owned(),
        subjects: stream_subjects(&Subjects::new(&config.bus.subject_prefix)),
        duplicate_window: section.duplicate_window,
        max_age: section.stream_max_age,
        storage: match section.stream_storage {
            StreamStorage::File => StorageKind::File,
            StreamStorage::Memory => StorageKind::Memory,
        },
    }
}

impl BatchIngest {
    /// Validates the configuration, creates or updates the `SB_BATCHES` stream, subscribes
    /// the management API, binds the callback listener and registers the configured nodes
    /// (their workers start in [`BatchIngest::serve`]).
    ///
    /// # Errors
    /// [`StartError::Config`] for invalid settings, [`StartError::Stream`] when JetStream
    /// refuses the stream, [`StartError::Subscribe`] when the bus refuses the API
    /// subscription, [`StartError::Bind`] when the address cannot be bound.
    pub async fn bind(config: Config, bus: Bus, records: HashRecords) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let stream = stream_spec(&config);
        let state = bus
            .ensure_stream(&stream)
            .await
            .map_err(StartError::Stream)?;
        info!(stream = %stream.name, messages = state.messages, last_sequence = state.last_sequence, "batch stream ready");
        let subjects = Subjects::new(&config.bus.subject_prefix);
        let api_requests = api::subscribe(&bus, &subjects)
            .await
            .map_err(StartError::Subscribe)?;
        let section = config.batch_ingest;
        let node_tls = section
            .node_tls()
            .map_err(|problem| StartError::Config(vec![problem]))?;
        let addr = section.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;

        let metrics = Arc::new(Metrics::new());
        let progress = Arc::new(Progress::default());
        let pipeline = Pipeline::new(
            bus.clone(),
            records.clone(),
            PipelineSettings {
                store_timeout: section.store_timeout,
                hash_ttl: section.hash_ttl,
                stream,
                subjects: subjects.clone(),
            },
            Arc::clone(&metrics),
            Arc::clone(&progress),
        );
        let nodes = Arc::new(Nodes::new(
            pipeline.clone(),
            WorkerSettings {
                reconnect_min: section.reconnect_min,
                reconnect_max: section.reconnect_max,
                connect_timeout: section.connect_timeout,
                max_batch_bytes: section.max_batch_bytes,
                max_in_flight: section.max_in_flight_per_node,
                drain_timeout: section.store_timeout,
                tls: node_tls,
            },
        ));
        let app = Arc::new(App {
            http_slots: Semaphore::new(section.max_http_in_flight),
            config: section,
            bus,
            records,
            pipeline,
            nodes,
            progress,
            metrics,
            subjects,
            draining: AtomicBool::new(false),
        });
        Ok(Self {
            listener,
            app,
            api_requests,
            liveness: None,
        })
    }

    /// Returns the callback listener's address (useful with port 0 in tests). ML nodes get
    /// `http://<this>/v1/poc-batches` as their callback URL.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.app.config.listen)
    }

    /// Announces this instance's liveness in `store` while it serves
    /// (`sb:svc:batch_ingest`, id `bi-xxxxxxxx`), so the health in `metrics_update` covers
    /// batch-ingest; withdrawn at shutdown.
    #[must_use]
    pub fn announce_liveness(mut self, store: store::Store) -> Self {
        let instance = format!("bi-{:08x}", rand::random::<u32>());
        self.liveness = Some((store, instance));
        self
    }

    /// Returns the batch handler, to process batches directly (tests, embedding).
    pub fn pipeline(&self) -> Pipeline {
        self.app.pipeline.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains: readiness goes false and the
    /// listener stops accepting; callbacks in progress finish; every node worker stops
    /// reading, acknowledges the batches it is storing and closes with 1001; after at most
    /// `shutdown_grace` what remains is cut off; the last progress events go out and the bus
    /// is flushed.
    ///
    /// A background task that fails or panics (the progress publisher, the management API)
    /// makes batch-ingest drain the same way and return the failure.
    ///
    /// # Errors
    /// [`RunError::ApiEnded`] when the management API's subscription ends,
    /// [`RunError::Task`] when a task panics.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let BatchIngest {
            listener,
            app,
            api_requests,
            liveness,
        } = self;
        let background = CancellationToken::new();
        let mut tasks: Supervisor<RunError> = Supervisor::new();
        if let Some((store, instance)) = liveness {
            let stop = background.clone();
            tasks.spawn_plain("liveness", async move {
                store
                    .keep_announced(
                        protocol::streams::components::BATCH_INGEST,
                        &instance,
                        store::liveness::ANNOUNCE_TTL,
                        stop.cancelled_owned(),
                    )
                    .await;
            });
        }
        tasks.spawn_plain(
            "progress publisher",
            progress::publish_progress(
                Arc::clone(&app.progress),
                app.bus.clone(),
                app.subjects.clone(),
                Arc::clone(&app.metrics),
                app.config.progress_interval,
                background.clone(),
            ),
        );
        tasks.spawn(
            "management api",
            api::serve(
                api_requests,
                app.bus.clone(),
                Arc::clone(&app.nodes),
                background.clone(),
            ),
        );
        let nodes = Arc::clone(&app.nodes);
        let stopped = background.clone();
        tasks.spawn("ml node workers", async move {
            tokio::select! {
                () = stopped.cancelled() => Ok(()),
                (node, message) = nodes.worker_panicked() => {
                    Err(RunError::NodeWorkerPanicked { node, message })
                }
            }
        });
        for node in &app.config.nodes {
            if let Err(error) = app.nodes.register(&node.id, &node.url, node.active) {
                // Validated at bind; only reachable if validation and registration drift.
                warn!(node = %node.id, error = %error, "configured node not registered");
            }
        }
        info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            bus = app.bus.backend_name(),
            records = app.records.backend_name(),
            nodes = app.config.nodes.len(),
            "batch-ingest listening"
        );

        // Cancelled by the caller's shutdown, or here when a background task fails.
        let stop = shutdown.child_token();
        let drain_app = Arc::clone(&app);
        let drain_signal = stop.clone();
        let serving = http_front::FrontDoor::new(http_front::Limits::internal()).serve(
            listener,
            http::router(Arc::clone(&app)),
            async move {
                drain_signal.cancelled().await;
                drain_app.draining.store(true, Ordering::Relaxed);
                tokio::time::Instant::now() + drain_app.config.shutdown_grace
            },
        );
        let mut serving = std::pin::pin!(serving);
        let (drained, failure) = tokio::select! {
            drained = &mut serving => (drained, None),
            failure = tasks.watch(&stop) => {
                if failure.is_some() {
                    stop.cancel();
                }
                (serving.await, failure)
            }
        };
        if drained.cut_off > 0 {
            warn!(
                cut_off = drained.cut_off,
                "shutdown grace reached; HTTP callbacks cut off"
            );
        }

        app.draining.store(true, Ordering::Relaxed);
        let cut_off = app.nodes.stop_all(app.config.shutdown_grace).await;
        if cut_off > 0 {
            warn!(cut_off, "shutdown grace reached; node workers cut off");
        }
        background.cancel();
        let failure = failure.or(tasks.drain(app.config.shutdown_grace).await);
        if let Err(error) = app.bus.flush().await {
            warn!(error = %error, "bus flush at shutdown failed");
        }
        info!("batch-ingest drained");
        TaskFailure::into_outcome(failure, |task, error| {
            RunError::Task(TaskFailure::Panicked { task, error })
        })
    }
}

/// Connects the bus and hash records named in `config`, binds and serves until `shutdown`.
///
/// The `switchboard-batch-ingest` binary requires `bus.nats_url` and `store.redis_url`: the
/// in-memory engine only makes sense inside the single-process `switchboard`.
///
/// # Errors
/// Any [`StartError`] (as [`RunError::Start`]), or the [`RunError`] of a task that failed.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    service::ServiceConfig::validate_for_start(&config).map_err(StartError::Config)?;
    let bus = connect_bus(&config).await?;
    let records = connect_records(&config).await?;
    // Liveness only: without it batch-ingest still works, and shows as not live in health.
    let liveness = match store::Store::connect(&config.store).await {
        Ok(store) => Some(store),
        Err(error) => {
            warn!(error = %error, "store unreachable; liveness not announced");
            None
        }
    };
    let ingest = BatchIngest::bind(config, bus, records).await?;
    let ingest = match liveness {
        Some(store) => ingest.announce_liveness(store),
        None => ingest,
    };
    ingest.serve(shutdown).await
}

/// Connects the bus from `config.bus`, or creates an in-memory bus when `nats_url` is unset.
///
/// # Errors
/// [`StartError::Bus`] when NATS cannot be reached.
pub async fn connect_bus(config: &Config) -> Result<Bus, StartError> {
    Bus::connect(&config.bus, "switchboard-batch-ingest")
        .await
        .map_err(StartError::Bus)
}

/// Connects the hash records from `config.store`, or creates in-memory ones when
/// `redis_url` is unset.
///
/// # Errors
/// [`StartError::Records`] when Redis cannot be reached.
pub async fn connect_records(config: &Config) -> Result<HashRecords, StartError> {
    match &config.store.redis_url {
        None => Ok(HashRecords::memory()),
        Some(url) => {
            HashRecords::connect_redis(url, &config.store.key_prefix, config.store.response_timeout)
                .await
                .map_err(StartError::Records)
        }
    }
}

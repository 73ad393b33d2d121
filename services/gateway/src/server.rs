//! Bind, serve, drain.

use std::net::SocketAddr;
use std::sync::Arc;

use bus::Bus;
use service::supervise::{Supervisor, TaskFailure};
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::error::{RunError, StartError};
use crate::presence::{self, PresenceOp};
use crate::state::Shared;
use crate::{heartbeat, http, node_links};

/// A bound gateway, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    shared: Arc<Shared>,
    presence_rx: tokio::sync::mpsc::Receiver<PresenceOp>,
    /// TLS termination (`gateway.tls_cert`/`tls_key`), when configured.
    tls: Option<http_front::ServerTls>,
    /// A panic injected into a background task by tests (`test-util` only).
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    fault: Fault,
}

impl Gateway {
    /// Validates the configuration, loads token keys and binds the listener.
    ///
    /// # Errors
    /// [`StartError::Config`] for invalid settings, [`StartError::Keys`]/[`StartError::KeyFile`]
    /// for unusable keys, [`StartError::Bind`] when the address cannot be bound.
    pub async fn bind(config: Config, bus: Bus, store: Store) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let tls = config
            .gateway
            .server_tls()
            .map_err(|problem| StartError::Config(vec![problem]))?;
        let addr = config.gateway.listen;
        let listener = listen(addr, config.gateway.listen_backlog)
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let jwks_url = config.auth.jwks_url.clone();
        let jwks_refresh_interval = config.auth.jwks_refresh_interval();
        let (shared, presence_rx) = crate::state::build(config, bus, store, local_addr)?;
        if let Some(url) = jwks_url {
            let source = auth::JwksSource::start(
                url,
                shared.admission.verifier.clone(),
                jwks_refresh_interval,
            )
            .await
            .map_err(StartError::Jwks)?;
            let _ = shared.admission.jwks.set(Arc::new(source));
        }
        Ok(Self {
            listener,
            shared,
            presence_rx,
            tls,
            fault: Fault::default(),
        })
    }

    /// Makes the background task `fault.task` panic `fault.after` into [`Gateway::serve`]
    /// (tests of supervision only).
    #[cfg(feature = "test-util")]
    pub fn inject_fault(&mut self, fault: crate::test_util::Fault) {
        self.fault = Some(fault);
    }

    /// Returns the bound address (useful with port 0 in tests).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.shared.config.listen)
    }

    /// Returns this gateway's id in the cluster.
    pub fn server_id(&self) -> &str {
        &self.shared.server_id
    }

    /// Serves until `shutdown` is cancelled, then drains: readiness goes false, new
    /// connections are refused, every client gets `reconnect` and a 1001 close, sessions get
    /// up to `drain_timeout`, and this gateway's store entries are removed.
    ///
    /// A background task (heartbeat sweep, liveness, presence writer, the accept loop) that
    /// fails or panics makes the gateway drain the same way and return the failure, so the
    /// process exits non-zero and is restarted rather than running on without it.
    ///
    /// # Errors
    /// [`RunError::Task`] naming the background task that failed or panicked.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let Gateway {
            listener,
            shared,
            presence_rx,
            tls,
            fault,
        } = self;
        #[cfg(feature = "test-util")]
        if let Some(fault) = fault.filter(|fault| fault.task == crate::test_util::Fault::SERVE) {
            tokio::time::sleep(fault.after).await;
            panic!("injected fault in serve");
        }
        // Entries of a gateway without liveness are swept, so register before any connection.
        let info = presence::gateway_info(&shared);
        if let Err(error) = shared
            .store
            .register_gateway(&info, shared.config.liveness_ttl)
            .await
        {
            warn!(error = %error, "store unreachable at start; presence and stats degraded until it returns");
        }
        let background = CancellationToken::new();
        let mut tasks: Supervisor = Supervisor::new();
        tasks.spawn_plain(
            PRESENCE_WRITER,
            with_fault(
                &fault,
                PRESENCE_WRITER,
                presence::run_writer(shared.clone(), presence_rx, background.clone()),
            ),
        );
        tasks.spawn_plain(
            LIVENESS,
            with_fault(
                &fault,
                LIVENESS,
                presence::run_liveness(shared.clone(), background.clone()),
            ),
        );
        tasks.spawn_plain(
            HEARTBEAT,
            with_fault(
                &fault,
                HEARTBEAT,
                heartbeat::run(shared.clone(), background.clone()),
            ),
        );
        tasks.spawn_plain(
            RETAINED_ROOMS,
            crate::fanout::retained::run(shared.fanout.clone(), background.clone()),
        );
        // Before accepting: every accepted connection gets broadcasts and its own messages.
        let wide = shared.direct.subscribe_wide().await;
        tasks.spawn_plain(
            DIRECT_MESSAGES,
            shared.direct.clone().run(wide, background.clone()),
        );
        tasks.spawn_plain(
            NODE_LINKS,
            node_links::run(shared.clone(), background.clone()),
        );
        if let Some(source) = shared.admission.jwks.get().cloned() {
            let stopped = background.clone();
            tasks.spawn_plain(JWKS_REFRESH, async move {
                source.refresh_periodically(stopped.cancelled()).await;
            });
        }
        let (front_door, derived_cap) =
            crate::http_server::front_door(&shared.config, &shared.metrics, tls);
        info!(
            server_id = %shared.server_id,
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            bus = shared.bus.backend_name(),
            store = shared.store.backend_name(),
            max_connections = front_door.limits().max_connections,
            max_connections_from = %derived_cap.map_or_else(|| "gateway.max_connections".to_owned(), |cap| cap.to_string()),
            "gateway listening"
        );

        // Cancelled by the caller's shutdown, or here when a background task fails: either
        // way the gateway drains the same way.
        let stop = shutdown.child_token();
        let drain_shared = shared.clone();
        let drain_signal = stop.clone();
        let accepting = front_door.serve(listener, http::router(shared.clone()), async move {
            drain_signal.cancelled().await;
            drain_shared.drain.stop_admitting();
            // Readiness is false and upgrades are refused from here; a load balancer gets
            // `shutdown_delay` to notice before the listener closes and clients are moved.
            tokio::time::sleep(drain_shared.config.shutdown_delay).await;
            drain_shared.drain.sessions_shutdown.cancel();
            // One budget for the whole drain: HTTP requests, sessions, deregistration, flush.
            tokio::time::Instant::now() + drain_shared.config.drain_timeout
        });
        // On a worker, not on the thread that called `serve` (the binary's main thread): there
        // every accepted connection would be handed across threads, with a wake-up each.
        let mut accept_loop = tokio::spawn(accepting);
        let (accepted, mut failure) = tokio::select! {
            accepted = &mut accept_loop => (accepted, None),
            failure = tasks.watch(&stop) => {
                stop.cancel();
                ((&mut accept_loop).await, failure)
            }
        };
        stop.cancel();
        let deadline = match accepted {
            Ok(drained) => {
                if drained.cut_off > 0 {
                    warn!(
                        cut_off = drained.cut_off,
                        "drain deadline reached; HTTP connections cut off"
                    );
                }
                drained.deadline
            }
            Err(error) => {
                failure = failure.or(Some(TaskFailure::Panicked {
                    task: ACCEPT_LOOP.to_owned(),
                    error,
                }));
                tokio::time::Instant::now() + shared.config.drain_timeout
            }
        };

        shared.drain.stop_admitting();
        shared.drain.sessions_shutdown.cancel();
        shared.drain.tasks.close();
        if tokio::time::timeout_at(deadline, shared.drain.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = shared.drain.tasks.len(),
                "drain timeout reached; cutting off remaining sessions"
            );
        }
        background.cancel();
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        failure = failure.or(tasks.drain(budget).await);
        match tokio::time::timeout_at(deadline, shared.store.remove_gateway(&shared.server_id))
            .await
        {
            Ok(Ok(())) => info!(server_id = %shared.server_id, "gateway drained and deregistered"),
            Ok(Err(error)) => {
                warn!(error = %error, "store entries not removed; they expire with the liveness TTL")
            }
            Err(_) => warn!("store did not answer; entries expire with the liveness TTL"),
        }
        match tokio::time::timeout_at(deadline, shared.bus.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(error = %error, "bus flush at shutdown failed"),
            Err(_) => warn!("drain deadline reached before the bus flush"),
        }
        failure.map_or(Ok(()), |failure| Err(RunError::Task(failure)))
    }
}

/// Names of the gateway's background tasks, in logs and errors.
const PRESENCE_WRITER: &str = "presence writer";
const LIVENESS: &str = "liveness";
const HEARTBEAT: &str = "heartbeat";
const NODE_LINKS: &str = "node links";
const RETAINED_ROOMS: &str = "retained rooms";
const DIRECT_MESSAGES: &str = "direct messages";
const ACCEPT_LOOP: &str = "accept loop";
const JWKS_REFRESH: &str = "jwks refresh";

#[cfg(not(feature = "test-util"))]
type Fault = ();

#[cfg(feature = "test-util")]
type Fault = Option<crate::test_util::Fault>;

/// Returns `task` as it is; with the `test-util` feature, one that panics instead when the
/// gateway's injected fault names it.
#[cfg(not(feature = "test-util"))]
fn with_fault<F: std::future::Future>(_fault: &Fault, _name: &str, task: F) -> F {
    task
}

#[cfg(feature = "test-util")]
fn with_fault<F>(
    fault: &Fault,
    name: &'static str,
    task: F,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match fault.filter(|fault| fault.task == name) {
        Some(fault) => Box::pin(async move {
            tokio::select! {
                () = task => {}
                () = tokio::time::sleep(fault.after) => panic!("injected fault in {name}"),
            }
        }),
        None => Box::pin(task),
    }
}

/// Connects the bus and store named in `config`, binds, and serves until `shutdown`.
///
/// The standalone gateway requires `bus.nats_url` and `store.redis_url`; the in-memory
/// engine is for the single-process `switchboard` only.
///
/// # Errors
/// Any [`StartError`] (as [`RunError::Start`]).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    service::ServiceConfig::validate_for_start(&config).map_err(StartError::Config)?;
    let bus = connect_bus(&config).await?;
    let store = connect_store(&config).await?;
    #[cfg_attr(not(feature = "test-util"), allow(unused_mut))]
    let mut gateway = Gateway::bind(config, bus, store).await?;
    #[cfg(feature = "test-util")]
    if let Some(fault) = crate::test_util::Fault::from_env() {
        tracing::warn!(
            task = fault.task,
            after_ms = fault.after.as_millis() as u64,
            "test fault injected"
        );
        gateway.inject_fault(fault);
    }
    gateway.serve(shutdown).await
}

/// Connects the bus from `config.bus`, or creates the in-memory bus when `nats_url` is unset.
///
/// # Errors
/// [`StartError::Bus`] when NATS cannot be reached.
pub async fn connect_bus(config: &Config) -> Result<Bus, StartError> {
    let client_name = config
        .gateway
        .server_id
        .as_deref()
        .unwrap_or("switchboard-gateway");
    Bus::connect(&config.bus, client_name)
        .await
        .map_err(StartError::Bus)
}

/// Connects the store from `config.store`, or creates the in-memory store when `redis_url` is unset.
///
/// # Errors
/// [`StartError::Store`] when Redis cannot be reached.
pub async fn connect_store(config: &Config) -> Result<Store, StartError> {
    Store::connect(&config.store)
        .await
        .map_err(StartError::Store)
}

/// Binds the listener with `backlog` (tokio's `TcpListener::bind` uses 128, which a burst of
/// a few hundred connects overflows).
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // A restarted gateway can bind again while its old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

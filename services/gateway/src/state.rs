//! The state of one gateway instance, in parts that each own what they need:
//!
//! - [`FanOut`](crate::fanout::FanOut): rooms with local members, their bus subscriptions and
//!   dispatch tasks (bus, subjects, metrics, task tracker, shutdown);
//! - [`Registry`]: the connections of this gateway (sharded map, seed 003 members, keys,
//!   queue depth per shard);
//! - [`Presence`]: the ordered writer of connection and room records to the store;
//! - [`Admission`]: what lets a client or an operator in (token verifier, API key);
//! - [`Drain`]: the shutdown state every session and task watches.
//!
//! `Shared` only puts them together for the handlers that need several (a session needs
//! admission, the registry, the fan-out and presence); a module that needs one part takes
//! that part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use auth::{Verifier, VerifierKeys};
use bus::Bus;
use protocol::Subjects;
use settings::Secret;
use store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, GatewayConfig};
use crate::connections::{Connections, SHARDS};
use crate::error::StartError;
use crate::fanout::FanOut;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::presence::PresenceOp;
use crate::session::conn::QueueLimits;

pub(crate) struct Shared {
    pub config: GatewayConfig,
    pub server_id: String,
    pub advertise_url: String,
    pub started_at_ms: u64,
    pub subjects: Subjects,
    pub bus: Bus,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub fanout: Arc<FanOut>,
    /// Messages to users, connections and everyone (see [`crate::direct`]).
    pub direct: Arc<crate::direct::Direct>,
    pub registry: Registry,
    pub presence: Presence,
    pub admission: Admission,
    pub drain: Drain,
    /// The built dashboard, when `gateway.dashboard_dir` is set.
    pub dashboard: Option<crate::http::DashboardAssets>,
}

/// The connections of this gateway.
pub(crate) struct Registry {
    pub connections: Connections,
    /// Connections of seed 003's endpoints (their heartbeats differ).
    pub seed_connections: SeedConnections,
    /// Outbound queue depth per connection shard, sampled by the heartbeat sweep.
    pub queued_per_shard: [AtomicUsize; SHARDS],
    /// Queue limits every new connection gets.
    pub queue_limits: QueueLimits,
    /// Node agents' connections, for the node network figures.
    pub node_links: crate::node_links::NodeLinks,
    next_key: AtomicU64,
}

impl Registry {
    pub fn new(queue_limits: QueueLimits) -> Self {
        Self {
            connections: Connections::new(),
            seed_connections: SeedConnections::default(),
            queued_per_shard: std::array::from_fn(|_| AtomicUsize::new(0)),
            queue_limits,
            node_links: crate::node_links::NodeLinks::default(),
            next_key: AtomicU64::new(1),
        }
    }

    /// A key no other connection of this process has.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

/// What lets a client (a token) or an operator (the API key) in.
pub(crate) struct Admission {
    pub verifier: Verifier,
    /// The key set `auth.jwks_url` names, set once in `bind` after its first fetch.
    pub jwks: std::sync::OnceLock<std::sync::Arc<auth::JwksSource>>,
    pub api_key: Option<Secret>,
}

impl Admission {
    /// Verifies `token` with the configured keys. With `auth.jwks_url`, a token naming a `kid`
    /// the key set does not have yet makes it be fetched again (rate-limited) before the
    /// token is refused, wherever a token is checked: upgrade, `refresh`, operational
    /// endpoints and node commands alike.
    pub async fn verify(&self, token: &str) -> Result<auth::Claims, auth::VerifyError> {
        match self.jwks.get() {
            Some(jwks) => jwks.verify(token).await,
            None => self.verifier.verify(token),
        }
    }
}

/// Shutdown state: set once, watched by every session and background task.
pub(crate) struct Drain {
    /// Set when shutdown begins: readiness turns false and new connections are refused.
    draining: AtomicBool,
    /// Cancelled to ask every session to send `reconnect` and close.
    pub sessions_shutdown: CancellationToken,
    /// Owns every session and background task of this gateway.
    pub tasks: TaskTracker,
}

impl Drain {
    pub fn new() -> Self {
        Self {
            draining: AtomicBool::new(false),
            sessions_shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Refuses new connections from now on (readiness turns false).
    pub fn stop_admitting(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// Keys of the connections on seed 003's endpoints. Kept apart from `Conn`, whose layout
/// the fan-out loop is sensitive to; the heartbeat sweep reads a snapshot per shard.
#[derive(Default)]
pub(crate) struct SeedConnections(std::sync::Mutex<std::collections::HashSet<u64>>);

impl SeedConnections {
    pub fn insert(&self, key: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    pub fn remove(&self, key: u64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    pub fn snapshot(&self) -> std::collections::HashSet<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Builds the state of one gateway instance: everything but the listener.
pub(crate) fn build(
    config: Config,
    bus: Bus,
    store: Store,
    local_addr: SocketAddr,
) -> Result<(Arc<Shared>, tokio::sync::mpsc::Receiver<PresenceOp>), StartError> {
    let verifier = Verifier::new(verifier_keys(&config)?).map_err(StartError::Keys)?;
    let gateway = config.gateway;
    let server_id = gateway
        .server_id
        .clone()
        .unwrap_or_else(|| format!("gw-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let scheme = if gateway.tls_cert.is_some() {
        "wss"
    } else {
        "ws"
    };
    let advertise_url = gateway
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local_addr}/api/ws/connect"));
    let dashboard = match gateway.dashboard_dir().filter(|_| gateway.dashboard) {
        Some(dir) => {
            let built = crate::http::DashboardAssets::load(dir).map_err(StartError::Dashboard)?;
            tracing::info!(dir = %dir.display(), assets = built.asset_count(), "dashboard loaded");
            Some(built)
        }
        None => None,
    };
    let (presence, presence_rx) = Presence::new();
    let metrics = Arc::new(Metrics::new());
    let subjects = Subjects::new(&config.bus.subject_prefix);
    let drain = Drain::new();
    let fanout = Arc::new(FanOut::new(
        bus.clone(),
        subjects.clone(),
        metrics.clone(),
        drain.tasks.clone(),
        drain.sessions_shutdown.clone(),
        crate::fanout::Retained::new(&gateway.retained_rooms),
    ));
    let direct = Arc::new(crate::direct::Direct::new(
        bus.clone(),
        gateway.user_subscriptions,
        subjects.clone(),
        metrics.clone(),
        drain.tasks.clone(),
        drain.sessions_shutdown.clone(),
    ));
    let shared = Arc::new(Shared {
        direct,
        registry: Registry::new(QueueLimits {
            max_messages: gateway.outbound_queue_messages,
            max_bytes: gateway.outbound_queue_bytes,
            slow_consumer_grace: gateway.slow_consumer_grace,
        }),
        server_id,
        advertise_url,
        started_at_ms: protocol::time::now_unix_ms(),
        subjects,
        bus,
        store,
        admission: Admission {
            verifier,
            jwks: std::sync::OnceLock::new(),
            api_key: config.auth.api_key.clone(),
        },
        metrics,
        fanout,
        presence,
        drain,
        dashboard,
        config: gateway,
    });
    Ok((shared, presence_rx))
}

fn verifier_keys(config: &Config) -> Result<VerifierKeys, StartError> {
    let auth = &config.auth;
    let mut keys = VerifierKeys {
        leeway: auth.leeway,
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        jwks: auth.jwks_url.is_some(),
        ..VerifierKeys::default()
    };
    for secret in [&auth.hmac_secret, &auth.previous_hmac_secret]
        .into_iter()
        .flatten()
    {
        keys.hmac_secrets.push(secret.expose().as_bytes().to_vec());
    }
    if let Some(pem) = &auth.public_key_pem {
        keys.public_keys_pem.push(pem.clone());
    }
    if let Some(path) = &auth.public_key_file {
        let pem = std::fs::read_to_string(path).map_err(|source| StartError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        keys.public_keys_pem.push(pem);
    }
    Ok(keys)
}

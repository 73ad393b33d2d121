//! The gateway's configuration: shared sections from `settings` plus the `[gateway]` section.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use settings::{AuthConfig, BusConfig, StoreConfig, TelemetryConfig};

/// Everything `switchboard-gateway` reads from defaults, `--config FILE` and `SWITCHBOARD__*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The WebSocket gateway itself.
    pub gateway: GatewayConfig,
    /// The message bus (NATS, or the embedded in-memory bus when `nats_url` is unset).
    pub bus: BusConfig,
    /// Cluster metadata (Redis, or the in-memory store when `redis_url` is unset).
    pub store: StoreConfig,
    /// Token verification and the server API key.
    pub auth: AuthConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

/// The `[gateway]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the HTTP/WebSocket listener binds. Use `0.0.0.0:8000` in containers.
    pub listen: SocketAddr,
    /// Connections the kernel may hold waiting to be accepted (capped by `net.core.somaxconn`).
    /// A small queue overflows in a reconnect storm, and each dropped SYN costs its client a
    /// one-second retransmit.
    pub listen_backlog: u32,
    /// This instance's id in the cluster; a random one is made when unset.
    pub server_id: Option<String>,
    /// URL other components may use to reach this gateway (shown in stats); defaults to
    /// `ws://<listen>` (`wss://` with `tls_cert`).
    pub advertise_url: Option<String>,
    /// Certificate chain (PEM, leaf first) to terminate TLS with on `listen`, for
    /// deployments without an ingress or load balancer that does it. Set together with
    /// `tls_key`; unset, the listener speaks plain HTTP/WebSocket. Both files are read again
    /// on SIGHUP (`kill -HUP`): new connections get the new pair, open ones keep theirs, and
    /// a pair that does not load is logged and the old one kept.
    pub tls_cert: Option<PathBuf>,
    /// Private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Connection cap of this process: every TCP connection holds a slot from accept on,
    /// through the upgrade, until its session ends. Unset, it is derived at start from the
    /// soft file limit (`RLIMIT_NOFILE` minus 256 files for the bus, store and the like and
    /// minus `probe_headroom`); set it to stay below that, never above.
    pub max_connections: Option<usize>,
    /// Connections served beyond `max_connections` when it is reached, one request each and
    /// never upgraded, so health probes and `/metrics` still get an answer.
    pub probe_headroom: usize,
    /// How long a client may take to send a request head, and how long an idle keep-alive
    /// HTTP connection stays open. Lower it when half-open connections pile up.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long `POST /api/ws/publish` and `POST /api/ws/nodes/{node_id}/commands` wait for
    /// their body (at most `max_message_bytes`).
    #[serde(with = "humantime_serde")]
    pub request_body_timeout: Duration,
    /// Largest accepted client frame/message in bytes; larger ones close the connection with 1009.
    pub max_message_bytes: usize,
    /// Per-connection socket read buffer. Allocated (and zero-filled) up front for every
    /// connection, so it weighs on idle memory; client messages are small, and larger ones
    /// are read in several calls (the buffer grows for them).
    pub read_buffer_bytes: usize,
    /// Bytes buffered before a socket write is issued; frames queued together are coalesced
    /// into one write up to this size.
    pub write_buffer_bytes: usize,
    /// Messages that may wait in one connection's outbound queue.
    pub outbound_queue_messages: usize,
    /// Bytes that may wait in one connection's outbound queue.
    pub outbound_queue_bytes: usize,
    /// How long a connection's outbound queue may stay full before it is closed as a slow
    /// consumer (4508). Messages arriving while it is full are dropped and counted.
    #[serde(with = "humantime_serde")]
    pub slow_consumer_grace: Duration,
    /// A single socket write that takes longer than this closes the connection as a slow consumer.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Interval of WebSocket pings and JSON `heartbeat` messages (seeds 001 and 003).
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A connection with no inbound frame (pong included) for this long is closed (4408).
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// Sustained client messages per second per connection (token bucket refill rate).
    pub messages_per_second: u32,
    /// Burst size of the per-connection token bucket.
    pub message_burst: u32,
    /// How long a connection may keep exceeding its message rate (a dropped message at least
    /// every second) before it is closed with 4429. Lower it to cut floods sooner; a client
    /// that only bursts now and then is never closed by it.
    #[serde(with = "humantime_serde")]
    pub rate_limit_close_after: Duration,
    /// New connections per user per minute across the whole cluster (counted in the store).
    pub connections_per_user_per_minute: u32,
    /// Rooms one connection may be subscribed to at once.
    pub max_rooms_per_connection: usize,
    /// Allowed `Origin` header values (exact match, or `*`). Empty allows any origin;
    /// requests without an `Origin` header (non-browser clients) are always allowed.
    pub allowed_origins: Vec<String>,
    /// Browser origins (`https://panel.example.com`, scheme and host with an optional port,
    /// or `*` for any) that may call the HTTP API from another site: `/api/ws/stats`,
    /// `/api/ws/streams`, `/api/ws/metrics/*`, `/api/ws/devices*`, `/api/ws/publish` and
    /// `/api/ws/nodes/{node_id}/commands` answer their preflight `OPTIONS` and send
    /// `Access-Control-Allow-Origin` to them (methods `GET`, `POST`; headers
    /// `Authorization`, `Content-Type`). Empty by default: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// After SIGTERM, how long readiness reports false (and new connections are refused)
    /// before clients are told to reconnect; give a load balancer time to stop routing here.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// Budget of the whole drain after SIGTERM (after `shutdown_delay`): HTTP requests in
    /// progress, sessions' farewells, deregistration and the bus flush all end by this
    /// deadline; what is left is cut off.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Lower bound of the jittered `retry_after` sent in `reconnect` during drain.
    #[serde(with = "humantime_serde")]
    pub reconnect_delay_min: Duration,
    /// Upper bound of the jittered `retry_after` sent in `reconnect` during drain.
    #[serde(with = "humantime_serde")]
    pub reconnect_delay_max: Duration,
    /// TTL of this gateway's liveness key in the store; a gateway that dies stops being
    /// counted within this time. Refreshed every third of it.
    #[serde(with = "humantime_serde")]
    pub liveness_ttl: Duration,
    /// How long a command on `sb.node.<id>.cmd` waits for the node's `ack`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Most commands one node connection has in flight (forwarded, waiting for the node's
    /// `ack`); a further one is answered `unavailable` at once.
    pub max_node_commands: usize,
    /// Worker threads of the runtime; 0 uses one per core.
    pub worker_threads: usize,
    /// Serve the web dashboard at `/` (a page that connects back to this gateway).
    pub dashboard: bool,
    /// The built dashboard (`clients/dashboard/dist`: `index.html` and `assets/`), read once
    /// at start. Unset, `/` answers a page that says how to build it. The container images
    /// set it; `scripts/run.sh` builds the dashboard and sets it.
    pub dashboard_dir: Option<PathBuf>,
    /// Rooms whose latest message the gateway keeps and sends first to every new subscriber,
    /// so a page opened between two updates shows the current state at once. By default the
    /// four periodic monitoring streams; add rooms whose messages each carry a whole state,
    /// never rooms of events (an alert would be shown twice). Empty turns it off.
    pub retained_rooms: Vec<String>,
    /// Longest per-connection delivery interval a client may ask for (`subscribe`'s
    /// `min_interval_ms`, seed 003's `interval`); the shortest is fixed at 50 ms. Longer
    /// intervals hold a value back for longer; raise only for very slow displays.
    #[serde(with = "humantime_serde")]
    pub max_delivery_interval: Duration,
    /// Interval of `/api/v1/ws/v2/power` when the client gives none (seed 003's clients send
    /// `interval=0.1`).
    #[serde(with = "humantime_serde")]
    pub power_default_interval: Duration,
    /// Whether `/api/v1/ws/v2/health` needs a token. Off by default: load balancer probes
    /// carry none, and the endpoint reveals nothing but the gateway's liveness and its
    /// number of open instrument streams. Turn on where even that must stay private.
    pub health_requires_token: bool,
    /// Whether the operational read endpoints (`/metrics`, `/api/ws/stats`,
    /// `/api/ws/metrics/*`, `/api/ws/devices*`) need `Authorization: Bearer` with the API key
    /// or a valid token. Off by default (Prometheus and the dashboard read them as they are);
    /// turn it on when the gateway's port is public and no ingress filters those paths.
    pub private_operations: bool,
    /// How long `/api/v1/ws/v2/power` without `device=` waits for the device reader's
    /// device list, and how long `/api/ws/devices` waits for its answer.
    #[serde(with = "humantime_serde")]
    pub device_api_timeout: Duration,
    /// How long a connection lives past its token's `exp` before it is closed with 4402,
    /// giving a client that refreshes late (clock skew, a slow token provider) time to send
    /// `refresh`. Zero closes at `exp` exactly. A token is still refused at the upgrade and
    /// in `refresh` once its `exp` has passed; the grace only delays the close.
    #[serde(with = "humantime_serde")]
    pub token_expiry_grace: Duration,
    /// How the gateway listens for personal messages (`sb.user.<sub>`): `per_user` holds one
    /// bus subscription per user it has a connection of (only the users it serves reach it,
    /// but each held user costs about 8 KiB, mostly the NATS client's buffer of that
    /// subscription); `shared` holds one `sb.user.*` subscription and drops the messages of
    /// users it does not hold (no cost per user, but every gateway receives every personal
    /// message). Choose `shared` for gateways with many distinct users and a modest rate of
    /// personal messages.
    pub user_subscriptions: UserSubscriptions,
}

/// See [`GatewayConfig::user_subscriptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserSubscriptions {
    /// One `sb.user.<sub>` subscription per held user.
    #[default]
    PerUser,
    /// One `sb.user.*` subscription per gateway, routed locally.
    Shared,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            listen_backlog: 4096,
            server_id: None,
            advertise_url: None,
            tls_cert: None,
            tls_key: None,
            max_connections: None,
            probe_headroom: http_front::DEFAULT_PROBE_HEADROOM,
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            read_buffer_bytes: 256,
            write_buffer_bytes: 8 * 1024,
            outbound_queue_messages: 1024,
            outbound_queue_bytes: 1024 * 1024,
            slow_consumer_grace: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(60),
            messages_per_second: 100,
            message_burst: 100,
            rate_limit_close_after: Duration::from_secs(3),
            connections_per_user_per_minute: 10,
            max_rooms_per_connection: 256,
            allowed_origins: Vec::new(),
            cors_allowed_origins: Vec::new(),
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
            reconnect_delay_min: Duration::from_secs(1),
            reconnect_delay_max: Duration::from_secs(5),
            liveness_ttl: Duration::from_secs(15),
            command_timeout: Duration::from_secs(10),
            max_node_commands: 64,
            worker_threads: 0,
            dashboard: true,
            dashboard_dir: None,
            user_subscriptions: UserSubscriptions::PerUser,
            retained_rooms: ["nodes", "tasks", "metrics", "resources"]
                .map(str::to_owned)
                .to_vec(),
            max_delivery_interval: Duration::from_secs(60),
            power_default_interval: Duration::from_millis(100),
            health_requires_token: false,
            private_operations: false,
            device_api_timeout: Duration::from_secs(3),
            token_expiry_grace: Duration::ZERO,
        }
    }
}

/// The longest `gateway.token_expiry_grace`: beyond minutes the grace would outlive the
/// short token lifetimes it exists to smooth over.
pub const MAX_TOKEN_EXPIRY_GRACE: Duration = Duration::from_secs(300);

impl GatewayConfig {
    /// `dashboard_dir`, unless unset or empty (an empty environment variable unsets it).
    pub fn dashboard_dir(&self) -> Option<&std::path::Path> {
        self.dashboard_dir
            .as_deref()
            .filter(|dir| !dir.as_os_str().is_empty())
    }

    /// Loads `tls_cert` and `tls_key` when both are set; `None` when neither is.
    ///
    /// # Errors
    /// One sentence naming the keys: only one of them set, or the pair does not load (the
    /// cause included).
    pub fn server_tls(&self) -> Result<Option<http_front::ServerTls>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                http_front::ServerTls::load(cert, key)
                    .map(Some)
                    .map_err(|error| {
                        let mut text = format!("gateway.tls_cert/tls_key: {error}");
                        let mut source = std::error::Error::source(&error);
                        while let Some(cause) = source {
                            text.push_str(&format!(": {cause}"));
                            source = cause.source();
                        }
                        text
                    })
            }
            _ => Err("gateway.tls_cert and gateway.tls_key must be set together".to_owned()),
        }
    }
}

/// Keys whose environment values are comma-separated lists.
pub const LIST_KEYS: [&str; 3] = [
    "gateway.allowed_origins",
    "gateway.cors_allowed_origins",
    "gateway.retained_rooms",
];

/// Most rooms `gateway.retained_rooms` may name.
pub const MAX_RETAINED_ROOMS: usize = 64;

/// Reports whether `origin` is a browser origin `gateway.cors_allowed_origins` accepts:
/// `*`, or `http(s)://host[:port]` with no path and nothing a header value cannot carry.
pub fn is_cors_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl Config {
    /// Checks the configuration and lists every problem found.
    ///
    /// # Errors
    /// Returns all problems at once, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let gateway = &self.gateway;
        let mut problems = Vec::new();
        self.bus.validate(&mut problems);
        self.store.validate(&mut problems);
        self.auth.validate(&mut problems);
        self.telemetry.validate(&mut problems);
        if !self.auth.has_verification_key() {
            problems.push(
                "auth: set auth.hmac_secret, auth.public_key_pem/public_key_file or auth.jwks_url; tokens cannot be verified otherwise".to_owned(),
            );
        }
        if let Err(problem) = gateway.server_tls() {
            problems.push(problem);
        }
        for origin in &gateway.cors_allowed_origins {
            if !is_cors_origin(origin) {
                problems.push(format!(
                    "gateway.cors_allowed_origins: {origin:?} is not an origin (scheme://host[:port], no path, or *)"
                ));
            }
        }
        if gateway.cors_allowed_origins.len() > 1
            && gateway.cors_allowed_origins.iter().any(|o| o == "*")
        {
            problems.push("gateway.cors_allowed_origins: * must be the only entry".to_owned());
        }
        if let Some(dir) = gateway
            .dashboard_dir()
            .filter(|dir| gateway.dashboard && !dir.join("index.html").is_file())
        {
            problems.push(format!(
                "gateway.dashboard_dir: {} has no index.html (build clients/dashboard: npm ci && npm run build)",
                dir.display()
            ));
        }
        for room in &gateway.retained_rooms {
            if protocol::RoomName::parse(room).is_err() {
                problems.push(format!(
                    "gateway.retained_rooms: {room:?} is not a room name"
                ));
            }
        }
        if gateway.retained_rooms.len() > MAX_RETAINED_ROOMS {
            problems.push(format!(
                "gateway.retained_rooms: at most {MAX_RETAINED_ROOMS} rooms (each holds a bus subscription for the gateway's life)"
            ));
        }
        if gateway.max_node_commands == 0 {
            problems.push("gateway.max_node_commands must be at least 1".to_owned());
        }
        if gateway.max_connections == Some(0) {
            problems.push("gateway.max_connections must be at least 1".to_owned());
        }
        if gateway.header_read_timeout.is_zero() || gateway.request_body_timeout.is_zero() {
            problems.push(
                "gateway.header_read_timeout and request_body_timeout must be positive".to_owned(),
            );
        }
        if gateway.max_message_bytes < 256 {
            problems.push("gateway.max_message_bytes must be at least 256".to_owned());
        }
        if gateway.read_buffer_bytes < 256 {
            problems.push("gateway.read_buffer_bytes must be at least 256".to_owned());
        }
        if gateway.outbound_queue_messages == 0
            || gateway.outbound_queue_bytes < gateway.max_message_bytes
        {
            problems.push(
                "gateway.outbound_queue_messages must be positive and outbound_queue_bytes at least max_message_bytes".to_owned(),
            );
        }
        if gateway.heartbeat_interval.is_zero()
            || gateway.heartbeat_timeout <= gateway.heartbeat_interval
        {
            problems.push(
                "gateway.heartbeat_timeout must be longer than a non-zero heartbeat_interval"
                    .to_owned(),
            );
        }
        if gateway.messages_per_second == 0 || gateway.message_burst == 0 {
            problems
                .push("gateway.messages_per_second and message_burst must be positive".to_owned());
        }
        if gateway.rate_limit_close_after < Duration::from_secs(1) {
            problems.push("gateway.rate_limit_close_after must be at least 1s".to_owned());
        }
        if gateway.token_expiry_grace > MAX_TOKEN_EXPIRY_GRACE {
            problems.push(format!(
                "gateway.token_expiry_grace must be at most {}s",
                MAX_TOKEN_EXPIRY_GRACE.as_secs()
            ));
        }
        if gateway.reconnect_delay_max < gateway.reconnect_delay_min {
            problems.push(
                "gateway.reconnect_delay_max must not be below reconnect_delay_min".to_owned(),
            );
        }
        let floor = Duration::from_millis(protocol::message::MIN_DELIVERY_INTERVAL_MS);
        if gateway.max_delivery_interval < floor {
            problems.push("gateway.max_delivery_interval must be at least 50ms".to_owned());
        }
        if gateway.power_default_interval < floor
            || gateway.power_default_interval > gateway.max_delivery_interval
        {
            problems.push(
                "gateway.power_default_interval must lie between 50ms and max_delivery_interval"
                    .to_owned(),
            );
        }
        if gateway.device_api_timeout.is_zero() {
            problems.push("gateway.device_api_timeout must be positive".to_owned());
        }
        if gateway.liveness_ttl < std::time::Duration::from_millis(300) {
            problems.push("gateway.liveness_ttl must be at least 300ms".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl service::ServiceConfig for Config {
    /// [`Config::validate`], plus the NATS and Redis URLs the `switchboard-gateway` process needs.
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        service::with_cluster_backends(
            self.validate(),
            "switchboard-gateway",
            &self.bus,
            &self.store,
        )
    }

    fn telemetry(&self) -> &settings::TelemetryConfig {
        &self.telemetry
    }

    fn worker_threads(&self) -> usize {
        self.gateway.worker_threads
    }
}

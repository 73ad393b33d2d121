//! End-to-end harness: real `nats-server -js` and `redis-server` on free loopback ports,
//! gateways either in this process ([`Stack`]) or as `switchboard-gateway` processes
//! configured only through `SWITCHBOARD__*` environment variables ([`GatewayProcess`]).
//! Tests drive everything from outside, through WebSocket clients, HTTP and NATS.
//! `switchboard-device-reader` runs as a process too ([`reader::DeviceReaderProcess`]); seed
//! 003's clients (a plain socket and one reconnecting with the seed's backoff) are in [`seed`],
//! and a TCP proxy that drops the network for a while in [`proxy`]. `E2E_GATEWAY_BIN` points
//! [`GatewayProcess`] at another gateway binary (a release build, for measurements).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auth::Claims;
use bus::test_util::NatsServer;
use gateway::test_util::{TestGateway, get_json, test_config};
use store::test_util::RedisServer;

pub use gateway::test_util::{TEST_API_KEY, TestClient, eventually, publish_http, within};

pub mod proxy;
pub mod reader;
pub mod seed;

/// NATS and Redis for one test.
pub struct Stack {
    /// The NATS server.
    pub nats: NatsServer,
    /// The Redis server.
    pub redis: RedisServer,
    /// A unique key prefix so tests never share store keys.
    pub key_prefix: String,
}

impl Stack {
    /// Starts NATS (JetStream on) and Redis on free ports.
    pub async fn start() -> Self {
        let nats = NatsServer::start().await;
        let redis = RedisServer::start().await;
        let key_prefix = format!("sbtest{}", std::process::id());
        Self {
            nats,
            redis,
            key_prefix,
        }
    }

    /// A gateway configuration pointing at this stack, as the environment keys would set it.
    pub fn gateway_config(&self) -> gateway::Config {
        let mut config = test_config();
        config.bus.nats_url = Some(self.nats.url());
        config.store.redis_url = Some(self.redis.url());
        config.store.key_prefix = self.key_prefix.clone();
        config
    }

    /// Starts an in-process gateway on this stack with `adjust` applied to its configuration.
    pub async fn gateway(&self, adjust: impl FnOnce(&mut gateway::Config)) -> TestGateway {
        let mut config = self.gateway_config();
        adjust(&mut config);
        let bus = gateway::connect_bus(&config).await.expect("nats reachable");
        let store = gateway::connect_store(&config)
            .await
            .expect("redis reachable");
        TestGateway::start(config, bus, store).await
    }

    /// The environment of a `switchboard-gateway` process on this stack (NATS, Redis, the test
    /// HMAC secret and API key), named `server_id`.
    pub fn gateway_env(&self, server_id: &str) -> Vec<(&'static str, String)> {
        vec![
            ("SWITCHBOARD__GATEWAY__SERVER_ID", server_id.to_owned()),
            ("SWITCHBOARD__BUS__NATS_URL", self.nats.url()),
            ("SWITCHBOARD__STORE__REDIS_URL", self.redis.url()),
            ("SWITCHBOARD__STORE__KEY_PREFIX", self.key_prefix.clone()),
            (
                "SWITCHBOARD__AUTH__HMAC_SECRET",
                String::from_utf8_lossy(auth::test_keys::TEST_HMAC_SECRET).into_owned(),
            ),
            ("SWITCHBOARD__AUTH__API_KEY", TEST_API_KEY.to_owned()),
        ]
    }

    /// Connects a bus client to this stack's NATS.
    pub async fn bus(&self) -> bus::Bus {
        bus::Bus::connect_nats(&self.nats.url(), bus::NatsOptions::default())
            .await
            .expect("nats reachable")
    }
}

/// Claims for a viewer allowed to subscribe everywhere, valid for an hour.
pub fn viewer(sub: &str) -> Claims {
    auth::test_keys::claims(sub)
}

/// Signs `claims` with the test HMAC secret.
pub fn token(claims: &Claims) -> String {
    auth::test_keys::hs256_token(claims)
}

/// Returns a free loopback port (bound and released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A `switchboard-gateway` process, killed on drop.
pub struct GatewayProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

/// Finds a workspace binary next to the test executable (`target/<profile>/<name>`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p switchboard-gateway`",
        path.display()
    );
    path
}

impl GatewayProcess {
    /// Starts `switchboard-gateway` configured only through environment variables, and
    /// waits until `/readyz` answers 200.
    pub async fn spawn(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address parses");
        Self::spawn_at(addr, env).await
    }

    /// Starts `switchboard-gateway` listening on `addr` (a restart on a known port), and
    /// waits until `/readyz` answers 200.
    pub async fn spawn_at(addr: SocketAddr, env: &[(&str, String)]) -> Self {
        let binary = std::env::var_os("E2E_GATEWAY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_binary("switchboard-gateway"));
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD__GATEWAY__LISTEN", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("switchboard-gateway starts");
        let process = Self { addr, child };
        eventually(Duration::from_secs(20), || async {
            matches!(
                gateway::test_util::http_request(addr, "GET", "/readyz", &[], "").await,
                Ok((200, _))
            )
        })
        .await;
        process
    }

    /// Sends SIGTERM (graceful drain) and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("gateway process exits")
    }

    /// Waits up to `within` for the process to exit by itself; `None` if it is still running.
    pub async fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("gateway process status") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process with SIGKILL: no drain, no deregistration.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fetches `/api/ws/stats`.
    pub async fn stats(&self) -> serde_json::Value {
        get_json(self.addr, "/api/ws/stats").await.1
    }

    /// Returns the WebSocket URL with `token`.
    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/api/ws/connect?token={token}", self.addr)
    }

    /// The process id, for `/proc/<pid>/stat`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seed 003's instrument stream at `addr`: `/api/v1/ws/v2/power?device=&module=&interval=`
/// (`interval` in seconds, as the seed writes it) with a viewer token for `sub`.
pub fn power_url(addr: SocketAddr, device: &str, module: u16, interval: &str, sub: &str) -> String {
    format!(
        "ws://{addr}/api/v1/ws/v2/power?device={device}&module={module}&interval={interval}&token={}",
        token(&viewer(sub))
    )
}

/// Seed 003's health socket at `addr` (`/api/v1/ws/v2/health`, no token).
pub fn health_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/api/v1/ws/v2/health")
}

/// Connects a JSON client and waits for `connection_established`.
pub async fn connect(url: &str) -> TestClient {
    let mut client = TestClient::connect(url, protocol::Codec::Json)
        .await
        .expect("client connects");
    client.expect_established().await;
    client
}

//! A real `nats-server` for tests, started on a free loopback port and killed on drop
//! ([`NatsServer`]), and a three-node cluster of them with routes and replicated JetStream
//! ([`NatsCluster`]) for failover tests.
//!
//! ```no_run
//! # extern crate switchboard_bus as bus;
//! # async fn example() {
//! use bus::test_util::NatsServer;
//!
//! let server = NatsServer::start().await;
//! let bus = bus::Bus::connect_nats(&server.url(), bus::NatsOptions::default())
//!     .await
//!     .expect("connect to test nats-server");
//! # }
//! ```
//!
//! The launcher panics with a clear message instead of returning errors: a test cannot do
//! anything useful without its server.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Where Debian's `nats-server` package installs the binary; `PATH` is tried otherwise.
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";
/// The machine may run its own NATS on the default port; tests never touch it.
const DEFAULT_NATS_PORT: u16 = 4222;
/// A picked port can be taken by someone else before the server binds it; try this often.
const PORT_ATTEMPTS: usize = 10;
/// How long a server may take to say it is ready (JetStream recovery included).
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A `nats-server -js` process on `127.0.0.1`, with its JetStream store in a temporary
/// directory. The process is killed when this value is dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: TempDir,
}

enum Launch {
    Ready(Child),
    PortTaken,
}

impl NatsServer {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If `nats-server` is not installed, cannot start, or is not ready within 15 s.
    pub async fn start() -> NatsServer {
        let store_dir = tempfile::Builder::new()
            .prefix("switchboard-nats-")
            .tempdir()
            .expect("a temporary directory for the nats store can be created");
        for _ in 0..PORT_ATTEMPTS {
            let port = pick_free_port();
            if let Launch::Ready(child) = launch(port, store_dir.path()).await {
                return NatsServer {
                    child: Some(child),
                    port,
                    store_dir,
                };
            }
        }
        panic!("nats-server found no free port after {PORT_ATTEMPTS} attempts");
    }

    /// Returns the client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Returns the port the server listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the JetStream store directory; it survives restarts.
    pub fn store_dir(&self) -> &Path {
        self.store_dir.path()
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit. Does nothing if it
    /// is already stopped.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error here means the process is already gone, which is what we want.
            let _ = child.kill().await;
        }
    }

    /// Stops the server if it runs, then starts it again on the same port with the same
    /// store, and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If the server cannot be started again on its port.
    pub async fn restart(&mut self) {
        self.stop().await;
        // The old listener may linger for a moment after the kill; retry briefly.
        for _ in 0..PORT_ATTEMPTS {
            if let Launch::Ready(child) = launch(self.port, self.store_dir.path()).await {
                self.child = Some(child);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nats-server could not restart on port {}", self.port);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // `kill_on_drop` would do this too; killing first means the store directory is
            // not removed under a live server. An error means it already exited.
            let _ = child.start_kill();
        }
    }
}

/// Log lines of a cluster node that knows the JetStream metadata leader, i.e. the cluster
/// has formed a quorum and JetStream requests can be served.
const META_LEADER_KNOWN: [&str; 2] = [
    "Self is new JetStream cluster metadata leader",
    "JetStream cluster new metadata leader",
];

/// A cluster of `nats-server -js` processes on `127.0.0.1` (three by default), with routes
/// between every pair, one cluster name, and a JetStream store per node in a temporary
/// directory, so streams can be replicated (`num_replicas` up to the node count). Nodes can
/// be killed and restarted one by one; every process is killed when this value is dropped.
///
/// ```no_run
/// # extern crate switchboard_bus as bus;
/// # async fn example() {
/// use bus::test_util::NatsCluster;
///
/// let mut cluster = NatsCluster::start().await;
/// let bus = bus::Bus::connect_nats(&cluster.urls(), bus::NatsOptions::default())
///     .await
///     .expect("connect to the test cluster");
/// let attached = bus.connected_server().expect("connected");
/// let node = cluster.node_with_port(attached.port).expect("a node of the cluster");
/// cluster.kill(node).await;
/// # }
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    name: String,
    nodes: Vec<ClusterNode>,
    dir: TempDir,
}

#[derive(Debug)]
struct ClusterNode {
    child: Option<Child>,
    name: String,
    client_port: u16,
    cluster_port: u16,
    /// The HTTP monitoring port (`/varz`, `/connz`, `/routez`, `/jsz`).
    monitor_port: u16,
    /// Counts launches, so every launch writes a fresh log that readiness can read.
    launches: u32,
}

impl NatsCluster {
    /// Starts a three-node cluster and waits until every node serves clients and knows the
    /// JetStream metadata leader.
    ///
    /// # Panics
    ///
    /// If `nats-server` is not installed, or the cluster is not ready within 15 s.
    pub async fn start() -> NatsCluster {
        Self::start_nodes(3).await
    }

    /// Starts a cluster of `nodes` servers (at least two); see [`NatsCluster::start`].
    ///
    /// # Panics
    ///
    /// As [`NatsCluster::start`], and for fewer than two nodes.
    pub async fn start_nodes(nodes: usize) -> NatsCluster {
        assert!(nodes >= 2, "a cluster needs at least two nodes");
        let mut dir = tempfile::Builder::new()
            .prefix("switchboard-nats-cluster-")
            .tempdir()
            .expect("a temporary directory for the nats cluster can be created");
        let name = format!("sbtest{}", std::process::id());
        'attempt: for _ in 0..PORT_ATTEMPTS {
            let ports = pick_free_ports(nodes * 3);
            let mut cluster = NatsCluster {
                name: name.clone(),
                nodes: (0..nodes)
                    .map(|index| ClusterNode {
                        child: None,
                        name: format!("n{}", index + 1),
                        client_port: ports[index * 3],
                        cluster_port: ports[index * 3 + 1],
                        monitor_port: ports[index * 3 + 2],
                        launches: 0,
                    })
                    .collect(),
                dir,
            };
            let children: Vec<(Child, PathBuf)> =
                (0..nodes).map(|index| cluster.spawn_node(index)).collect();
            for (index, (child, log_path)) in children.into_iter().enumerate() {
                let port = cluster.nodes[index].client_port;
                match wait_ready(child, port, &log_path, &META_LEADER_KNOWN).await {
                    Launch::Ready(child) => cluster.nodes[index].child = Some(child),
                    Launch::PortTaken => {
                        cluster.kill_all();
                        dir = cluster.into_dir();
                        continue 'attempt;
                    }
                }
            }
            return cluster;
        }
        panic!("the nats cluster found no free ports after {PORT_ATTEMPTS} attempts");
    }

    /// Returns every node's client URL, comma-separated: the form `bus.nats_url` takes.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|index| self.url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Returns the client URL of node `index` (0-based), `nats://127.0.0.1:<port>`.
    ///
    /// # Panics
    ///
    /// If there is no such node.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    /// Returns the number of nodes, running or not.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Returns the server name of node `index` (`n1`, `n2`, …).
    ///
    /// # Panics
    ///
    /// If there is no such node.
    pub fn node_name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// Returns the cluster's name (`cluster_name`).
    pub fn cluster_name(&self) -> &str {
        &self.name
    }

    /// Returns the index of the node whose client port is `port`, e.g. the one
    /// [`Bus::connected_server`](crate::Bus::connected_server) names.
    pub fn node_with_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|node| node.client_port == port)
    }

    /// Returns the address of node `index`'s HTTP monitoring endpoint (`/varz`, `/connz`,
    /// `/routez`, `/jsz`).
    ///
    /// # Panics
    ///
    /// If there is no such node.
    pub fn monitor_addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.nodes[index].monitor_port))
    }

    /// Returns the index of the running node that holds a client connection named
    /// `client_name` (the name a service gives its bus connection), asking each node's
    /// `/connz`; `None` when no node does. This is how a test finds the node a service
    /// process is attached to, to kill exactly that one.
    pub async fn node_serving_client(&self, client_name: &str) -> Option<usize> {
        for index in 0..self.nodes.len() {
            if !self.is_running(index) {
                continue;
            }
            let Some(connz) = http_get(self.monitor_addr(index), "/connz?limit=1024").await else {
                continue;
            };
            let compact: String = connz.chars().filter(|c| !c.is_whitespace()).collect();
            let wanted: String = format!("\"name\":\"{client_name}\"")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if compact.contains(&wanted) {
                return Some(index);
            }
        }
        None
    }

    /// Reports whether node `index` runs (was started and not killed).
    pub fn is_running(&self, index: usize) -> bool {
        self.nodes
            .get(index)
            .is_some_and(|node| node.child.is_some())
    }

    /// Kills node `index` with SIGKILL, like a crash, and waits for it to exit. Does nothing
    /// if it is already stopped.
    ///
    /// # Panics
    ///
    /// If there is no such node.
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            // An error here means the process is already gone, which is what we want.
            let _ = child.kill().await;
        }
    }

    /// Starts node `index` again on its ports with its store (killing it first if it runs)
    /// and waits until it serves clients and knows the JetStream metadata leader.
    ///
    /// # Panics
    ///
    /// If there is no such node, or it cannot start again on its ports.
    pub async fn restart(&mut self, index: usize) {
        self.kill(index).await;
        // The old listeners may linger for a moment after the kill; retry briefly.
        for _ in 0..PORT_ATTEMPTS {
            let (child, log_path) = self.spawn_node(index);
            let port = self.nodes[index].client_port;
            if let Launch::Ready(child) =
                wait_ready(child, port, &log_path, &META_LEADER_KNOWN).await
            {
                self.nodes[index].child = Some(child);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nats cluster node {index} could not restart on its ports");
    }

    /// Returns the log of node `index`'s latest launch, for a failing test to print.
    pub async fn log(&self, index: usize) -> String {
        read_log(&self.log_path(index)).await
    }

    fn log_path(&self, index: usize) -> PathBuf {
        let node = &self.nodes[index];
        self.dir
            .path()
            .join(format!("{}-{}.log", node.name, node.launches))
    }

    /// Spawns node `index` with routes to every other node; returns it and its log path.
    fn spawn_node(&mut self, index: usize) -> (Child, PathBuf) {
        self.nodes[index].launches += 1;
        let node = &self.nodes[index];
        let store_dir = self.dir.path().join(&node.name);
        std::fs::create_dir_all(&store_dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", store_dir.display()));
        let routes = self
            .nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(|other| format!("nats://127.0.0.1:{}", other.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let args = [
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            node.client_port.to_string(),
            "--server_name".to_owned(),
            node.name.clone(),
            "--cluster_name".to_owned(),
            self.name.clone(),
            "--cluster".to_owned(),
            format!("nats://127.0.0.1:{}", node.cluster_port),
            "--routes".to_owned(),
            routes,
            "-m".to_owned(),
            node.monitor_port.to_string(),
            "-js".to_owned(),
            "-sd".to_owned(),
            store_dir.display().to_string(),
        ];
        let log_path = self.log_path(index);
        (spawn(&args, &log_path), log_path)
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                // An error means it already exited.
                let _ = child.start_kill();
            }
            node.child = None;
        }
    }

    fn into_dir(mut self) -> TempDir {
        self.kill_all();
        let placeholder = tempfile::Builder::new()
            .prefix("switchboard-nats-cluster-")
            .tempdir()
            .expect("a temporary directory for the nats cluster can be created");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        // Killing first means no store directory is removed under a live server.
        self.kill_all();
    }
}

/// A minimal HTTP/1.0 GET against a monitoring port; the body, or `None` on any failure.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8(response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.0 200")
            .then(|| body.to_owned())
            .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Picks `count` distinct free ports, holding them all bound until every one is chosen.
fn pick_free_ports(count: usize) -> Vec<u16> {
    let mut listeners = Vec::with_capacity(count);
    while listeners.len() < count {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("binding 127.0.0.1:0 to find a free port succeeds");
        let port = listener
            .local_addr()
            .expect("a bound listener has a local address")
            .port();
        if port != DEFAULT_NATS_PORT {
            listeners.push((listener, port));
        }
    }
    listeners.into_iter().map(|(_, port)| port).collect()
}

/// Asks the OS for a free port by binding port 0, then releases it for the server.
fn pick_free_port() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("binding 127.0.0.1:0 to find a free port succeeds");
        let port = listener
            .local_addr()
            .expect("a bound listener has a local address")
            .port();
        if port != DEFAULT_NATS_PORT {
            return port;
        }
    }
}

fn binary() -> &'static str {
    if Path::new(DEBIAN_BINARY).exists() {
        DEBIAN_BINARY
    } else {
        "nats-server"
    }
}

/// Starts `nats-server` on `port` and waits for "Server is ready" plus an accepted TCP
/// connection. Reports `PortTaken` when the server exits because the port is in use.
async fn launch(port: u16, store_dir: &Path) -> Launch {
    let log_path = store_dir.join(format!("nats-server-{port}.log"));
    let args = [
        "-a".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-js".to_owned(),
        "-sd".to_owned(),
        store_dir.display().to_string(),
    ];
    let child = spawn(&args, &log_path);
    wait_ready(child, port, &log_path, &[]).await
}

/// Spawns `nats-server` with `args`, its log going to `log_path`.
fn spawn(args: &[String], log_path: &Path) -> Child {
    let log_file = std::fs::File::create(log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start nats-server ({error}); install it with `apt-get install nats-server`"
            )
        })
}

/// Waits until the log says "Server is ready" and one of `also` (when not empty), and the
/// client port accepts a connection. Reports `PortTaken` when the server exits because a
/// port is in use.
async fn wait_ready(mut child: Child, port: u16, log_path: &Path, also: &[&str]) -> Launch {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let log = read_log(log_path).await;
        if let Ok(Some(status)) = child.try_wait() {
            if log.contains("address already in use") {
                return Launch::PortTaken;
            }
            panic!("nats-server exited with {status} during startup; log:\n{log}");
        }
        let also_ready = also.is_empty() || also.iter().any(|line| log.contains(line));
        if log.contains("Server is ready")
            && also_ready
            && TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        {
            return Launch::Ready(child);
        }
        if Instant::now() > deadline {
            panic!(
                "nats-server was not ready on port {port} within {READY_TIMEOUT:?}; log:\n{log}"
            );
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// Reads the server log so far; empty until the server has written something.
async fn read_log(log_path: &Path) -> String {
    let log_path = log_path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read_to_string(log_path))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

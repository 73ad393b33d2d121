//! A real `nats-server` for tests, started on a free loopback port and killed on drop.
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

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
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
    let log_file = std::fs::File::create(&log_path)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
    let mut child = Command::new(binary())
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start nats-server ({error}); install it with `apt-get install nats-server`"
            )
        });

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let log = read_log(&log_path).await;
        if let Ok(Some(status)) = child.try_wait() {
            if log.contains("address already in use") {
                return Launch::PortTaken;
            }
            panic!("nats-server exited with {status} during startup; log:\n{log}");
        }
        if log.contains("Server is ready") && TcpStream::connect(("127.0.0.1", port)).await.is_ok()
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

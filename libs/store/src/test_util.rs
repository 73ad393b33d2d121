//! A real `redis-server` for tests (feature `test-util`).
//!
//! [`RedisServer::start`] launches `redis-server` from `PATH` on a free loopback port with
//! persistence off and a private temporary directory, and waits until it answers. The
//! process is killed when the value is dropped. It never uses the default port 6379.
//!
//! [`SentinelCluster::start`] launches a highly available Redis the way users run it: a
//! primary, one replica and three sentinels, each on its own free loopback port, for tests
//! of `redis+sentinel://` URLs and of failovers.

mod sentinel;

pub use sentinel::SentinelCluster;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

/// The binary to launch; Debian's `redis-server` package installs it as `/usr/bin/redis-server`.
const REDIS_SERVER_BIN: &str = "redis-server";
/// How many free ports to try before giving up (another process may grab a port between
/// our probe and redis-server's bind).
const MAX_START_ATTEMPTS: usize = 5;
/// How long a fresh redis-server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many 1 ms waits `Drop` spends reaping the killed process.
const REAP_ATTEMPTS: usize = 200;

/// A `redis-server` child process on a free loopback port, killed and reaped on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a fresh, empty `redis-server` and waits until it answers.
    ///
    /// # Panics
    /// Panics if `redis-server` is not installed, or does not start and answer within
    /// 10 s on any of several free ports.
    pub async fn start() -> RedisServer {
        Self::start_with(&[]).await
    }

    /// Starts a fresh redis-server with `extra_args` on its command line (for example
    /// `--replicaof 127.0.0.1 <port>`) and waits until it answers. With
    /// `--requirepass <password>` among them, the readiness check authenticates.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub async fn start_with(extra_args: &[String]) -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..MAX_START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("a temporary directory can be created");
            let port = free_loopback_port();
            match spawn_until_ready(port, dir.path(), extra_args).await {
                Ok(child) => {
                    return RedisServer {
                        port,
                        dir,
                        extra_args: extra_args.to_vec(),
                        child: Some(child),
                    };
                }
                Err(failure) => failures.push(format!("port {port}: {failure}")),
            }
        }
        panic!("redis-server did not start: {}", failures.join("; "));
    }

    /// Returns the URL to connect to, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Returns the port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit. Its data is lost.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is the only way `kill` fails; either way it is gone.
            let _ = child.kill().await;
        }
    }

    /// Tells whether the server process is running (not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server if it runs, then starts an empty one on the same port, with the
    /// same command line.
    ///
    /// # Panics
    /// Panics if the new server does not start and answer within 10 s (for example because
    /// another process took the port meanwhile).
    pub async fn restart(&mut self) {
        self.stop().await;
        match spawn_until_ready(self.port, self.dir.path(), &self.extra_args).await {
            Ok(child) => self.child = Some(child),
            Err(failure) => panic!(
                "redis-server did not restart on port {}: {failure}",
                self.port
            ),
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, the
    /// way a hung or partitioned Redis looks to a client.
    ///
    /// # Panics
    /// Panics if the server is not running or the signal cannot be sent.
    pub async fn pause(&self) {
        self.signal("-STOP").await;
    }

    /// Resumes a server frozen by [`RedisServer::pause`] (SIGCONT).
    ///
    /// # Panics
    /// Panics if the server is not running or the signal cannot be sent.
    pub async fn resume(&self) {
        self.signal("-CONT").await;
    }

    async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .await
            .expect("`kill` can be run");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Already exited is the only way this fails; either way it is gone.
        let _ = child.start_kill();
        // Reap it here: an orphan left to the init process may linger as a zombie. SIGKILL
        // takes effect within microseconds, so this waits a few milliseconds at most.
        for _ in 0..REAP_ATTEMPTS {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Returns a port that was free a moment ago: the kernel picks it for a throwaway listener.
pub(crate) fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .expect("a loopback port can be bound");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Launches redis-server on `port` with `dir` as its working directory and waits until it
/// answers PING as the server we started (its `dir` is ours, not another test's server that
/// raced us onto the port).
async fn spawn_until_ready(port: u16, dir: &Path, extra_args: &[String]) -> Result<Child, String> {
    let log_path = dir.join("redis.log");
    let mut child = Command::new(REDIS_SERVER_BIN)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(extra_args)
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run {REDIS_SERVER_BIN} (is it installed?): {error}"))?;
    let expected_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}: {}", read_log(&log_path)));
        }
        if let Some(served_dir) = served_dir(port, requirepass(extra_args)).await {
            if served_dir == expected_dir {
                return Ok(child);
            }
            let _ = child.kill().await;
            return Err("port taken by another redis-server".to_owned());
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill().await;
            return Err(format!(
                "no answer within {READY_TIMEOUT:?}: {}",
                read_log(&log_path)
            ));
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// The password a command line sets with `--requirepass`.
fn requirepass(args: &[String]) -> Option<&str> {
    let at = args.iter().position(|arg| arg == "--requirepass")?;
    args.get(at + 1).map(String::as_str)
}

/// `redis://[:password@]127.0.0.1:<port>`.
fn loopback_url(port: u16, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

/// Asks the server on `port` for its working directory; `None` while it does not answer.
async fn served_dir(port: u16, password: Option<&str>) -> Option<PathBuf> {
    let client = redis::Client::open(loopback_url(port, password)).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query_async(&mut connection)
        .await
        .ok()?;
    reply.get(1).map(PathBuf::from)
}

pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| "no log".to_owned())
}

//! A Redis primary, one replica and three sentinels as local processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::{
    MAX_START_ATTEMPTS, REAP_ATTEMPTS, REDIS_SERVER_BIN, RedisServer, free_loopback_port,
    loopback_url, read_log,
};

/// The name the sentinels monitor the primary under.
const MASTER_NAME: &str = "sbmaster";
const SENTINELS: usize = 3;
/// Sentinels that must agree the primary is down before a failover starts.
const QUORUM: usize = 2;
/// How long the primary may be silent before a sentinel considers it down. Short, so tests
/// see a failover within seconds; production setups use 5-30 s.
const DOWN_AFTER_MS: u64 = 1000;
const FAILOVER_TIMEOUT_MS: u64 = 5000;
/// How long the cluster may take to be ready: the replica synced, and every sentinel knowing
/// the replica and the two other sentinels (they meet through hello messages every 2 s).
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A primary, a replica of it and three sentinels monitoring them, on free loopback ports.
/// Every process is killed when the value is dropped.
#[derive(Debug)]
pub struct SentinelCluster {
    /// The two data nodes; which one is the primary changes with failovers.
    nodes: [RedisServer; 2],
    sentinels: Vec<SentinelProcess>,
    /// `requirepass` (and `masterauth`) of the data nodes.
    redis_password: Option<String>,
    /// `requirepass` of the sentinels.
    sentinel_password: Option<String>,
}

impl SentinelCluster {
    /// Starts the primary, its replica and the sentinels, and waits until the replica is in
    /// sync and every sentinel knows the replica and the other sentinels, so that a failover
    /// can happen from then on.
    ///
    /// # Panics
    /// Panics if a process does not start, or the cluster is not ready within 20 s.
    pub async fn start() -> SentinelCluster {
        Self::start_with_passwords(None, None).await
    }

    /// [`SentinelCluster::start`] with passwords: `redis_password` on the primary and the
    /// replica (`requirepass`, `masterauth`, and the sentinels' `auth-pass`),
    /// `sentinel_password` on the sentinels (`requirepass`, `sentinel-pass`). Use passwords
    /// without URL-reserved characters.
    ///
    /// # Panics
    /// As [`SentinelCluster::start`].
    pub async fn start_with_passwords(
        redis_password: Option<&str>,
        sentinel_password: Option<&str>,
    ) -> SentinelCluster {
        let mut auth_args = Vec::new();
        if let Some(password) = redis_password {
            for flag in ["--requirepass", "--masterauth"] {
                auth_args.extend([flag.to_owned(), password.to_owned()]);
            }
        }
        let primary = RedisServer::start_with(&auth_args).await;
        let mut replica_args = auth_args.clone();
        replica_args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            primary.port().to_string(),
        ]);
        let replica = RedisServer::start_with(&replica_args).await;
        wait_until("the replica is in sync with the primary", async || {
            let info = info_replication(replica.port(), redis_password).await?;
            Some(info.get("master_link_status").map(String::as_str) == Some("up"))
        })
        .await;
        let mut sentinels = Vec::with_capacity(SENTINELS);
        for _ in 0..SENTINELS {
            sentinels.push(
                SentinelProcess::start(primary.port(), redis_password, sentinel_password).await,
            );
        }
        let cluster = SentinelCluster {
            nodes: [primary, replica],
            sentinels,
            redis_password: redis_password.map(str::to_owned),
            sentinel_password: sentinel_password.map(str::to_owned),
        };
        for sentinel in &cluster.sentinels {
            let port = sentinel.port;
            wait_until(
                "every sentinel knows the replica and the other sentinels",
                async || {
                    let master = sentinel_master(port, sentinel_password).await?;
                    let count = |field: &str| {
                        master
                            .get(field)
                            .and_then(|value| value.parse::<usize>().ok())
                    };
                    Some(
                        count("num-slaves") == Some(1)
                            && count("num-other-sentinels") == Some(SENTINELS - 1),
                    )
                },
            )
            .await;
        }
        cluster
    }

    /// Returns the URL to connect to:
    /// `redis+sentinel://[:<redis password>@]127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/<master name>[?sentinel_password=<password>]`.
    pub fn url(&self) -> String {
        let hosts = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect::<Vec<_>>()
            .join(",");
        let userinfo = match &self.redis_password {
            Some(password) => format!(":{password}@"),
            None => String::new(),
        };
        let query = match &self.sentinel_password {
            Some(password) => format!("?sentinel_password={password}"),
            None => String::new(),
        };
        format!("redis+sentinel://{userinfo}{hosts}/{MASTER_NAME}{query}")
    }

    /// Returns the name the sentinels monitor the primary under.
    pub fn master_name(&self) -> &str {
        MASTER_NAME
    }

    /// Returns the ports of the sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels
            .iter()
            .map(|sentinel| sentinel.port)
            .collect()
    }

    /// Asks the first sentinel that answers for the port of the current primary.
    pub async fn primary_port(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            let password = self.sentinel_password.as_deref();
            if let Some(port) = master_port_by_sentinel(sentinel.port, password).await {
                return Some(port);
            }
        }
        None
    }

    /// Returns a plain `redis://` URL of the current primary, as the sentinels name it.
    ///
    /// # Panics
    /// Panics if no sentinel answers.
    pub async fn primary_url(&self) -> String {
        let port = self.primary_port().await.expect("a sentinel answers");
        self.node_url(port)
    }

    /// Returns a plain `redis://` URL of the data node on `port`, with its password.
    pub fn node_url(&self, port: u16) -> String {
        loopback_url(port, self.redis_password.as_deref())
    }

    /// Kills the current primary with SIGKILL, like a crash, and returns its port. The
    /// sentinels promote the replica about [`DOWN_AFTER_MS`] plus an election later.
    ///
    /// # Panics
    /// Panics if no sentinel answers or the primary they name is not one of ours.
    pub async fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().await.expect("a sentinel answers");
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .expect("the sentinels name one of the cluster's nodes");
        node.stop().await;
        port
    }

    /// Waits until the sentinels name a primary other than `old_port` and that node answers
    /// as a primary; returns its port.
    ///
    /// # Panics
    /// Panics if that does not happen within `timeout`.
    pub async fn wait_for_failover(&self, old_port: u16, timeout: Duration) -> u16 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(port) = self.primary_port().await
                && port != old_port
                && info_replication(port, self.redis_password.as_deref())
                    .await
                    .is_some_and(|info| info.get("role").map(String::as_str) == Some("master"))
            {
                return port;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no failover from port {old_port} within {timeout:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Returns the role (`master` or `slave`) the data node on `port` reports, `None` while it
    /// does not answer.
    pub async fn role_of(&self, port: u16) -> Option<String> {
        info_replication(port, self.redis_password.as_deref())
            .await?
            .remove("role")
    }

    /// Starts again every data node that was killed, empty, on its old port; the sentinels
    /// turn it into a replica of the current primary.
    pub async fn restart_killed_nodes(&mut self) {
        for node in &mut self.nodes {
            if !node.is_running() {
                node.restart().await;
            }
        }
    }
}

/// One `redis-server --sentinel` process with its own config file (Sentinel rewrites it).
#[derive(Debug)]
struct SentinelProcess {
    port: u16,
    _dir: TempDir,
    child: Option<Child>,
}

impl SentinelProcess {
    async fn start(
        primary_port: u16,
        redis_password: Option<&str>,
        sentinel_password: Option<&str>,
    ) -> SentinelProcess {
        let mut failures = Vec::new();
        for _ in 0..MAX_START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("a temporary directory can be created");
            let port = free_loopback_port();
            let spawned = spawn_sentinel(
                port,
                primary_port,
                dir.path(),
                redis_password,
                sentinel_password,
            );
            match spawned.await {
                Ok(child) => {
                    return SentinelProcess {
                        port,
                        _dir: dir,
                        child: Some(child),
                    };
                }
                Err(failure) => failures.push(format!("port {port}: {failure}")),
            }
        }
        panic!("redis sentinel did not start: {}", failures.join("; "));
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Already exited is the only way this fails; either way it is gone.
        let _ = child.start_kill();
        for _ in 0..REAP_ATTEMPTS {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

async fn spawn_sentinel(
    port: u16,
    primary_port: u16,
    dir: &Path,
    redis_password: Option<&str>,
    sentinel_password: Option<&str>,
) -> Result<Child, String> {
    let conf_path = dir.join("sentinel.conf");
    let log_path = dir.join("sentinel.log");
    let mut conf = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir {dir}\n\
         logfile {log}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} {QUORUM}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n",
        dir = dir.display(),
        log = log_path.display(),
    );
    if let Some(password) = redis_password {
        conf.push_str(&format!("sentinel auth-pass {MASTER_NAME} {password}\n"));
    }
    if let Some(password) = sentinel_password {
        conf.push_str(&format!(
            "requirepass {password}\nsentinel sentinel-pass {password}\n"
        ));
    }
    std::fs::write(&conf_path, conf).map_err(|error| format!("cannot write config: {error}"))?;
    let mut child = Command::new(REDIS_SERVER_BIN)
        .arg(&conf_path)
        .arg("--sentinel")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run {REDIS_SERVER_BIN} (is it installed?): {error}"))?;
    let deadline = tokio::time::Instant::now() + super::READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}: {}", read_log(&log_path)));
        }
        // Our sentinel, not another test's that raced us onto the port, monitors our primary.
        if let Some(port_seen) = master_port_by_sentinel(port, sentinel_password).await {
            if port_seen == primary_port {
                return Ok(child);
            }
            let _ = child.kill().await;
            return Err("port taken by another sentinel".to_owned());
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill().await;
            return Err(format!("no answer: {}", read_log(&log_path)));
        }
        tokio::time::sleep(super::READY_POLL_INTERVAL).await;
    }
}

async fn connect(port: u16, password: Option<&str>) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(loopback_url(port, password)).ok()?;
    let connecting = client.get_multiplexed_async_connection();
    tokio::time::timeout(Duration::from_secs(1), connecting)
        .await
        .ok()?
        .ok()
}

/// `SENTINEL get-master-addr-by-name` on the sentinel at `port`: the primary's port.
async fn master_port_by_sentinel(port: u16, password: Option<&str>) -> Option<u16> {
    let mut connection = connect(port, password).await?;
    let mut command = redis::cmd("SENTINEL");
    command.arg("get-master-addr-by-name").arg(MASTER_NAME);
    let reply = command.query_async::<Option<(String, u16)>>(&mut connection);
    let (_host, master_port) = tokio::time::timeout(Duration::from_secs(1), reply)
        .await
        .ok()?
        .ok()??;
    Some(master_port)
}

/// `SENTINEL MASTER <name>` on the sentinel at `port`, as a field map.
async fn sentinel_master(port: u16, password: Option<&str>) -> Option<HashMap<String, String>> {
    let mut connection = connect(port, password).await?;
    let mut command = redis::cmd("SENTINEL");
    command.arg("MASTER").arg(MASTER_NAME);
    let reply = command.query_async::<Vec<String>>(&mut connection);
    let flat = tokio::time::timeout(Duration::from_secs(1), reply)
        .await
        .ok()?
        .ok()?;
    Some(pairs(flat))
}

/// `INFO replication` of the node at `port`, as a field map.
async fn info_replication(port: u16, password: Option<&str>) -> Option<HashMap<String, String>> {
    let mut connection = connect(port, password).await?;
    let mut command = redis::cmd("INFO");
    command.arg("replication");
    let reply = command.query_async::<String>(&mut connection);
    let text = tokio::time::timeout(Duration::from_secs(1), reply)
        .await
        .ok()?
        .ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.trim().split_once(':'))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    )
}

fn pairs(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut fields = flat.into_iter();
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        map.insert(key, value);
    }
    map
}

/// Polls `check` until it answers `Some(true)`.
///
/// # Panics
/// Panics, naming `what`, after [`CLUSTER_READY_TIMEOUT`].
async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> Option<bool>) {
    let deadline = tokio::time::Instant::now() + CLUSTER_READY_TIMEOUT;
    loop {
        if check().await == Some(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sentinel cluster not ready within {CLUSTER_READY_TIMEOUT:?}: waiting until {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

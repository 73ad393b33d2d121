//! The node agent (seed 000): a node's WebSocket presence, built on [`crate::Client`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use client::agent::Agent;
//! use serde_json::json;
//!
//! let agent = Agent::builder("ws://127.0.0.1:8000/api/ws/connect", "<node token>")
//!     .node_id("node-1")
//!     .layer("edge")
//!     .update_interval(Duration::from_secs(5))
//!     .state_provider(|| json!({"queue_depth": 3}))
//!     .command_handler("flush", |params| async move { Ok(json!({"flushed": params})) })
//!     .start()?;
//! agent.notify_changed(); // report now, not at the next interval
//! agent.stop().await;     // final state, then close frame 1000
//! # Ok(()) }
//! ```
//!
//! The agent sends `node_state {node_id, layer, update_count, last_sync_time,
//! last_sync_count, current_data, operation_log}` on every (re)connect, every
//! `update_interval` while connected, and on [`AgentHandle::notify_changed`]. `update_count`
//! counts the reports sent; `operation_log` holds the newest entries (50 by default).
//!
//! Commands arrive as `command {id, name, params}` and are answered with `ack {id, ok,
//! result|error}`. Built in: `ping`, `set_interval {seconds}` and `report_now`; others are
//! registered with [`AgentBuilder::command_handler`]; unknown names get `ok: false`.
//!
//! The token must be a node token whose `node_id` claim equals the agent's node id; the
//! gateway refuses state for any other node.

mod handler;
mod record;
mod task;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{Codec, NameError};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use handler::{
    BUILT_IN_COMMANDS, CommandFuture, CommandHandler, MAX_UPDATE_INTERVAL, MIN_UPDATE_INTERVAL,
    StateProvider,
};

use crate::backoff::ReconnectPolicy;
use crate::builder::ClientBuilder;
use crate::client::Client;
use crate::error::{BuildError, ConnectError};
use record::Record;

/// Default report interval when none is set.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(5);
/// Default length of the operation log carried in every report.
pub const DEFAULT_OPERATION_LOG: usize = 50;
/// Default layer name.
pub const DEFAULT_LAYER: &str = "default";
/// Messages an agent keeps while disconnected: acks and the final state. Periodic reports
/// are not queued (the agent reports afresh on reconnect), so a few suffice.
const AGENT_OFFLINE_QUEUE: usize = 16;

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No node id was set.
    #[error("node id is required")]
    MissingNodeId,
    /// The node id breaks the naming rules (one segment of `A-Z a-z 0-9 _ -`, at most 64 bytes).
    #[error("node id is not valid")]
    InvalidNodeId(#[source] NameError),
    /// A handler was registered under a built-in command's name.
    #[error("command {0:?} is built in and cannot be replaced")]
    ReservedCommand(String),
    /// The update interval is outside [`MIN_UPDATE_INTERVAL`]..=[`MAX_UPDATE_INTERVAL`].
    #[error("update interval {0:?} is out of range")]
    InvalidInterval(Duration),
    /// The client settings were refused.
    #[error("client settings refused")]
    Client(#[source] BuildError),
    /// The client could not start.
    #[error("client could not start")]
    Connect(#[source] ConnectError),
}

/// Settings of an [`Agent`]; start with [`Agent::builder`].
pub struct AgentBuilder {
    client: ClientBuilder,
    node_id: Option<String>,
    layer: String,
    update_interval: Duration,
    provider: Arc<dyn StateProvider>,
    handlers: HashMap<String, Arc<dyn CommandHandler>>,
    reserved_names: Vec<String>,
    operation_log: usize,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("node_id", &self.node_id)
            .field("layer", &self.layer)
            .field("update_interval", &self.update_interval)
            .field("commands", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// Sets the node id (required); it must equal the token's `node_id` claim.
    #[must_use]
    pub fn node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = Some(node_id.into());
        self
    }

    /// Sets the node's layer (default `"default"`).
    #[must_use]
    pub fn layer(mut self, layer: impl Into<String>) -> Self {
        self.layer = layer.into();
        self
    }

    /// Sets the report interval (default 5 s); `set_interval` changes it at run time.
    #[must_use]
    pub fn update_interval(mut self, interval: Duration) -> Self {
        self.update_interval = interval;
        self
    }

    /// Sets what supplies `current_data` (default: `null`).
    #[must_use]
    pub fn state_provider(mut self, provider: impl StateProvider) -> Self {
        self.provider = Arc::new(provider);
        self
    }

    /// Registers an async closure for commands named `name`: it gets the command's `params`
    /// and returns the ack's `result` or its `error` text. Built-in names are refused at `start`.
    #[must_use]
    pub fn command_handler<F, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        self.command_handler_dyn(name, Arc::new(handler))
    }

    /// Registers any [`CommandHandler`] (e.g. a type of your own) for commands named `name`.
    #[must_use]
    pub fn command_handler_dyn(
        mut self,
        name: impl Into<String>,
        handler: Arc<dyn CommandHandler>,
    ) -> Self {
        let name = name.into();
        if BUILT_IN_COMMANDS.contains(&name.as_str()) {
            self.reserved_names.push(name);
        } else {
            self.handlers.insert(name, handler);
        }
        self
    }

    /// Sets how many operation log entries each report carries (default 50).
    #[must_use]
    pub fn operation_log_capacity(mut self, capacity: usize) -> Self {
        self.operation_log = capacity;
        self
    }

    /// Chooses the wire encoding (default JSON).
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.client = self.client.codec(codec);
        self
    }

    /// Sets the reconnect policy (default: 1 s doubling to 30 s, forever).
    #[must_use]
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.client = self.client.reconnect(policy);
        self
    }

    /// Sets the heartbeat timeout of the underlying client (default 60 s).
    #[must_use]
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.heartbeat_timeout(timeout);
        self
    }

    /// Trusts the CA certificates of this PEM file for a `wss://` gateway, besides the
    /// platform's root store ([`ClientBuilder::tls_ca_file`]).
    #[must_use]
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.client = self.client.tls_ca_file(path);
        self
    }

    /// Checks the settings, connects and starts reporting on the current Tokio runtime.
    ///
    /// # Errors
    /// [`AgentError`] for a missing or invalid node id, a handler under a built-in name, an
    /// interval out of range, refused client settings, or no runtime.
    pub fn start(self) -> Result<Agent, AgentError> {
        let node_id = self.node_id.ok_or(AgentError::MissingNodeId)?;
        protocol::room::validate_node_id(&node_id).map_err(AgentError::InvalidNodeId)?;
        if let Some(name) = self.reserved_names.into_iter().next() {
            return Err(AgentError::ReservedCommand(name));
        }
        if !(MIN_UPDATE_INTERVAL..=MAX_UPDATE_INTERVAL).contains(&self.update_interval) {
            return Err(AgentError::InvalidInterval(self.update_interval));
        }
        let client = self
            .client
            .offline_queue(AGENT_OFFLINE_QUEUE)
            .build()
            .map_err(AgentError::Client)?;
        let events = client.connect().map_err(AgentError::Connect)?;
        // One pending "changed" signal is enough: reports read the newest state anyway, so
        // further signals while one is pending coalesce into it.
        let (change_tx, change_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            node_id,
            layer: self.layer,
            record: Mutex::new(Record::new(self.operation_log)),
            interval_ms: AtomicU64::new(duration_ms(self.update_interval)),
            change_tx,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = task::AgentTask {
            shared: shared.clone(),
            client: client.clone(),
            provider: self.provider,
            handlers: self.handlers,
        };
        let task = tokio::spawn(task.run(events, change_rx, stop_rx));
        Ok(Agent {
            handle: AgentHandle { shared },
            client,
            stop_tx: Some(stop_tx),
            task,
        })
    }
}

/// State shared by the agent task and its handles.
struct Shared {
    node_id: String,
    layer: String,
    record: Mutex<Record>,
    interval_ms: AtomicU64,
    change_tx: mpsc::Sender<()>,
}

impl Shared {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A running node agent. Dropping it stops the agent like [`Agent::stop`], without waiting.
pub struct Agent {
    handle: AgentHandle,
    client: Client,
    stop_tx: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node_id", &self.handle.node_id())
            .field("state", &self.client.state())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts building an agent that connects to `gateway_url` with a node `token`.
    pub fn builder(gateway_url: impl Into<String>, token: impl Into<String>) -> AgentBuilder {
        AgentBuilder {
            client: Client::builder(gateway_url).token(token),
            node_id: None,
            layer: DEFAULT_LAYER.to_owned(),
            update_interval: DEFAULT_UPDATE_INTERVAL,
            provider: Arc::new(|| Value::Null),
            handlers: HashMap::new(),
            reserved_names: Vec::new(),
            operation_log: DEFAULT_OPERATION_LOG,
        }
    }

    /// Returns a cloneable handle for the node's code (change notifications, syncs, log).
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// Asks for a report now rather than at the next interval (see [`AgentHandle::notify_changed`]).
    pub fn notify_changed(&self) {
        self.handle.notify_changed();
    }

    /// Returns the underlying client, e.g. to watch the connection state.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Returns the node id.
    pub fn node_id(&self) -> &str {
        self.handle.node_id()
    }

    /// Returns the current report interval.
    pub fn update_interval(&self) -> Duration {
        self.handle.update_interval()
    }

    /// Stops the agent: sends a final state (when connected), closes the connection with
    /// 1000 and waits for both.
    pub async fn stop(mut self) {
        if let Some(stop_tx) = self.stop_tx.take() {
            let _ = stop_tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A cloneable handle on a running agent.
#[derive(Clone)]
pub struct AgentHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("node_id", &self.shared.node_id)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// Signals that the node's state changed: a report goes out at once (when connected).
    /// Signals while one is pending coalesce into one report.
    pub fn notify_changed(&self) {
        // Full means a report is already pending, which will read the newest state.
        let _ = self.shared.change_tx.try_send(());
    }

    /// Records a completed sync of `count` items (`last_sync_time` = now, `last_sync_count`)
    /// and reports it.
    pub fn record_sync(&self, count: u64) {
        self.shared.record().record_sync(count);
        self.notify_changed();
    }

    /// Appends `{timestamp, operation, ...details}` to the operation log (reported with the
    /// next report).
    pub fn log_operation(&self, operation: &str, details: Value) {
        self.shared.record().log(operation, details);
    }

    /// Returns the node id.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Returns the current report interval.
    pub fn update_interval(&self) -> Duration {
        Duration::from_millis(self.shared.interval_ms.load(Ordering::Relaxed))
    }

    /// Returns how many reports were sent so far.
    pub fn update_count(&self) -> u64 {
        self.shared.record().update_count()
    }
}

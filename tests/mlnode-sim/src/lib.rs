//! A simulated ML node that speaks the PoW batch protocol of seed 002, for end-to-end tests
//! and the embedded demo. It shares no code with batch-ingest beyond the wire types in
//! `protocol::batch`, so a protocol mismatch between the two shows up in the tests.
//!
//! Like a real ML node it:
//!
//! - serves `GET /api/v1/pow/ws` to **one client at a time**: a second client is closed with
//!   1008 "Another client is already connected", any client while PoW is not running with
//!   1008 "PoW is not running";
//! - sends each batch over the WebSocket when a client is connected, as
//!   `{"type": "generated"|"validated", "batch", "id"}` with a **new UUID per attempt**;
//! - waits [`SimConfig::ack_timeout`] (3 s) for `{"type": "ack", "id"}`; without it, posts
//!   the same batch to `{callback}/generated|validated`, and keeps it in a retry queue
//!   (every [`SimConfig::retry_interval`], ~5 s) until one path confirms;
//! - posts straight to the callback when no client is connected.
//!
//! Batches are generated deterministically from a seed and an index ([`batch_at`]), so a
//! test knows the exact set to expect ([`expected_batches`]). [`SimHandle`] exposes
//! counters, the connection log, and fault injection (cut the connection, stop PoW).
//!
//! Contract: [`MlNodeSim::bind`] binds the listener (read [`MlNodeSim::ws_url`] before
//! serving); [`MlNodeSim::serve`] runs until the token is cancelled.
#![warn(missing_docs)]

mod delivery;
mod generate;
mod http_client;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

pub use generate::{batch_at, expected_batches};
pub use server::{ConnectionEvent, ConnectionEventKind, Counters, MlNodeSim, SimHandle};

/// How the simulator uses its two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Like the seed's ML node: WebSocket when a client is connected, the HTTP callback
    /// after an ack timeout or when none is.
    #[default]
    Auto,
    /// Every attempt goes over both paths at once (when both are available), so the same
    /// batch always arrives twice: the overlap test.
    Both,
}

/// What the simulated node generates and how it delivers.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address of the node's HTTP/WebSocket listener; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Base callback URL (`http://host:port/v1/poc-batches`); `/generated` or `/validated`
    /// is appended. `None`: WebSocket only.
    pub callback_url: Option<String>,
    /// Seed of the deterministic batches.
    pub seed: u64,
    /// The node's numeric id (`node_id` in every batch).
    pub node_num: u64,
    /// How many batches to generate; `None` generates forever (the embedded demo).
    pub batches: Option<u64>,
    /// Every `validated_every`-th batch is a validated one; 0 makes them all generated.
    pub validated_every: u64,
    /// Nonces per batch.
    pub nonces_per_batch: usize,
    /// Time between two generated batches; zero generates as fast as the window allows.
    pub interval: Duration,
    /// Unconfirmed batches the node holds at most; generation waits when it is full.
    pub max_pending: usize,
    /// How long a WebSocket attempt waits for its ack before the HTTP fallback (3 s).
    pub ack_timeout: Duration,
    /// How long a failed batch waits in the retry queue (~5 s).
    pub retry_interval: Duration,
    /// Timeout of one HTTP callback request.
    pub http_timeout: Duration,
    /// HTTP callbacks in flight at most.
    pub max_http_in_flight: usize,
    /// Whether PoW runs at start; while it does not, WebSocket clients are refused.
    pub pow_running: bool,
    /// How the two paths are used.
    pub mode: DeliveryMode,
    /// Start with generation paused until [`SimHandle::resume_generation`], so a test can
    /// connect its client first.
    pub paused: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            callback_url: None,
            seed: 1,
            node_num: 1,
            batches: Some(100),
            validated_every: 4,
            nonces_per_batch: 16,
            interval: Duration::from_millis(10),
            max_pending: 1024,
            ack_timeout: Duration::from_secs(3),
            retry_interval: Duration::from_secs(5),
            http_timeout: Duration::from_secs(5),
            max_http_in_flight: 32,
            pow_running: true,
            mode: DeliveryMode::Auto,
            paused: false,
        }
    }
}

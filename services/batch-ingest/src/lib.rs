//! Batch-ingest: ML-node batches (seed 002) over WebSocket and HTTP callbacks, both live,
//! stored in JetStream exactly once and acknowledged only after the store confirms.
//!
//! - One worker per registered ML node owns that node's WebSocket client
//!   ([`protocol::batch::ML_NODE_WS_PATH`]): it connects while the node's work is started,
//!   reconnects every 3-5 s (jittered) after a failure or a 1008 refusal, and stops when the
//!   node is stopped. Nodes come from `[[batch_ingest.nodes]]` and from the management API
//!   (HTTP `/v1/nodes`, NATS `sb.api.batch_ingest.<method>`).
//! - The HTTP callbacks `POST /v1/poc-batches/generated|validated` stay; both paths feed the
//!   same [`Pipeline`], whose unit of work [`Pipeline::process_next_batch`] deduplicates by
//!   content hash, publishes to `SB_BATCHES` (`Nats-Msg-Id` = the hash) and records the hash
//!   (see `pipeline` for why that order never loses or doubles a batch).
//! - Per-node progress goes to room `tasks` as `batch_progress` events; Prometheus metrics,
//!   `/healthz` and `/readyz` are on the callback listener.
//!
//! Contract: [`BatchIngest::bind`] does every fallible set-up (configuration, the stream, the
//! API subscription, the listener), so a test can read [`BatchIngest::local_addr`] before
//! [`BatchIngest::serve`] starts the workers. [`run`] connects the bus and hash records from
//! configuration, binds and serves.
//!
//! Shutdown order when the token is cancelled: readiness turns false and the listener stops
//! accepting; callbacks in progress finish; node workers stop reading, acknowledge what they
//! are storing and close with 1001; after `shutdown_grace` the rest is cut off; the last
//! progress events are published and the bus is flushed.
//!
//! Supervision: the progress publisher and the management API run under
//! `service::supervise`; the first that fails or panics drains batch-ingest the same way and
//! [`BatchIngest::serve`] returns its error (exit status 1).
#![warn(missing_docs)]

mod api;
pub mod config;
mod error;
mod http;
mod metrics;
mod nodes;
mod pipeline;
mod progress;
mod records;
mod server;

pub use config::{BatchIngestConfig, Config, NodeConfig, StreamStorage};
pub use error::{IngestError, RunError, StartError};
pub use pipeline::{Delivery, DuplicateBy, Outcome, Path, Pipeline};
pub use records::{ConnectError as RecordsConnectError, HashRecords, RecordError};
pub use server::{BatchIngest, connect_bus, connect_records, run, stream_spec};

#[cfg(feature = "test-util")]
pub mod test_util;

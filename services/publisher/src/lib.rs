//! The Switchboard publisher: consumes node state reports (`sb.ingest.node.*`), keeps the
//! node registry (online until `node_timeout` passes without a report), and publishes the six
//! monitoring streams of seed 001 to their rooms on `sb.room.<room>`: `nodes`
//! (`node_status_update`, 5 s), `tasks` (`task_progress_update`, 2 s), `metrics`
//! (`metrics_update`, 10 s), `resources` (`resource_update`, 15 s), `topology`
//! (`topology_change`, on change) and `alerts` (`alert`, immediately). It also sends metric
//! samples to `sb.ingest.metric` for the aggregator. Every figure comes from what nodes
//! reported or from probes of the bus and store; nothing is invented.
//!
//! Several replicas may run: all consume, one publishes. The leader holds a store lease with
//! a fencing token (the `lease_epoch` in every payload and the `Sb-Lease-Epoch` header) and
//! claims each stream tick in the store before publishing it, so no tick is published
//! twice; a standby takes over within `lease_ttl + lease_renew_interval` of the leader's
//! death (the reasoning is written down in `leader.rs` and `streams/mod.rs`).
//!
//! Contract: [`Publisher::bind`] does every fallible set-up (config validation, input
//! subscriptions, the admin listener); [`Publisher::serve`] runs until the token is
//! cancelled. [`run`] connects the bus and store from configuration, binds and serves.
//!
//! Shutdown order when the token is cancelled: the streams, inputs and admin server stop
//! (bounded by `shutdown_grace`), then the lease is released so a standby takes over at
//! once, then the bus is flushed.
#![warn(missing_docs)]

mod admin;
pub mod config;
mod emit;
mod error;
mod events;
mod inputs;
mod leader;
mod metrics;
mod registry;
mod schedule;
mod service;
mod state;
mod streams;

pub use config::{Config, PublisherConfig};
pub use error::{RunError, StartError};
pub use service::{Publisher, connect_bus, connect_store, run};

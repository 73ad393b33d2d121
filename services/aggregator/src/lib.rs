//! The Switchboard aggregator: consumes metric samples on `sb.ingest.metric`, keeps 1 m,
//! 5 m and 1 h windows per metric (min, max, avg, median, stddev, p95, exact over the raw
//! samples), raises z-score anomaly and threshold alerts in the room `alerts`, stores seven
//! days of history (raw for the last hour, one-minute roll-ups before that) and answers the
//! query API `sb.api.aggregator.{history,statistics,summary}`.
//!
//! Replicas split the metrics: each registers in the store (`sb:members:aggregator`), every
//! replica receives every sample, and a metric is processed by the replica it
//! rendezvous-hashes to among the live ones, so one metric's windows are never split. When
//! the membership changes, the new owner waits `handover_settle`, loads the metric's raw
//! last hour from the store and replays the samples nobody stored from its standby buffer.
//!
//! Contract: [`Aggregator::bind`] validates the configuration, subscribes, binds the admin
//! listener and registers the replica; [`Aggregator::serve`] runs until the token is
//! cancelled. Tests drive a bound replica without timers through
//! [`Aggregator::process_next`] (one bus message) and [`Aggregator::tick`] (one flush).
//! [`run`] connects NATS and Redis from configuration, binds and serves.
//!
//! Shutdown order: stop reading samples, write everything pending to the store, leave the
//! membership, stop the query and admin tasks, flush the bus.
#![warn(missing_docs)]

mod admin;
mod api;
pub mod config;
mod detect;
mod engine;
mod error;
mod metrics;
mod ownership;
mod rules;
mod series;
mod service;
mod standby;
mod stats;

use bus::Bus;
use store::Store;
use tokio_util::sync::CancellationToken;

pub use config::{AggregatorConfig, Config, ThresholdRule};
pub use error::{RunError, StartError};
pub use metrics::Probe;
pub use service::{Aggregator, MEMBER_GROUP};

/// Connects the bus and store named in `config`, binds, and serves until `shutdown`.
///
/// The `switchboard-aggregator` binary needs `bus.nats_url` and `store.redis_url`; the
/// in-memory engine is for the single-process `switchboard`, which calls
/// [`Aggregator::bind`] with its shared bus and store.
///
/// # Errors
/// Any [`StartError`] (as [`RunError::Start`]) or a [`RunError`] from serving.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    ::service::ServiceConfig::validate_for_start(&config).map_err(StartError::Config)?;
    let bus = connect_bus(&config).await?;
    let store = connect_store(&config).await?;
    Aggregator::bind(config, bus, store)
        .await?
        .serve(shutdown)
        .await
}

/// Connects the bus from `config.bus`, or creates the in-memory bus when `nats_url` is unset.
///
/// # Errors
/// [`StartError::Bus`] when NATS cannot be reached.
pub async fn connect_bus(config: &Config) -> Result<Bus, StartError> {
    let client_name = config
        .aggregator
        .replica_id
        .as_deref()
        .unwrap_or("switchboard-aggregator");
    Bus::connect(&config.bus, client_name)
        .await
        .map_err(StartError::Bus)
}

/// Connects the store from `config.store`, or creates the in-memory store when `redis_url`
/// is unset.
///
/// # Errors
/// [`StartError::Store`] when Redis cannot be reached.
pub async fn connect_store(config: &Config) -> Result<Store, StartError> {
    Store::connect(&config.store)
        .await
        .map_err(StartError::Store)
}

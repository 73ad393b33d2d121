//! The device reader: lab instruments (seed 003) polled and streamed through the cluster.
//!
//! - Devices come from `[[device_reader.devices]]` and from the management API (HTTP
//!   `/v1/devices`, NATS `sb.api.device_reader.<method>`); each is read by a driver behind one
//!   trait ([`driver::Driver`]): `mock` (noise, drift, switchable faults) or `scpi-tcp` (one
//!   TCP connection per instrument, per-query timeouts, reconnect with backoff, strict parsing).
//! - Every interval each module's reading goes to room `devices.<id>.m<module>` (event `data`)
//!   and as metric samples (`device.ch1_power` …) to `sb.ingest.metric`; a failure goes to the
//!   same room as event `error` with `error_count` and `recoverable`; after
//!   `failures_before_unavailable` the device is `unavailable` and retried with backoff.
//!   Status changes go to room `devices` (event `device_status`).
//! - Exactly one replica reads a device: a store lease per device with fencing, and each
//!   wall-clock tick is claimed in the store before it is read, so no reading is published
//!   twice; a dead replica's devices are taken over within `lease_ttl + lease_renew_interval`
//!   (two intervals with the default timing). See `lease` and `reader`.
//!
//! Contract: [`DeviceReader::bind`] does every fallible set-up (configuration, subscriptions,
//! the listener), so a test can read [`DeviceReader::local_addr`] before
//! [`DeviceReader::serve`] starts the readers. [`run`] connects the bus and store from
//! configuration, binds and serves.
//!
//! Shutdown order when the token is cancelled: readiness turns false and the listener stops
//! accepting; readers stop and release their leases, so other replicas take over at once
//! (bounded by `shutdown_grace`); the bus tasks stop; the bus is flushed.
#![warn(missing_docs)]

mod api;
mod backoff;
pub mod config;
mod devices;
pub mod driver;
mod error;
mod health;
mod http;
mod lease;
mod metrics;
mod publish;
mod reader;
mod server;

pub use backoff::Backoff;
pub use config::{Config, DeviceConfig, DeviceReaderConfig, DriverKind};
pub use error::{RunError, StartError};
pub use server::{DeviceReader, connect_bus, connect_store, run};

//! The Switchboard WebSocket gateway: browsers, node agents and devices connect on
//! `GET /api/ws/connect`; the gateway authenticates them (JWT), keeps their room
//! subscriptions, fans out every message published on `sb.room.<room>` to the local
//! subscribers, forwards node state and commands, and exposes the HTTP API of seed 001.
//!
//! Contract: [`Gateway::bind`] does every fallible set-up (config validation, keys, the
//! listener) so a test can read [`Gateway::local_addr`] before [`Gateway::serve`] starts.
//! [`run`] connects the bus and store from configuration, binds and serves.
//!
//! Shutdown order when the token is cancelled: readiness turns false and new connections
//! are refused; every session sends `reconnect {reason, retry_after}` with a jittered delay
//! and closes with 1001; sessions get up to `drain_timeout`; background tasks stop; this
//! gateway's store entries are removed; the bus is flushed.
//!
//! Supervision: the background tasks (presence writer, liveness, heartbeat sweep, accept
//! loop) run under `service::supervise`; the first that fails or panics drains the gateway
//! the same way and [`Gateway::serve`] returns [`RunError::Task`] naming it (exit status 1).
#![warn(missing_docs)]

mod bus_api;
mod compat;
pub mod config;
mod conflate;
mod connections;
mod devices_api;
mod direct;
mod error;
mod fanout;
mod frames;
mod handshake;
mod heartbeat;
mod http;
mod http_server;
mod metrics;
mod metrics_api;
mod node_links;
mod nodes;
mod presence;
mod server;
mod session;
mod state;

pub use config::{Config, GatewayConfig};
pub use error::{RunError, StartError};
pub use http::DashboardError;
pub use server::{Gateway, connect_bus, connect_store, run};

#[cfg(feature = "test-util")]
pub mod test_util;

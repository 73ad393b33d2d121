//! Load generator for Switchboard and for the baseline it is measured against: nats-server's
//! WebSocket listener spoken to in the NATS text protocol.
//!
//! Four scenarios, each against either target ([`Target`]):
//! - [`run_fanout`]: N subscribers on one room, M messages published straight to NATS; every
//!   subscriber checks sequence numbers and records publish→receive latency.
//! - [`run_rooms`]: N subscribers over K rooms (connection `i` joins `bench.r<i % K>`), messages
//!   spread round-robin over the rooms.
//! - [`run_idle`]: N idle subscribers held for a while; the server's RSS and CPU per connection.
//! - [`run_connect_rate`]: N authenticated connections at a concurrency limit; connections/s and
//!   handshake latency.
//!
//! [`run`] dispatches on [`Options::scenario`]. Totals above one process (about 19,000 sockets)
//! use the coordination roles ([`Role`]): subscriber processes announce themselves over NATS, one
//! publisher process sends the messages and merges every process's histogram exactly.
//!
//! Every run is bounded by [`Options::timeout`]; what was not received by then counts as lost.
//! The [`Report`] carries every figure next to the loader's own CPU use, so a saturated loader is
//! visible instead of passing for a slow server.
#![warn(missing_docs)]

mod client;
mod coord;
mod error;
mod fleet;
pub mod histogram;
mod options;
mod payload;
pub mod procfs;
mod publisher;
mod report;
mod scenario;
mod tracker;

pub use error::Error;
pub use options::{Options, Role, Scenario, Target, USAGE};
pub use report::{IdleFigures, LatencySummary, Report};
pub use scenario::{run, run_connect_rate, run_fanout, run_idle, run_rooms};

//! Batch-ingest integration tests: real sockets on port 0, the in-memory bus and hash
//! records, and the simulated ML node. No NATS or Redis (those are in `tests/e2e`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callbacks;
mod front_door;
mod helpers;
mod management;
mod supervision;
mod websocket;

//! Aggregator integration tests on the in-memory bus and store, driven through the unit of
//! work (`process_next`, `tick`) so they need no timers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod replicas;
mod rules;
mod service;
mod supervision;

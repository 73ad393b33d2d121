//! The device reader's integration tests: in-process readers on the in-memory bus and store,
//! the scpi-tcp driver against the fake instrument, and the management API's contract.
#![allow(clippy::unwrap_used)]

mod api;
mod bench;
mod faults;
mod front_door;
mod helpers;
mod readings;
mod scpi;
mod supervision;
mod takeover;

//! The client SDK and node agent against a real in-process gateway (and fake servers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod basics;
mod direct;
mod faults;
mod helpers;
mod tls;
mod token;

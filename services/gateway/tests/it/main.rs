//! In-process integration tests of the gateway on the embedded engine (in-memory bus and
//! store): real sockets on port 0, no external services (except `node_links`' one test on a
//! real `nats-server`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod codecs;
mod commands_api;
mod conflation;
mod connect;
mod control;
mod cors;
mod devices;
mod devices_api;
mod direct;
mod drain;
mod fanout;
mod front_door;
mod heartbeat;
mod helpers;
mod hostile;
mod http_api;
mod jwks;
mod limits;
mod metrics_rules;
mod node_links;
mod nodes;
mod presence;
mod publish_api;
mod publishing;
mod refresh;
mod retained;
mod seed003;
mod supervision;

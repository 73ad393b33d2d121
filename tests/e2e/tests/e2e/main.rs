//! End-to-end tests against real `nats-server` and `redis-server` started on free ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod addressing;
mod agent;
mod aggregator;
mod alert_rules;
mod bad_input;
mod batches;
mod cluster;
mod commands_api;
mod deploy;
mod devices;
mod nats_failover;
mod node_monitoring;
mod nodes;
mod presence_resync;
mod publisher;
mod seed003;
mod supervision;
mod token_renewal;

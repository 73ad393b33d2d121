//! `switchboard-gateway`: the shared Switchboard `main` ([`service::main`]) around [`gateway::run`].
//! Exits 0 after a clean drain, 64 on configuration errors, 1 on runtime failures.

use std::process::ExitCode;

const BINARY: service::Binary = service::Binary {
    name: "switchboard-gateway",
    about: "switchboard-gateway: the WebSocket gateway: tokens, rooms, fan-out from NATS, heartbeats, limits, drain",
    list_keys: &gateway::config::LIST_KEYS,
};

fn main() -> ExitCode {
    service::main(&BINARY, gateway::run)
}

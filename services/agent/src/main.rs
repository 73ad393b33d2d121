//! `switchboard-agent`: the shared Switchboard `main` ([`service::main`]) around
//! [`host_agent::run`]. Exits 0 after a clean stop, 64 on configuration errors, 1 when the
//! gateway refuses the agent for good.

use std::process::ExitCode;

const BINARY: service::Binary = service::Binary {
    name: "switchboard-agent",
    about: "switchboard-agent: the node agent; reports this host's real CPU, memory, load, uptime and disk use to a gateway\n\
            e.g. SWITCHBOARD__AGENT__GATEWAY_URL, __TOKEN, __NODE_ID, __LAYER, __UPDATE_INTERVAL, __STORAGE_MOUNTS",
    list_keys: host_agent::LIST_KEYS,
};

fn main() -> ExitCode {
    service::main(&BINARY, host_agent::run)
}

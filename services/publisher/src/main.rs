//! `switchboard-publisher`: the shared Switchboard `main` ([`service::main`]) around [`publisher::run`].
//! Exits 0 after a clean drain, 64 on configuration errors, 1 on runtime failures.

use std::process::ExitCode;

const BINARY: service::Binary = service::Binary {
    name: "switchboard-publisher",
    about: "switchboard-publisher: the node registry and the six periodic room streams (one leader per cluster by lease)",
    list_keys: &[],
};

fn main() -> ExitCode {
    service::main(&BINARY, publisher::run)
}

//! `switchboard-aggregator`: the shared Switchboard `main` ([`service::main`]) around [`aggregator::run`].
//! Exits 0 after a clean drain, 64 on configuration errors, 1 on runtime failures.

use std::process::ExitCode;

const BINARY: service::Binary = service::Binary {
    name: "switchboard-aggregator",
    about: "switchboard-aggregator: metric windows, anomaly and threshold alerts, seven days of history, the metrics query API",
    list_keys: &[],
};

fn main() -> ExitCode {
    service::main(&BINARY, aggregator::run)
}

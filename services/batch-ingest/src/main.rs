//! `switchboard-batch-ingest`: the shared Switchboard `main` ([`service::main`]) around [`batch_ingest::run`].
//! Exits 0 after a clean drain, 64 on configuration errors, 1 on runtime failures.

use std::process::ExitCode;

const BINARY: service::Binary = service::Binary {
    name: "switchboard-batch-ingest",
    about: "switchboard-batch-ingest: ML-node batches over WebSocket and HTTP callbacks into JetStream, deduplicated",
    list_keys: &[],
};

fn main() -> ExitCode {
    service::main(&BINARY, batch_ingest::run)
}

//! `switchboard-device-reader`: the shared Switchboard `main` ([`service::main`]) around [`device_reader::run`].
//! Exits 0 after a clean drain, 64 on configuration errors, 1 on runtime failures.

use std::process::ExitCode;

const BINARY: service::Binary = service::Binary {
    name: "switchboard-device-reader",
    about: "switchboard-device-reader: lab instruments (mock, SCPI over TCP) read on an interval and streamed to rooms devices.<id>.m<module>, one replica per device by lease",
    list_keys: &[],
};

fn main() -> ExitCode {
    service::main(&BINARY, device_reader::run)
}

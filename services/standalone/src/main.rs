//! `switchboard`: the whole system in one process, through the shared Switchboard `main`
//! ([`service::main`]). Prints where to connect, then serves until SIGTERM/SIGINT.

use std::process::ExitCode;

use standalone::{Access, Config, RunError, Standalone};
use tokio_util::sync::CancellationToken;

const BINARY: service::Binary = service::Binary {
    name: "switchboard",
    about: "switchboard: every Switchboard service in one process on the embedded in-memory engine, \
            with simulated nodes, an ML node and the dashboard",
    list_keys: &standalone::LIST_KEYS,
};

fn main() -> ExitCode {
    service::main(&BINARY, run)
}

async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let standalone = Standalone::bind(config).await?;
    print_access(standalone.access());
    standalone.serve(shutdown).await
}

fn print_access(access: &Access) {
    let addr = access.addr;
    let token = &access.dev_token;
    println!("\nSwitchboard is running (embedded engine).");
    println!("  dashboard:  http://{addr}/?token={token}");
    println!("  websocket:  ws://{addr}/api/ws/connect?token={token}");
    println!("  dev token:  {token}");
    println!(
        "  publish:    curl -X POST http://{addr}/api/ws/publish -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d '{{\"room\":\"alerts\",\"type\":\"alert\",\"data\":{{\"message\":\"hello\"}}}}'",
        access.api_key
    );
    println!("  stats:      curl http://{addr}/api/ws/stats");
    println!(
        "  batches:    curl http://{}/v1/progress",
        access.batch_ingest_addr
    );
    println!(
        "  devices:    curl http://{}/v1/devices   (rooms devices.opm-1.m1, devices.opm-1.m4, devices.opm-2.m1)",
        access.device_reader_addr
    );
    println!("Press Ctrl-C to stop.\n");
}

//! `switchboard`: the whole system in one process. Prints where to connect, then serves
//! until SIGTERM/SIGINT.

use std::collections::HashMap;
use std::process::ExitCode;

use standalone::{Config, Standalone};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: switchboard [--config FILE] [--check-config]
runs every Switchboard service in one process on the embedded in-memory engine;
configuration: defaults < FILE (TOML) < SWITCHBOARD__<SECTION>__<KEY> environment variables";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let cli = match settings::config_path_from_args_and_env(&args, &env) {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    if cli.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config: Config =
        match settings::load_with_lists(cli.config.as_deref(), &env, &standalone::LIST_KEYS) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("configuration error: {error}");
                return ExitCode::from(64);
            }
        };
    if cli.check_only {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot start the runtime");
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        let _telemetry = match telemetry::init("switchboard", &config.telemetry) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("cannot initialise telemetry: {error}");
                return ExitCode::FAILURE;
            }
        };
        let standalone = match Standalone::bind(config).await {
            Ok(standalone) => standalone,
            Err(error) => {
                eprintln!("cannot start: {error}");
                return ExitCode::from(64);
            }
        };
        let access = standalone.access();
        let addr = access.addr;
        println!("\nSwitchboard is running (embedded engine).");
        println!("  dashboard:  http://{addr}/?token={}", access.dev_token);
        println!("  websocket:  ws://{addr}/api/ws/connect?token={}", access.dev_token);
        println!("  dev token:  {}", access.dev_token);
        println!("  publish:    curl -X POST http://{addr}/api/ws/publish -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d '{{\"room\":\"alerts\",\"type\":\"alert\",\"data\":{{\"message\":\"hello\"}}}}'", access.api_key);
        println!("  stats:      curl http://{addr}/api/ws/stats");
        println!("  batches:    curl http://{}/v1/progress", access.batch_ingest_addr);
        println!("Press Ctrl-C to stop.\n");
        let shutdown = CancellationToken::new();
        signals::spawn_listener(shutdown.clone());
        match standalone.serve(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %error, "switchboard failed");
                ExitCode::FAILURE
            }
        }
    })
}

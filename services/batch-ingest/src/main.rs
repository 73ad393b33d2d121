//! `switchboard-batch-ingest`: parse flags, load config, init telemetry, serve until a signal.

use std::collections::HashMap;
use std::process::ExitCode;

use batch_ingest::{Config, RunError, StartError};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let cli = match settings::config_path_from_args_and_env(&args, &env) {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("{error}\n{}", settings::usage("switchboard-batch-ingest"));
            return ExitCode::from(64);
        }
    };
    if cli.help {
        println!("{}", settings::usage("switchboard-batch-ingest"));
        return ExitCode::SUCCESS;
    }
    let config: Config = match settings::load(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(64);
        }
    };
    if let Err(problems) = config.validate() {
        eprintln!("configuration error:\n  {}", problems.join("\n  "));
        return ExitCode::from(64);
    }
    if cli.check_only {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    let _telemetry = match telemetry::init("switchboard-batch-ingest", &config.telemetry) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("cannot initialise telemetry: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = ?config, "effective configuration");
    let shutdown = CancellationToken::new();
    signals::spawn_listener(shutdown.clone());
    match batch_ingest::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Start(StartError::Config(problems))) => {
            tracing::error!(problems = ?problems, "invalid configuration");
            ExitCode::from(64)
        }
        Err(error) => {
            let source = std::error::Error::source(&error).map(ToString::to_string);
            tracing::error!(error = %error, source = ?source, "batch-ingest failed");
            ExitCode::FAILURE
        }
    }
}

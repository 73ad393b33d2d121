//! `switchboard-publisher`: parse flags, load config, init telemetry, serve until a signal.
//! Exits 0 after a clean drain, 64 on configuration errors, 1 on runtime failures.

use std::collections::HashMap;
use std::process::ExitCode;

use publisher::{Config, RunError, StartError};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: switchboard-publisher [--config FILE] [--check-config]
configuration: defaults < FILE (TOML) < SWITCHBOARD__<SECTION>__<KEY> environment variables";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let cli = match settings::config_path_from_args_and_env(&args, &env) {
        Ok(cli) if cli.help => return exit_with(USAGE, ExitCode::SUCCESS),
        Ok(cli) => cli,
        Err(error) => return exit_with(&format!("{error}\n{USAGE}"), ExitCode::from(64)),
    };
    let config: Config = match settings::load(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            return exit_with(&format!("configuration error: {error}"), ExitCode::from(64));
        }
    };
    if let Err(problems) = config.validate() {
        return exit_with(&config_problems(&problems), ExitCode::from(64));
    }
    if cli.check_only {
        return exit_with("configuration ok", ExitCode::SUCCESS);
    }
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return exit_with("cannot start the tokio runtime", ExitCode::FAILURE);
    };
    runtime.block_on(async move {
        let _telemetry = match telemetry::init("switchboard-publisher", &config.telemetry) {
            Ok(guard) => guard,
            Err(error) => return exit_with(&format!("cannot initialise telemetry: {error}"), ExitCode::FAILURE),
        };
        tracing::info!(config = ?config, "effective configuration");
        let shutdown = CancellationToken::new();
        signals::spawn_listener(shutdown.clone());
        match publisher::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(RunError::Start(StartError::Config(problems))) => {
                exit_with(&config_problems(&problems), ExitCode::from(64))
            }
            Err(error) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "publisher failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn config_problems(problems: &[String]) -> String {
    format!("configuration error:\n  {}", problems.join("\n  "))
}

/// Prints `message` (stdout on success, stderr otherwise) and returns `code`.
fn exit_with(message: &str, code: ExitCode) -> ExitCode {
    if code == ExitCode::SUCCESS {
        println!("{message}")
    } else {
        eprintln!("{message}")
    }
    code
}

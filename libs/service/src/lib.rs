//! The `main` every Switchboard binary shares.
//!
//! [`main`] does, in order: parse the flags ([`settings::config_path_from_args_and_env`]),
//! answer `--help`, `--version` and `--probe URL` without loading anything, load the layered
//! configuration (sections the binary does not have are ignored, so one environment serves
//! every service), validate it with the same checks `run` makes (so `--check-config` and
//! start-up agree), build the Tokio runtime, initialise telemetry, install the signal
//! listener, call the service's `run` with the root [`CancellationToken`], and turn the result
//! into an exit status: 0 after a clean drain, 64 for configuration problems, 1 for anything
//! else, with the whole error chain in the log.
#![warn(missing_docs)]

mod probe;
pub mod supervise;

use std::collections::HashMap;
use std::error::Error;
use std::fmt::{Debug, Write as _};
use std::future::Future;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;
use settings::{BusConfig, CliArgs, StoreConfig, TelemetryConfig};
use tokio_util::sync::CancellationToken;

pub use probe::{ProbeError, probe};

/// Exit status for configuration problems (`EX_USAGE` of sysexits).
pub const EXIT_CONFIG: u8 = 64;

/// The workspace version every binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binaries were built from (`unknown` outside a git checkout unless
/// `SWITCHBOARD_GIT_COMMIT` was set at build time).
pub const COMMIT: &str = env!("SWITCHBOARD_BUILD_COMMIT");

/// What a binary says about itself.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// The executable's name, also the telemetry service name (`switchboard-gateway`).
    pub name: &'static str,
    /// One or two lines for `--help` after the usage line: what the binary does.
    pub about: &'static str,
    /// Dotted keys whose environment values are comma-separated lists.
    pub list_keys: &'static [&'static str],
}

/// A binary's configuration, as [`main`] needs it.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default + Debug + Send + 'static {
    /// Every check the binary makes before it starts, with every problem listed; `run` must
    /// make the same checks (call this), so `--check-config` never passes a configuration
    /// that start-up refuses.
    ///
    /// # Errors
    /// Every problem, one sentence each.
    fn validate_for_start(&self) -> Result<(), Vec<String>>;

    /// The `[telemetry]` section.
    fn telemetry(&self) -> &TelemetryConfig;

    /// Tokio worker threads; 0 means one per core.
    fn worker_threads(&self) -> usize {
        0
    }
}

/// A service's run error, as [`main`] needs it.
pub trait ServiceError: Error {
    /// Whether the failure is a configuration problem (exit 64) rather than a runtime
    /// failure (exit 1).
    fn is_config(&self) -> bool;
}

/// The start-up checks of a service that runs as its own process on NATS and Redis: the
/// service's own `checked` problems plus unset `bus.nats_url` / `store.redis_url` (the
/// in-memory bus and store reach only one process, so only the standalone may use them).
///
/// # Errors
/// Every problem, the service's first.
pub fn with_cluster_backends(
    checked: Result<(), Vec<String>>,
    binary: &str,
    bus: &BusConfig,
    store: &StoreConfig,
) -> Result<(), Vec<String>> {
    let mut problems = checked.err().unwrap_or_default();
    bus.require_url(binary, &mut problems);
    store.require_url(binary, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The whole `main` of a Switchboard binary. `run` gets the validated configuration and the
/// root shutdown token (cancelled by the first SIGTERM/SIGINT; a second one exits 1).
pub fn main<C, E, F, Fut>(binary: &Binary, run: F) -> ExitCode
where
    C: ServiceConfig,
    E: ServiceError,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let cli = match settings::config_path_from_args_and_env(&args, &env) {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("{error}\n\n{}", help(binary));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(code) = answer_without_config(binary, &cli) {
        return code;
    }
    let loaded = match settings::load_layers::<C>(cli.config.as_deref(), &env, binary.list_keys) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!(
                "{}: configuration error: {}",
                binary.name,
                error_chain(&error)
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = loaded.config;
    if let Err(problems) = config.validate_for_start() {
        eprintln!(
            "{}: configuration error:\n  {}",
            binary.name,
            problems.join("\n  ")
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    if cli.check_only {
        println!("{}: configuration ok", binary.name);
        return ExitCode::SUCCESS;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads() > 0 {
        runtime.worker_threads(config.worker_threads());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the runtime: {error}", binary.name);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry = match telemetry::init(binary.name, config.telemetry()) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!(
                    "{}: cannot initialise telemetry: {}",
                    binary.name,
                    error_chain(&error)
                );
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(version = VERSION, commit = COMMIT, config = ?config, "starting");
        if !loaded.ignored_sections.is_empty() {
            tracing::debug!(
                sections = ?loaded.ignored_sections,
                "configuration sections this binary does not use were ignored"
            );
        }
        let shutdown = CancellationToken::new();
        signals::spawn_listener(shutdown.clone());
        match run(config, shutdown).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(error) if error.is_config() => {
                tracing::error!(error = %error_chain(&error), "invalid configuration");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "{} failed", binary.name);
                ExitCode::FAILURE
            }
        }
    })
}

/// Answers the flags that need no configuration: `--help`, `--version`, `--probe URL`.
fn answer_without_config(binary: &Binary, cli: &CliArgs) -> Option<ExitCode> {
    if cli.help {
        println!("{}", help(binary));
        return Some(ExitCode::SUCCESS);
    }
    if cli.version {
        println!("{}", version_line(binary.name));
        return Some(ExitCode::SUCCESS);
    }
    let url = cli.probe.as_deref()?;
    Some(match probe(url, probe::PROBE_TIMEOUT) {
        Ok(status) => {
            println!("{url}: {status}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{url}: {error}");
            ExitCode::FAILURE
        }
    })
}

/// `switchboard-gateway 0.1.0 (commit 0f048dd1a2b3)`.
pub fn version_line(name: &str) -> String {
    format!("{name} {VERSION} (commit {COMMIT})")
}

fn help(binary: &Binary) -> String {
    format!("{}\n{}", binary.about, settings::usage(binary.name))
}

/// `error: cause: cause of the cause`, the whole `source()` chain on one line.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror's `#[error(transparent)]` and "{0}" wrappers repeat their source's text.
        if !text.ends_with(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to the bus")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("nats: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_whole_chain_is_one_line_without_repeats() {
        let error = Outer(Middle(std::io::Error::other("connection refused")));
        assert_eq!(
            error_chain(&error),
            "cannot connect to the bus: nats: connection refused"
        );
    }

    #[test]
    fn version_names_the_binary_and_commit() {
        let line = version_line("switchboard-gateway");
        assert!(line.starts_with("switchboard-gateway 0."), "{line}");
        assert!(line.contains("(commit "), "{line}");
    }
}

//! `switchboard-mlnode-sim`: a simulated ML node on the command line.
//!
//! `switchboard-mlnode-sim [--listen ADDR] [--callback URL] [--seed N] [--node-num N]
//! [--batches N|forever] [--interval DURATION] [--both]`

use std::process::ExitCode;

use mlnode_sim::{DeliveryMode, MlNodeSim, SimConfig};
use tokio_util::sync::CancellationToken;

fn parse(args: &[String]) -> Result<SimConfig, String> {
    let mut config = SimConfig {
        batches: None,
        interval: std::time::Duration::from_secs(1),
        ..SimConfig::default()
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if flag == "--both" {
            config.mode = DeliveryMode::Both;
            continue;
        }
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => config.listen = value.parse().map_err(|e| bad(&e))?,
            "--callback" => config.callback_url = Some(value.clone()),
            "--seed" => config.seed = value.parse().map_err(|e| bad(&e))?,
            "--node-num" => config.node_num = value.parse().map_err(|e| bad(&e))?,
            "--batches" if value == "forever" => config.batches = None,
            "--batches" => config.batches = Some(value.parse().map_err(|e| bad(&e))?),
            "--interval" => {
                config.interval = humantime::parse_duration(value).map_err(|e| bad(&e))?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!(
                "{error}\nusage: switchboard-mlnode-sim [--listen ADDR] [--callback URL] [--seed N] [--node-num N] [--batches N|forever] [--interval 1s] [--both]"
            );
            return ExitCode::from(64);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let sim = match MlNodeSim::bind(config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("cannot bind: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("ml node simulator on {}", sim.ws_url());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    match sim.serve(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("simulator failed: {error}");
            ExitCode::FAILURE
        }
    }
}

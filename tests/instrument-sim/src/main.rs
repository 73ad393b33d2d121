//! `switchboard-instrument-sim [ADDR]`: the fake optical power meter on `ADDR`
//! (default `127.0.0.1:5025`), answering until Ctrl-C. Faults are switched from the library.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5025".to_owned());
    let sim = match instrument_sim::InstrumentSim::bind(&addr).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("cannot bind {addr}: {error}");
            return ExitCode::from(1);
        }
    };
    println!("fake instrument listening on {}", sim.local_addr());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

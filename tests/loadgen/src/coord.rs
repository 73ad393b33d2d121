//! Runs spread over several loader processes, coordinated over NATS.
//!
//! Subjects, all under `loadgen.<run_id>`:
//! - `ready`: a subscriber process has set up its connections ([`Ready`]); repeated every
//!   second until `start`, because core NATS keeps nothing for a publisher that is not yet
//!   listening.
//! - `start`: the publisher has heard every expected process and publishes now.
//! - `done`: publishing ended ([`PublishStats`]); subscribers stop waiting once nothing more
//!   arrives for the stall timeout.
//! - `result`: a subscriber process's figures ([`ProcessResult`]), histograms included, so the
//!   publisher merges percentiles exactly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::fleet::{Ending, Fleet, FleetResult};
use crate::procfs::{CpuMark, ServerMark};
use crate::publisher::{self, PublishStats};
use crate::report::{LoaderCpu, Report};
use crate::scenario::loader_cpu;
use crate::{Error, Options};

/// How often a subscriber process repeats `ready` until the publisher says `start`.
const READY_REPEAT: Duration = Duration::from_secs(1);

fn subject(options: &Options, what: &str) -> String {
    format!("loadgen.{}.{what}", options.run_id)
}

fn process_name(options: &Options) -> String {
    format!("pid{}-offset{}", std::process::id(), options.client_offset)
}

/// A subscriber process's announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ready {
    process: String,
    connected: u64,
    failed: u64,
}

/// A subscriber process's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProcessResult {
    process: String,
    fleet: FleetResult,
    loader: LoaderCpu,
    timed_out: bool,
}

fn encode<T: Serialize>(value: &T) -> Result<bytes::Bytes, Error> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|error| Error::Coordination(error.to_string()))
}

/// Connects this process's share, announces it, waits for the messages, reports.
pub(crate) async fn run_subscriber(options: &Options) -> Result<Report, Error> {
    let run_start = CpuMark::now();
    let deadline = Instant::now() + options.timeout;
    let nats = publisher::connect_nats(options).await?;
    let mut start = nats
        .subscribe(subject(options, "start"))
        .await
        .map_err(Error::nats)?;
    let mut done = nats
        .subscribe(subject(options, "done"))
        .await
        .map_err(Error::nats)?;
    let fleet = Fleet::start(options, true).await?;
    fleet.wait_connected(deadline).await;
    let ready = Ready {
        process: process_name(options),
        connected: fleet.connected() as u64,
        failed: fleet.failed() as u64,
    };
    info!(
        connected = ready.connected,
        failed = ready.failed,
        "ready, waiting for start"
    );
    let mut started = false;
    while !started && Instant::now() < deadline {
        nats.publish(subject(options, "ready"), encode(&ready)?)
            .await
            .map_err(Error::nats)?;
        started = tokio::time::timeout(READY_REPEAT, start.next())
            .await
            .is_ok_and(|message| message.is_some());
    }
    let server_start = ServerMark::now(options.server_pid);
    let measure_start = CpuMark::now();
    let publishing_done = Arc::new(AtomicBool::new(false));
    let stats = tokio::spawn({
        let publishing_done = publishing_done.clone();
        async move {
            let stats = done
                .next()
                .await
                .and_then(|message| serde_json::from_slice::<PublishStats>(&message.payload).ok());
            publishing_done.store(true, Ordering::Relaxed);
            stats
        }
    });
    let ending = if started {
        fleet
            .wait_complete(deadline, options.stall_timeout, || {
                publishing_done.load(Ordering::Relaxed)
            })
            .await
    } else {
        Ending::TimedOut
    };
    let measure_end = CpuMark::now();
    let server_end = ServerMark::now(options.server_pid);
    let result = fleet.finish().await;
    let loader = loader_cpu(&run_start, &measure_start, &measure_end);
    let outcome = ProcessResult {
        process: ready.process,
        fleet: result.clone(),
        loader,
        timed_out: ending == Ending::TimedOut,
    };
    nats.publish(subject(options, "result"), encode(&outcome)?)
        .await
        .map_err(Error::nats)?;
    nats.flush().await.map_err(Error::nats)?;
    let published = if publishing_done.load(Ordering::Relaxed) {
        stats.await.ok().flatten().unwrap_or_default()
    } else {
        stats.abort();
        PublishStats::default()
    };
    let mut report = Report::new(options, &result, &[loader]);
    report.add_delivery(&result, &published, ending);
    report.add_server_window(&server_start, &server_end);
    Ok(report)
}

/// Waits for the subscriber processes, publishes, collects and merges their figures.
pub(crate) async fn run_publisher(options: &Options) -> Result<Report, Error> {
    let run_start = CpuMark::now();
    let deadline = Instant::now() + options.timeout;
    let nats = publisher::connect_nats(options).await?;
    let mut ready_messages = nats
        .subscribe(subject(options, "ready"))
        .await
        .map_err(Error::nats)?;
    let mut results = nats
        .subscribe(subject(options, "result"))
        .await
        .map_err(Error::nats)?;
    let expected = options.expect_subscribers;
    let mut ready: HashMap<String, Ready> = HashMap::new();
    while ready.len() < expected {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(message)) = tokio::time::timeout(wait, ready_messages.next()).await else {
            return Err(Error::Coordination(format!(
                "{} of {expected} subscriber processes were ready before the timeout",
                ready.len()
            )));
        };
        if let Ok(announcement) = serde_json::from_slice::<Ready>(&message.payload) {
            if !ready.contains_key(&announcement.process) {
                info!(process = %announcement.process, connected = announcement.connected, "subscriber process ready");
            }
            ready.insert(announcement.process.clone(), announcement);
        }
    }
    nats.publish(subject(options, "start"), bytes::Bytes::new())
        .await
        .map_err(Error::nats)?;
    let measure_start = CpuMark::now();
    let published = publisher::publish(&nats, options).await?;
    let measure_end = CpuMark::now();
    nats.publish(subject(options, "done"), encode(&published)?)
        .await
        .map_err(Error::nats)?;
    nats.flush().await.map_err(Error::nats)?;
    info!(sent = published.sent, "published, collecting results");

    let mut collected: HashMap<String, ProcessResult> = HashMap::new();
    while collected.len() < ready.len() {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(message)) = tokio::time::timeout(wait, results.next()).await else {
            warn!(
                missing = ready.len() - collected.len(),
                "results missing at the timeout"
            );
            break;
        };
        match serde_json::from_slice::<ProcessResult>(&message.payload) {
            Ok(result) => {
                collected.insert(result.process.clone(), result);
            }
            Err(error) => warn!(error = %error, "unreadable result"),
        }
    }
    let mut merged = FleetResult::default();
    let mut loaders = vec![loader_cpu(&run_start, &measure_start, &measure_end)];
    let mut timed_out = collected.len() < ready.len();
    for result in collected.values() {
        merged.merge(&result.fleet);
        loaders.push(result.loader);
        timed_out |= result.timed_out;
    }
    // A process that never reported owes what its connections expected: count it as lost.
    for (process, announcement) in &ready {
        if !collected.contains_key(process) {
            merged.clients += announcement.connected + announcement.failed;
            merged.connected += announcement.connected;
            merged.connect_failures += announcement.failed;
            merged.expected += announcement.connected * options.messages
                / options.publish_rooms().len().max(1) as u64;
        }
    }
    let mut report = Report::new(options, &merged, &loaders);
    let ending = if timed_out {
        Ending::TimedOut
    } else if merged.unique < merged.expected {
        Ending::Stalled
    } else {
        Ending::Complete
    };
    report.add_delivery(&merged, &published, ending);
    report.processes = collected.len() as u64;
    Ok(report)
}

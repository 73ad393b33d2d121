//! The scenarios, run in one process ([`Role::All`]); the multi-process roles are in `coord`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::info;

use crate::fleet::{Ending, Fleet};
use crate::procfs::{self, CpuMark, ServerMark};
use crate::publisher::{self, PublishStats};
use crate::report::{IdleFigures, LoaderCpu, Report, round_to};
use crate::{Error, Options, Role, Scenario, coord};

/// Runs the scenario and role `options` name.
///
/// # Errors
/// When the run cannot be carried out at all (bad options, NATS unreachable, coordination
/// failed); connection failures and losses are figures of the report instead.
pub async fn run(options: &Options) -> Result<Report, Error> {
    match (options.role, options.scenario) {
        (Role::Subscriber, _) => coord::run_subscriber(options).await,
        (Role::Publisher, _) => coord::run_publisher(options).await,
        (Role::All, Scenario::Fanout | Scenario::Rooms) => run_delivery(options).await,
        (Role::All, Scenario::Idle) => run_idle_scenario(options).await,
        (Role::All, Scenario::ConnectRate) => run_connect_rate_scenario(options).await,
    }
}

/// Runs the fanout scenario: `clients` subscribers on `room`, `messages` messages.
///
/// # Errors
/// See [`run`].
pub async fn run_fanout(options: &Options) -> Result<Report, Error> {
    run(&with_scenario(options, Scenario::Fanout)).await
}

/// Runs the rooms scenario: `clients` subscribers over `rooms` rooms.
///
/// # Errors
/// See [`run`].
pub async fn run_rooms(options: &Options) -> Result<Report, Error> {
    run(&with_scenario(options, Scenario::Rooms)).await
}

/// Runs the idle scenario: `clients` subscribers held for `duration`.
///
/// # Errors
/// See [`run`].
pub async fn run_idle(options: &Options) -> Result<Report, Error> {
    run(&with_scenario(options, Scenario::Idle)).await
}

/// Runs the connect-rate scenario: `clients` connections at `concurrency`.
///
/// # Errors
/// See [`run`].
pub async fn run_connect_rate(options: &Options) -> Result<Report, Error> {
    run(&with_scenario(options, Scenario::ConnectRate)).await
}

fn with_scenario(options: &Options, scenario: Scenario) -> Options {
    let mut options = options.clone();
    options.scenario = scenario;
    options
}

async fn run_delivery(options: &Options) -> Result<Report, Error> {
    options.validate()?;
    let run_start = CpuMark::now();
    let deadline = Instant::now() + options.timeout;
    // Connected first, so a NATS problem shows before thousands of connections are made.
    let nats = publisher::connect_nats(options).await?;
    let fleet = Fleet::start(options, true).await?;
    let all_set_up = fleet.wait_connected(deadline).await;
    info!(
        connected = fleet.connected(),
        failed = fleet.failed(),
        "subscribers ready, publishing"
    );
    let server_start = ServerMark::now(options.server_pid);
    let measure_start = CpuMark::now();
    let (published, ending, measure_end) = if all_set_up {
        let publishing_done = AtomicBool::new(false);
        let publishing = async {
            let stats = publisher::publish(&nats, options).await;
            publishing_done.store(true, Ordering::Relaxed);
            stats
        };
        let receiving = async {
            let ending = fleet
                .wait_complete(deadline, options.stall_timeout, || {
                    publishing_done.load(Ordering::Relaxed)
                })
                .await;
            (ending, CpuMark::now(), ServerMark::now(options.server_pid))
        };
        let (published, (ending, measure_end, server_end)) = tokio::join!(publishing, receiving);
        (published?, ending, (measure_end, server_end))
    } else {
        let marks = (CpuMark::now(), ServerMark::now(options.server_pid));
        (PublishStats::default(), Ending::TimedOut, marks)
    };
    let (measure_end, server_end) = measure_end;
    let result = fleet.finish().await;
    let loader = loader_cpu(&run_start, &measure_start, &measure_end);
    let mut report = Report::new(options, &result, &[loader]);
    report.add_delivery(&result, &published, ending);
    report.add_server_window(&server_start, &server_end);
    Ok(report)
}

async fn run_idle_scenario(options: &Options) -> Result<Report, Error> {
    options.validate()?;
    let run_start = CpuMark::now();
    let deadline = Instant::now() + options.timeout;
    let pid = options.server_pid;
    let rss_before_kib = pid.and_then(|pid| procfs::rss_kib(Some(pid)));
    let fleet = Fleet::start(options, true).await?;
    let all_set_up = fleet.wait_connected(deadline).await;
    let connected = fleet.connected();
    info!(
        connected,
        failed = fleet.failed(),
        "holding idle connections"
    );
    tokio::time::sleep(options.settle.min(remaining(deadline))).await;
    let rss_connected_kib = pid.and_then(|pid| procfs::rss_kib(Some(pid)));
    let server_cpu_start = pid.and_then(|pid| procfs::cpu_seconds(Some(pid)));
    let server_precise_start = pid.and_then(|pid| procfs::cpu_seconds_precise(Some(pid)));
    let server_start = ServerMark::now(pid);
    let measure_start = CpuMark::now();
    let hold_started = Instant::now();
    let hold = options.duration.min(remaining(deadline));
    tokio::time::sleep(hold).await;
    let hold_s = hold_started.elapsed().as_secs_f64();
    let measure_end = CpuMark::now();
    let server_end = ServerMark::now(pid);
    let server_cpu_end = pid.and_then(|pid| procfs::cpu_seconds(Some(pid)));
    let server_precise_end = pid.and_then(|pid| procfs::cpu_seconds_precise(Some(pid)));
    let rss_end_kib = pid.and_then(|pid| procfs::rss_kib(Some(pid)));
    let timed_out = !all_set_up || hold < options.duration;
    let result = fleet.finish().await;

    let difference = |start: Option<f64>, end: Option<f64>| Some((end? - start?).max(0.0));
    let server_cpu_s = difference(server_cpu_start, server_cpu_end);
    let server_cpu_precise_s = difference(server_precise_start, server_precise_end);
    let per_connection = |total: f64| total / connected.max(1) as f64;
    let idle = IdleFigures {
        server_pid: pid,
        hold_s: round_to(hold_s, 3),
        rss_before_kib,
        rss_connected_kib,
        rss_end_kib,
        rss_per_connection_kib: match (rss_before_kib, rss_connected_kib) {
            (Some(before), Some(after)) => {
                Some(round_to(per_connection(after as f64 - before as f64), 3))
            }
            _ => None,
        },
        server_cpu_s: server_cpu_s.map(|cpu_s| round_to(cpu_s, 3)),
        server_cpu_precise_s: server_cpu_precise_s.map(|cpu_s| round_to(cpu_s, 6)),
        server_cpu_us_per_connection_per_s: server_cpu_precise_s
            .or(server_cpu_s)
            .map(|cpu_s| round_to(per_connection(cpu_s * 1e6) / hold_s.max(f64::EPSILON), 4)),
    };
    let loader = loader_cpu(&run_start, &measure_start, &measure_end);
    let mut report = Report::new(options, &result, &[loader]);
    report.idle = Some(idle);
    report.add_server_window(&server_start, &server_end);
    report.duration_s = round_to(hold_s, 3);
    report.timed_out = timed_out;
    report.ending = if timed_out { "timed_out" } else { "held" }.to_owned();
    report.ok = report.ok && !timed_out;
    Ok(report)
}

async fn run_connect_rate_scenario(options: &Options) -> Result<Report, Error> {
    options.validate()?;
    let run_start = CpuMark::now();
    let deadline = Instant::now() + options.timeout;
    let fleet = Fleet::start(options, false).await?;
    // The fleet signs every token before it starts connecting, so this mark is close to the
    // first attempt.
    let server_start = ServerMark::now(options.server_pid);
    let measure_start = CpuMark::now();
    let all_set_up = fleet.wait_connected(deadline).await;
    let measure_end = CpuMark::now();
    let server_end = ServerMark::now(options.server_pid);
    info!(
        connected = fleet.connected(),
        failed = fleet.failed(),
        "connections made, closing"
    );
    let result = fleet.finish().await;
    let loader = loader_cpu(&run_start, &measure_start, &measure_end);
    let mut report = Report::new(options, &result, &[loader]);
    report.add_connect_rate(&result, !all_set_up);
    report.add_server_window(&server_start, &server_end);
    Ok(report)
}

pub(crate) fn loader_cpu(
    run_start: &CpuMark,
    measure_start: &CpuMark,
    measure_end: &CpuMark,
) -> LoaderCpu {
    let (cpu_s, wall_s) = run_start.until(&CpuMark::now());
    let (measure_cpu_s, measure_wall_s) = measure_start.until(measure_end);
    LoaderCpu {
        peak_rss_kib: procfs::peak_rss_kib(None).unwrap_or(0),
        cpu_s,
        wall_s,
        measure_cpu_s,
        measure_wall_s,
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

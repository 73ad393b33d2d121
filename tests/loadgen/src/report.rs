//! The figures of a run: one JSON object on stdout, a few lines for people on stderr.

use serde::{Deserialize, Serialize};

use crate::fleet::{Ending, FleetResult};
use crate::histogram::HistogramData;
use crate::options::Options;
use crate::procfs::ServerMark;
use crate::publisher::PublishStats;

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencySummary {
    fn from_histogram(data: &HistogramData) -> Self {
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        LatencySummary {
            count: data.count,
            p50_us: us(data.quantile_ns(0.50)),
            p90_us: us(data.quantile_ns(0.90)),
            p99_us: us(data.quantile_ns(0.99)),
            p999_us: us(data.quantile_ns(0.999)),
            max_us: us(data.max_ns),
            mean_us: (data.mean_ns() / 100.0).round() / 10.0,
        }
    }
}

/// CPU used by one loader process: over the whole run and over the measured window
/// (publishing to the last delivery, or the connection phase of connect-rate).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct LoaderCpu {
    pub(crate) peak_rss_kib: u64,
    pub(crate) cpu_s: f64,
    pub(crate) wall_s: f64,
    pub(crate) measure_cpu_s: f64,
    pub(crate) measure_wall_s: f64,
}

/// The server figures of the idle scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleFigures {
    /// The sampled server process.
    pub server_pid: Option<u32>,
    /// How long the connections were held while the server's CPU was measured.
    pub hold_s: f64,
    /// Server RSS before the first connection.
    pub rss_before_kib: Option<u64>,
    /// Server RSS once every connection was set up (after the settle time).
    pub rss_connected_kib: Option<u64>,
    /// Server RSS at the end of the hold.
    pub rss_end_kib: Option<u64>,
    /// (connected − before) / connections.
    pub rss_per_connection_kib: Option<f64>,
    /// Server CPU over the hold, from `/proc/<pid>/stat` (10 ms resolution).
    pub server_cpu_s: Option<f64>,
    /// Server CPU over the hold, summed over its threads' `schedstat` (ns resolution).
    pub server_cpu_precise_s: Option<f64>,
    /// Server CPU per connection per second of hold, in microseconds (precise figure).
    pub server_cpu_us_per_connection_per_s: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `fanout`, `rooms`, `idle` or `connect-rate`.
    pub scenario: String,
    /// `switchboard` or `nats-ws`.
    pub target: String,
    /// Loader processes whose connections are counted.
    pub processes: u64,
    /// Connections asked for (N).
    pub clients: u64,
    /// Connections that were set up.
    pub connected: u64,
    /// Connections that could not be set up.
    pub connect_failures: u64,
    /// Connections the server ended before the run did.
    pub disconnects: u64,
    /// Messages published (M).
    pub messages: u64,
    /// Publish rate asked for (R); 0 means as fast as possible.
    pub rate: f64,
    /// Target size of a delivered message.
    pub payload_bytes: u64,
    /// Rooms messages were spread over.
    pub rooms: u64,
    /// Deliveries owed to the connected subscribers.
    pub expected_deliveries: u64,
    /// Distinct benchmark messages received.
    pub deliveries: u64,
    /// Expected but never received (disconnected subscribers' share included).
    pub lost: u64,
    /// Received more than once.
    pub duplicates: u64,
    /// Received after a later one of the same room.
    pub out_of_order: u64,
    /// Benchmark messages with a sequence number outside the published range.
    pub invalid: u64,
    /// Non-benchmark messages received (heartbeats and the like).
    pub control_messages: u64,
    /// Mean size of a received benchmark message.
    pub avg_message_bytes: f64,
    /// First publish to last delivery.
    pub duration_s: f64,
    /// deliveries / duration.
    pub deliveries_per_s: f64,
    /// Publish → receive latency.
    pub latency: LatencySummary,
    /// Connection setup time (TCP, upgrade, authentication, subscription).
    pub handshake: LatencySummary,
    /// Connections set up per second, from the first attempt to the last success.
    pub connections_per_s: f64,
    /// Idle scenario: the server's memory and CPU.
    pub idle: Option<IdleFigures>,
    /// Loader CPU over the whole run, all processes.
    pub loader_cpu_s: f64,
    /// Loader CPU over the whole run as a share of one core.
    pub loader_cpu_percent: f64,
    /// Loader CPU in the measured window, all processes.
    pub loader_measure_cpu_s: f64,
    /// Loader CPU in the measured window as a share of one core, all processes together.
    pub loader_measure_cpu_percent: f64,
    /// The busiest loader process's share of one core in the measured window; near
    /// 100 × threads means the loader, not the server, set the pace.
    pub loader_busiest_process_cpu_percent: f64,
    /// The server process's (`--server-pid`) share of one core in the measured window.
    pub server_measure_cpu_percent: Option<f64>,
    /// Every core's busy share in the measured window (server core, loader core, …).
    pub core_busy_percent: Vec<f64>,
    /// Tokio worker threads per loader process.
    pub loader_threads: u64,
    /// Largest peak RSS of a loader process (`VmHWM`), to show its per-connection cost.
    pub loader_peak_rss_kib: u64,
    /// The machine's 1-minute load average at the end; well above the busy cores of the run
    /// means something else competed for the CPU and the figures are noisy.
    pub load_average_1m: f64,
    /// `complete`, `stalled`, `timed_out` or `connected`.
    pub ending: String,
    /// The run hit its timeout.
    pub timed_out: bool,
    /// A few connection errors, verbatim.
    pub error_samples: Vec<String>,
    /// Nothing was lost, duplicated, refused or cut off, and the run did not time out.
    pub ok: bool,
}

impl Report {
    /// Fills what every scenario reports from the merged connection figures.
    pub(crate) fn new(options: &Options, fleet: &FleetResult, loaders: &[LoaderCpu]) -> Self {
        let mut report = Report {
            scenario: options.scenario.as_str().to_owned(),
            target: options.target.as_str().to_owned(),
            processes: loaders.len() as u64,
            clients: fleet.clients,
            connected: fleet.connected,
            connect_failures: fleet.connect_failures,
            disconnects: fleet.disconnects,
            messages: options.messages,
            rate: options.rate,
            payload_bytes: options.payload_bytes as u64,
            rooms: options.publish_rooms().len() as u64,
            expected_deliveries: fleet.expected,
            deliveries: fleet.unique,
            lost: fleet.expected.saturating_sub(fleet.unique),
            duplicates: fleet.duplicates,
            out_of_order: fleet.out_of_order,
            invalid: fleet.invalid,
            control_messages: fleet.control_messages,
            avg_message_bytes: ratio(fleet.bytes as f64, fleet.latency.count as f64),
            latency: LatencySummary::from_histogram(&fleet.latency),
            handshake: LatencySummary::from_histogram(&fleet.handshake),
            loader_threads: options.threads as u64,
            error_samples: fleet.error_samples.clone(),
            ending: "connected".to_owned(),
            ..Report::default()
        };
        let wall = loaders.iter().map(|l| l.wall_s).fold(0.0, f64::max);
        let measure_wall = loaders.iter().map(|l| l.measure_wall_s).fold(0.0, f64::max);
        let cpu_s: f64 = loaders.iter().map(|l| l.cpu_s).sum();
        let measure_cpu_s: f64 = loaders.iter().map(|l| l.measure_cpu_s).sum();
        report.loader_cpu_s = round_to(cpu_s, 3);
        report.loader_cpu_percent = percent(cpu_s, wall);
        report.loader_measure_cpu_s = round_to(measure_cpu_s, 3);
        report.loader_measure_cpu_percent = percent(measure_cpu_s, measure_wall);
        report.loader_peak_rss_kib = loaders.iter().map(|l| l.peak_rss_kib).max().unwrap_or(0);
        report.load_average_1m = crate::procfs::load_average_1m().unwrap_or(0.0);
        report.loader_busiest_process_cpu_percent = loaders
            .iter()
            .map(|l| percent(l.measure_cpu_s, l.measure_wall_s))
            .fold(0.0, f64::max);
        report.settle_ok();
        report
    }

    /// Adds the server and core figures of the measured window.
    pub(crate) fn add_server_window(&mut self, start: &ServerMark, end: &ServerMark) {
        self.server_measure_cpu_percent = start.server_percent_until(end);
        self.core_busy_percent = start.core_busy_percent_until(end);
    }

    /// Adds the delivery figures of fanout and rooms.
    pub(crate) fn add_delivery(
        &mut self,
        fleet: &FleetResult,
        publish: &PublishStats,
        ending: Ending,
    ) {
        let end_ns = fleet.last_receive_ns.max(publish.last_send_ns);
        let duration_s = end_ns.saturating_sub(publish.first_send_ns) as f64 / 1e9;
        self.duration_s = round_to(duration_s, 6);
        self.deliveries_per_s = ratio(self.deliveries as f64, duration_s).round();
        self.ending = match ending {
            Ending::Complete => "complete",
            Ending::Stalled => "stalled",
            Ending::TimedOut => "timed_out",
        }
        .to_owned();
        self.timed_out = ending == Ending::TimedOut;
        self.settle_ok();
    }

    /// Adds the connection rate of connect-rate.
    pub(crate) fn add_connect_rate(&mut self, fleet: &FleetResult, timed_out: bool) {
        let span_s = fleet.last_connected_ns.saturating_sub(fleet.started_ns) as f64 / 1e9;
        self.duration_s = round_to(span_s, 6);
        self.connections_per_s = ratio(fleet.connected as f64, span_s).round();
        self.timed_out = timed_out;
        self.ending = if timed_out { "timed_out" } else { "connected" }.to_owned();
        self.settle_ok();
    }

    fn settle_ok(&mut self) {
        self.ok = self.lost == 0
            && self.duplicates == 0
            && self.invalid == 0
            && self.connect_failures == 0
            && self.disconnects == 0
            && !self.timed_out;
    }

    /// Returns a few human-readable lines.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "{} · {} · {} clients ({} connected, {} failed, {} disconnected) · {} process(es)",
            self.scenario,
            self.target,
            self.clients,
            self.connected,
            self.connect_failures,
            self.disconnects,
            self.processes
        )];
        if matches!(self.scenario.as_str(), "fanout" | "rooms") {
            let rate = if self.rate > 0.0 {
                format!("{}/s", self.rate)
            } else {
                "max rate".to_owned()
            };
            lines.push(format!(
                "{} messages @ {rate} over {} room(s), ~{:.0} B each · ending: {}",
                self.messages, self.rooms, self.avg_message_bytes, self.ending
            ));
            lines.push(format!(
                "deliveries {}/{} in {:.3} s = {:.0}/s · lost {} · duplicates {} · out of order {} · invalid {}",
                self.deliveries,
                self.expected_deliveries,
                self.duration_s,
                self.deliveries_per_s,
                self.lost,
                self.duplicates,
                self.out_of_order,
                self.invalid
            ));
            lines.push(format!("latency  {}", describe(&self.latency)));
        }
        if self.scenario == "connect-rate" {
            lines.push(format!(
                "{:.0} connections/s ({} in {:.3} s)",
                self.connections_per_s, self.connected, self.duration_s
            ));
        }
        lines.push(format!("handshake {}", describe(&self.handshake)));
        if let Some(idle) = &self.idle {
            lines.push(format!(
                "server pid {:?}: RSS {:?} → {:?} → {:?} KiB = {:.2} KiB/conn · CPU {:.4} s over {:.1} s = {:.3} µs/conn/s",
                idle.server_pid,
                idle.rss_before_kib,
                idle.rss_connected_kib,
                idle.rss_end_kib,
                idle.rss_per_connection_kib.unwrap_or(f64::NAN),
                idle.server_cpu_precise_s.or(idle.server_cpu_s).unwrap_or(f64::NAN),
                idle.hold_s,
                idle.server_cpu_us_per_connection_per_s.unwrap_or(f64::NAN)
            ));
            if idle.rss_per_connection_kib.is_some_and(|kib| kib < 0.0) {
                lines.push(
                    "note: the server's RSS shrank; measure idle memory against a freshly started server".to_owned(),
                );
            }
        }
        lines.push(format!(
            "loader cpu {:.2} s ({:.0} % of a core) · measured window {:.2} s ({:.0} %, busiest process {:.0} %) · {} thread(s)",
            self.loader_cpu_s,
            self.loader_cpu_percent,
            self.loader_measure_cpu_s,
            self.loader_measure_cpu_percent,
            self.loader_busiest_process_cpu_percent,
            self.loader_threads
        ));
        if !self.core_busy_percent.is_empty() || self.server_measure_cpu_percent.is_some() {
            let cores: Vec<String> = self
                .core_busy_percent
                .iter()
                .enumerate()
                .map(|(core, busy)| format!("cpu{core} {busy:.0} %"))
                .collect();
            lines.push(format!(
                "measured window: server process {} · cores busy: {}",
                self.server_measure_cpu_percent.map_or_else(
                    || "-".to_owned(),
                    |percent| format!("{percent:.0} % of a core")
                ),
                cores.join(", ")
            ));
        }
        lines.push(format!(
            "loader peak RSS {} KiB · machine load average {:.2}",
            self.loader_peak_rss_kib, self.load_average_1m
        ));
        for sample in &self.error_samples {
            lines.push(format!("error: {sample}"));
        }
        lines.push(if self.ok { "OK" } else { "FAILED" }.to_owned());
        lines.join("\n")
    }
}

fn describe(latency: &LatencySummary) -> String {
    format!(
        "n {} · p50 {:.1} µs · p90 {:.1} µs · p99 {:.1} µs · p99.9 {:.1} µs · max {:.1} µs · mean {:.1} µs",
        latency.count,
        latency.p50_us,
        latency.p90_us,
        latency.p99_us,
        latency.p999_us,
        latency.max_us,
        latency.mean_us
    )
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

fn percent(cpu_s: f64, wall_s: f64) -> f64 {
    round_to(ratio(cpu_s, wall_s) * 100.0, 1)
}

/// Rounds to `decimals` places, so the JSON shows no float noise (`6.199999999999999`).
pub(crate) fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

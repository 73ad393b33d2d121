//! Process CPU time and memory from `/proc`: the loader's own use and the server's.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Clock ticks per second of `/proc/<pid>/stat` times; read once from `getconf CLK_TCK`.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            // Linux has used 100 on every common architecture for decades.
            .unwrap_or(100.0)
    })
}

fn proc_dir(pid: Option<u32>) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}")),
        None => PathBuf::from("/proc/self"),
    }
}

/// Returns user + system CPU seconds of process `pid` (this process when `None`) from
/// `/proc/<pid>/stat`; 10 ms resolution, includes threads that have exited.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_dir(pid).join("stat")).ok()?;
    // The command name may contain spaces; the fields after it are space-separated.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); field 3 (state) is index 0 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_second())
}

/// Returns the CPU seconds of the live threads of `pid` summed from
/// `/proc/<pid>/task/*/schedstat`: nanosecond resolution, but time of threads that exited is
/// missing. Used for small differences such as idle CPU, next to [`cpu_seconds`].
pub fn cpu_seconds_precise(pid: Option<u32>) -> Option<f64> {
    let tasks = std::fs::read_dir(proc_dir(pid).join("task")).ok()?;
    let mut total_ns: u64 = 0;
    for task in tasks.flatten() {
        let Ok(schedstat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let on_cpu_ns: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
        total_ns += on_cpu_ns;
    }
    Some(total_ns as f64 / 1e9)
}

/// Returns the resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(proc_dir(pid).join("status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Returns the peak resident set size of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Returns the machine's 1-minute load average (`/proc/loadavg`).
pub fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A CPU reading of this process at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    cpu_seconds: f64,
    at: std::time::Instant,
}

impl CpuMark {
    /// Reads this process's CPU time now.
    pub(crate) fn now() -> Self {
        CpuMark {
            cpu_seconds: cpu_seconds(None).unwrap_or(0.0),
            at: std::time::Instant::now(),
        }
    }

    /// Returns (CPU seconds, wall seconds) from `self` to `later`.
    pub(crate) fn until(&self, later: &CpuMark) -> (f64, f64) {
        (
            (later.cpu_seconds - self.cpu_seconds).max(0.0),
            later.at.duration_since(self.at).as_secs_f64(),
        )
    }
}

/// Busy and total jiffies of every core, from the `cpuN` lines of `/proc/stat`.
fn core_jiffies() -> Vec<(u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|line| {
            let times: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            let total: u64 = times.iter().sum();
            // idle and iowait (fields 4 and 5 of proc(5)) are the only non-busy times.
            let idle = times.get(3).copied().unwrap_or(0) + times.get(4).copied().unwrap_or(0);
            (total.saturating_sub(idle), total)
        })
        .collect()
}

/// The server process's CPU time and every core's busy time at one moment: the measured
/// window's server figures (is the server, or its core, saturated?).
#[derive(Debug, Clone)]
pub(crate) struct ServerMark {
    server_cpu_seconds: Option<f64>,
    cores: Vec<(u64, u64)>,
    at: std::time::Instant,
}

impl ServerMark {
    /// Reads the server `pid` (if any) and the cores now.
    pub(crate) fn now(pid: Option<u32>) -> Self {
        ServerMark {
            server_cpu_seconds: pid.and_then(|pid| cpu_seconds_precise(Some(pid))),
            cores: core_jiffies(),
            at: std::time::Instant::now(),
        }
    }

    /// Returns the server's share of one core from `self` to `later`, in percent.
    pub(crate) fn server_percent_until(&self, later: &ServerMark) -> Option<f64> {
        let wall_s = later.at.duration_since(self.at).as_secs_f64();
        let cpu_s = later.server_cpu_seconds? - self.server_cpu_seconds?;
        (wall_s > 0.0).then(|| (cpu_s.max(0.0) / wall_s * 1000.0).round() / 10.0)
    }

    /// Returns each core's busy share from `self` to `later`, in percent.
    pub(crate) fn core_busy_percent_until(&self, later: &ServerMark) -> Vec<f64> {
        self.cores
            .iter()
            .zip(&later.cores)
            .map(|((busy_a, total_a), (busy_b, total_b))| {
                let total = total_b.saturating_sub(*total_a);
                let busy = busy_b.saturating_sub(*busy_a);
                if total == 0 {
                    0.0
                } else {
                    (busy as f64 / total as f64 * 1000.0).round() / 10.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures_are_readable() {
        assert!(cpu_seconds(None).is_some());
        assert!(cpu_seconds_precise(None).is_some_and(|seconds| seconds > 0.0));
        assert!(rss_kib(None).is_some_and(|kib| kib > 0));
        assert!(peak_rss_kib(None).is_some_and(|kib| kib > 0));
        assert!(rss_kib(Some(u32::MAX)).is_none());
        assert!(load_average_1m().is_some());
        let mark = ServerMark::now(Some(std::process::id()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = ServerMark::now(Some(std::process::id()));
        assert!(mark.server_percent_until(&later).is_some());
        assert_eq!(
            mark.core_busy_percent_until(&later).len(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
}

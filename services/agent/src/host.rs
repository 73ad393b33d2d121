//! Real host figures from `/proc`: CPU use from `/proc/stat` deltas, memory from
//! `/proc/meminfo`, load from `/proc/loadavg`, uptime from `/proc/uptime`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Cumulative CPU time counters of the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Ticks spent idle or waiting for I/O.
    pub idle: u64,
    /// All ticks (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
}

impl CpuTimes {
    /// Returns the busy share between `earlier` and `self`, in percent (0 when no time passed).
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let idle = self.idle.saturating_sub(earlier.idle).min(total);
        (total - idle) as f64 * 100.0 / total as f64
    }
}

/// Reads the aggregate `cpu` line and counts the `cpuN` lines of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<(CpuTimes, usize)> {
    let mut times = None;
    let mut cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal; guest time is already in user.
                let values: Vec<u64> = fields.take(8).filter_map(|v| v.parse().ok()).collect();
                if values.len() < 4 {
                    return None;
                }
                let idle = values[3] + values.get(4).copied().unwrap_or(0);
                times = Some(CpuTimes {
                    idle,
                    total: values.iter().sum(),
                });
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    times.map(|times| (times, cpus.max(1)))
}

/// Memory figures from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable` (what can be allocated without swapping).
    pub available: u64,
}

/// Reads `MemTotal` and `MemAvailable` (kB in the file).
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some(Memory {
        total: field("MemTotal")?,
        available: field("MemAvailable")?,
    })
}

/// Reads the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Reads the uptime in seconds (first field of `/proc/uptime`).
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Turns a host name into a valid node id: characters outside `A-Z a-z 0-9 _ -` become `-`,
/// at most 64 bytes.
pub fn sanitize_node_id(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// Samples host figures; keeps the previous CPU counters for the next delta.
#[derive(Debug)]
pub struct Sampler {
    proc_root: PathBuf,
    previous_cpu: CpuTimes,
}

impl Sampler {
    /// Samples below `proc_root` (`/proc` on a real host). The first sample's CPU share is
    /// the average since boot, as the counters start from zero.
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
            previous_cpu: CpuTimes::default(),
        }
    }

    /// Reads every figure (blocking file I/O: call it from `spawn_blocking`). Figures whose
    /// file is missing or unreadable are `null`, so a partial `/proc` still reports the rest.
    pub fn sample(&mut self) -> Value {
        let read = |name: &str| std::fs::read_to_string(self.proc_root.join(name)).ok();
        let stat = read("stat").as_deref().and_then(parse_stat);
        let memory = read("meminfo").as_deref().and_then(parse_meminfo);
        let load = read("loadavg").as_deref().and_then(parse_loadavg);
        let uptime = read("uptime").as_deref().and_then(parse_uptime);
        let (cpu_percent, cpu_count) = match stat {
            Some((times, count)) => {
                let percent = times.busy_percent_since(&self.previous_cpu);
                self.previous_cpu = times;
                (Some(round2(percent)), Some(count))
            }
            None => (None, None),
        };
        let used = memory.map(|m| m.total.saturating_sub(m.available));
        let memory_used_percent = memory
            .filter(|m| m.total > 0)
            .map(|m| round2(m.total.saturating_sub(m.available) as f64 * 100.0 / m.total as f64));
        json!({
            "cpu_percent": cpu_percent,
            "cpu_count": cpu_count,
            "memory_total_bytes": memory.map(|m| m.total),
            "memory_available_bytes": memory.map(|m| m.available),
            "memory_used_bytes": used,
            "memory_used_percent": memory_used_percent,
            "load_1m": load.map(|l| l[0]),
            "load_5m": load.map(|l| l[1]),
            "load_15m": load.map(|l| l[2]),
            "uptime_seconds": uptime,
            "sampled_at": protocol::time::now_rfc3339(),
        })
    }

    /// Returns the directory sampled.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }
}

/// Reads the host name from `proc_root/sys/kernel/hostname` as a node id.
pub fn hostname_node_id(proc_root: &Path) -> Option<String> {
    let name = std::fs::read_to_string(proc_root.join("sys/kernel/hostname")).ok()?;
    let node_id = sanitize_node_id(&name);
    (!node_id.is_empty()).then_some(node_id)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2\n";

    #[test]
    fn cpu_share_comes_from_counter_deltas() {
        let (before, cpus) = parse_stat(STAT).unwrap();
        assert_eq!((before.idle, before.total, cpus), (850, 1000, 2));
        let after = CpuTimes {
            idle: before.idle + 75,
            total: before.total + 100,
        };
        assert_eq!(after.busy_percent_since(&before), 25.0);
        assert_eq!(after.busy_percent_since(&after), 0.0);
    }

    #[test]
    fn meminfo_loadavg_and_uptime_parse() {
        let meminfo = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:    4000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some(Memory {
                total: 16000 * 1024,
                available: 4000 * 1024
            })
        );
        assert_eq!(
            parse_loadavg("0.52 0.40 0.33 2/345 6789\n"),
            Some([0.52, 0.40, 0.33])
        );
        assert_eq!(parse_uptime("12345.67 2345.00\n"), Some(12345.67));
        assert_eq!(parse_loadavg("garbage"), None);
    }

    #[test]
    fn a_fake_proc_tree_is_sampled_and_missing_files_are_null() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), STAT).unwrap();
        std::fs::write(dir.path().join("loadavg"), "1.5 1.0 0.5 1/1 1\n").unwrap();
        let mut sampler = Sampler::new(dir.path());
        let sample = sampler.sample();
        assert_eq!(sample["cpu_percent"], 15.0);
        assert_eq!(sample["cpu_count"], 2);
        assert_eq!(sample["load_1m"], 1.5);
        assert!(sample["memory_total_bytes"].is_null());
        assert!(sample["uptime_seconds"].is_null());
    }

    #[test]
    fn the_real_proc_gives_plausible_figures() {
        let mut sampler = Sampler::new("/proc");
        sampler.sample();
        let sample = sampler.sample();
        let cpu = sample["cpu_percent"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu));
        assert!(sample["memory_total_bytes"].as_u64().unwrap() > 0);
        assert!(sample["uptime_seconds"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn host_names_become_node_ids() {
        assert_eq!(sanitize_node_id("web01.example.com\n"), "web01-example-com");
        assert_eq!(sanitize_node_id(&"x".repeat(80)).len(), 64);
    }
}

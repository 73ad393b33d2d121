//! Real host figures from `/proc`: CPU use from `/proc/stat` deltas, memory from
//! `/proc/meminfo`, load from `/proc/loadavg`, uptime from `/proc/uptime`; disk use of the
//! watched mounts from `statvfs(3)`.

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

/// Disk use of the file system holding one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUse {
    /// Bytes in use (`blocks - free`).
    pub used: u64,
    /// Bytes still available to ordinary users (`bavail`; root's reserve excluded).
    pub available: u64,
    /// Size of the file system (`blocks`).
    pub total: u64,
}

impl DiskUse {
    /// Builds the figures from `statvfs` fields (counts of `fragment_size`-byte blocks).
    pub fn from_blocks(fragment_size: u64, blocks: u64, free: u64, available: u64) -> Self {
        let bytes = |count: u64| count.saturating_mul(fragment_size);
        Self {
            used: bytes(blocks.saturating_sub(free)),
            available: bytes(available),
            total: bytes(blocks),
        }
    }

    /// Used share in percent as `df` computes it: `used / (used + available)`, so the
    /// blocks reserved for root count neither way (0 for an empty file system).
    pub fn used_percent(&self) -> f64 {
        let usable = self.used.saturating_add(self.available);
        if usable == 0 {
            return 0.0;
        }
        round2(self.used as f64 * 100.0 / usable as f64)
    }
}

/// Measures the file system holding `path` with `statvfs(3)`.
///
/// # Errors
/// The system call's error (the path does not exist, no permission, …).
pub fn disk_use(path: &Path) -> std::io::Result<DiskUse> {
    let stat = rustix::fs::statvfs(path)?;
    // f_frsize is the unit of the block counts; some file systems leave it 0 and mean f_bsize.
    let fragment_size = if stat.f_frsize > 0 {
        stat.f_frsize
    } else {
        stat.f_bsize
    };
    Ok(DiskUse::from_blocks(
        fragment_size,
        stat.f_blocks,
        stat.f_bfree,
        stat.f_bavail,
    ))
}

/// Samples host figures; keeps the previous CPU counters for the next delta.
#[derive(Debug)]
pub struct Sampler {
    proc_root: PathBuf,
    previous_cpu: CpuTimes,
    storage_mounts: Vec<PathBuf>,
}

impl Sampler {
    /// Samples below `proc_root` (`/proc` on a real host), with no storage. The first
    /// sample's CPU share is the average since boot, as the counters start from zero.
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
            previous_cpu: CpuTimes::default(),
            storage_mounts: Vec::new(),
        }
    }

    /// Also reports the disk use of the file systems holding `mounts`.
    pub fn with_storage_mounts(mut self, mounts: Vec<PathBuf>) -> Self {
        self.storage_mounts = mounts;
        self
    }

    /// Measures every watched mount: `(storage list, fullest used_percent)`. A mount that
    /// cannot be measured is left out (and logged), so one bad path does not hide the rest.
    fn sample_storage(&self) -> (Vec<Value>, Option<f64>) {
        let mut storage = Vec::with_capacity(self.storage_mounts.len());
        let mut fullest: Option<f64> = None;
        for mount in &self.storage_mounts {
            match disk_use(mount) {
                Ok(usage) => {
                    let percent = usage.used_percent();
                    fullest = Some(fullest.map_or(percent, |top| top.max(percent)));
                    storage.push(json!({
                        "mount": mount.display().to_string(),
                        "used_bytes": usage.used,
                        "total_bytes": usage.total,
                        "used_percent": percent,
                    }));
                }
                Err(error) => {
                    tracing::debug!(mount = %mount.display(), error = %error, "mount not measured");
                }
            }
        }
        (storage, fullest)
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
        let (storage, disk_used_percent) = self.sample_storage();
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
            "storage": storage,
            "disk_used_percent": disk_used_percent,
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
    fn disk_use_counts_like_df_and_the_fullest_watched_mount_is_the_disk_figure() {
        // 1000 blocks of 4 KiB, 300 free of which 250 available to users: df shows
        // 700 / (700 + 250) = 73.68 %.
        let usage = DiskUse::from_blocks(4096, 1000, 300, 250);
        assert_eq!(usage.used, 700 * 4096);
        assert_eq!(usage.total, 1000 * 4096);
        assert_eq!(usage.used_percent(), 73.68);
        assert_eq!(DiskUse::from_blocks(4096, 0, 0, 0).used_percent(), 0.0);

        let dir = tempfile::tempdir().unwrap();
        let mut sampler = Sampler::new(dir.path()).with_storage_mounts(vec![
            PathBuf::from("/"),
            dir.path().to_path_buf(),
            PathBuf::from("/no/such/mount"),
        ]);
        let sample = sampler.sample();
        let storage = sample["storage"].as_array().unwrap();
        assert_eq!(storage.len(), 2, "{storage:?}");
        assert_eq!(storage[0]["mount"], "/");
        let root = disk_use(Path::new("/")).unwrap();
        assert_eq!(storage[0]["total_bytes"], root.total);
        assert!(root.total > 0 && root.used <= root.total);
        let fullest = storage
            .iter()
            .map(|entry| entry["used_percent"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(sample["disk_used_percent"], fullest);
        assert!(disk_use(Path::new("/no/such/mount")).is_err());
    }

    #[test]
    fn without_watched_mounts_there_is_no_disk_figure() {
        let dir = tempfile::tempdir().unwrap();
        let sample = Sampler::new(dir.path()).sample();
        assert_eq!(sample["storage"], json!([]));
        assert!(sample["disk_used_percent"].is_null());
    }

    #[test]
    fn host_names_become_node_ids() {
        assert_eq!(sanitize_node_id("web01.example.com\n"), "web01-example-com");
        assert_eq!(sanitize_node_id(&"x".repeat(80)).len(), 64);
    }
}

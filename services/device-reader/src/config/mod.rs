//! The device reader's configuration: shared sections from `settings` plus `[device_reader]`
//! with its `[[device_reader.devices]]`.

mod device;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use settings::{BusConfig, StoreConfig, TelemetryConfig};

pub use device::{DeviceConfig, DriverKind};

/// Shortest reading interval: shorter ones would flood rooms, NATS and the store's tick claims.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// Longest reading interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Default SCPI port (raw socket SCPI, IEC 61158 / LXI).
pub const DEFAULT_SCPI_PORT: u16 = 5025;

/// Everything `switchboard-device-reader` reads from defaults, `--config FILE` and
/// `SWITCHBOARD__*` variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The device reader itself.
    pub device_reader: DeviceReaderConfig,
    /// The message bus (NATS, or the embedded in-memory bus when `nats_url` is unset).
    pub bus: BusConfig,
    /// The store holding the per-device leases (Redis, or memory when `redis_url` is unset).
    pub store: StoreConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
}

/// The `[device_reader]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceReaderConfig {
    /// Address of the HTTP listener: the management API (`/v1/devices`), `/metrics`,
    /// `/healthz` and `/readyz`. Use `0.0.0.0:8095` in containers.
    pub listen: SocketAddr,
    /// This replica's name as a lease holder; a random `dr-xxxxxxxx` when unset. Must be
    /// unique per running process (a pod name is fine).
    pub instance_id: Option<String>,
    /// Devices read from the start. More can be added at run time.
    pub devices: Vec<DeviceConfig>,
    /// Consecutive failed readings after which a device is reported `unavailable`
    /// (`recoverable: false`) and retried with backoff instead of at every interval.
    pub failures_before_unavailable: u32,
    /// First wait before retrying an unavailable device; doubles per failed retry.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest wait between retries of an unavailable device.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long a device's lease outlives its last renewal. Unset: 3 × the renew interval.
    /// A dead replica's devices are taken over within `lease_ttl + lease_renew_interval`;
    /// the defaults keep that at two reading intervals.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Option<Duration>,
    /// How often the holder renews a device's lease and a standby tries to take it. Unset:
    /// half the device's interval, between 25 ms and 5 s. At most half of `lease_ttl`.
    #[serde(with = "humantime_serde")]
    pub lease_renew_interval: Option<Duration>,
    /// Send each reading's channel powers as metric samples (`device.ch1_power`, …) to
    /// `sb.ingest.metric` for history, statistics and anomaly alerts.
    pub emit_metric_samples: bool,
    /// Most devices one replica keeps; further additions are refused.
    pub max_devices: usize,
    /// Upper bound on the drain after SIGTERM (stop readers, release leases, flush the bus).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for DeviceReaderConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8095)),
            instance_id: None,
            devices: Vec::new(),
            failures_before_unavailable: 5,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            lease_ttl: None,
            lease_renew_interval: None,
            emit_metric_samples: true,
            max_devices: 1000,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A device's lease timing: how long a lease lives and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// The lease's TTL.
    pub ttl: Duration,
    /// Renewal (holder) and acquisition (standby) pace.
    pub renew: Duration,
}

impl DeviceReaderConfig {
    /// The lease timing of a device read every `interval`: the configured values, or
    /// `renew = interval / 2` (25 ms to 5 s) and `ttl = 3 × renew`, so a dead holder is
    /// replaced within `ttl + renew = 2 × interval`.
    pub fn lease_timing(&self, interval: Duration) -> LeaseTiming {
        let renew = self.lease_renew_interval.unwrap_or_else(|| {
            (interval / 2).clamp(Duration::from_millis(25), Duration::from_secs(5))
        });
        let ttl = self.lease_ttl.unwrap_or(renew * 3);
        LeaseTiming { ttl, renew }
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if self.failures_before_unavailable == 0 {
            problems.push("device_reader.failures_before_unavailable must be at least 1".into());
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            problems.push("device_reader.retry_min must be positive and at most retry_max".into());
        }
        if self.shutdown_grace.is_zero() {
            problems.push("device_reader.shutdown_grace must be greater than zero".into());
        }
        if self.max_devices == 0 {
            problems.push("device_reader.max_devices must be at least 1".into());
        }
        if self
            .instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty() || id.contains(char::is_whitespace))
        {
            problems.push("device_reader.instance_id must be non-empty without whitespace".into());
        }
        let timing = self.lease_timing(MIN_INTERVAL);
        if self
            .lease_renew_interval
            .is_some_and(|renew| renew.is_zero())
            || (self.lease_ttl.is_some() && timing.renew * 2 > timing.ttl)
        {
            problems.push(
                "device_reader.lease_renew_interval must be positive and at most half of lease_ttl"
                    .into(),
            );
        }
        if self.devices.len() > self.max_devices {
            problems.push("device_reader.devices has more than max_devices entries".into());
        }
        let mut seen = HashSet::new();
        for device in &self.devices {
            for problem in device.check().err().unwrap_or_default() {
                problems.push(format!("device_reader.devices: {problem}"));
            }
            if !seen.insert(device.id.as_str()) {
                problems.push(format!(
                    "device_reader.devices: id {:?} appears twice",
                    device.id
                ));
            }
        }
    }
}

impl Config {
    /// Checks the configuration and lists every problem found.
    ///
    /// # Errors
    /// Returns all problems at once, one sentence each.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.bus.validate(&mut problems);
        self.store.validate(&mut problems);
        self.telemetry.validate(&mut problems);
        self.device_reader.validate(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl service::ServiceConfig for Config {
    /// [`Config::validate`], plus the NATS and Redis URLs the `switchboard-device-reader`
    /// process needs.
    fn validate_for_start(&self) -> Result<(), Vec<String>> {
        service::with_cluster_backends(
            self.validate(),
            "switchboard-device-reader",
            &self.bus,
            &self.store,
        )
    }

    fn telemetry(&self) -> &settings::TelemetryConfig {
        &self.telemetry
    }
}

#[cfg(test)]
mod tests;

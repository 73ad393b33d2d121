//! The device reader's configuration: shared sections from `settings` plus `[device_reader]`
//! with its `[[device_reader.devices]]`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use settings::{BusConfig, StoreConfig, TelemetryConfig};

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

/// Which driver reads a device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriverKind {
    /// Simulated readings (seed 003's `MOCK_MODE`), with fault injection.
    #[default]
    #[serde(rename = "mock")]
    Mock,
    /// A real instrument speaking SCPI over TCP.
    #[serde(rename = "scpi-tcp")]
    ScpiTcp,
}

impl DriverKind {
    /// The configuration name (`mock`, `scpi-tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Mock => "mock",
            DriverKind::ScpiTcp => "scpi-tcp",
        }
    }
}

/// One instrument, as `[[device_reader.devices]]` in the TOML file (and the body of
/// `POST /v1/devices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The device's id: one segment of `[A-Za-z0-9_-]`, at most 64 bytes. Its rooms are
    /// `devices.<id>.m<module>`.
    pub id: String,
    /// `mock` or `scpi-tcp`.
    #[serde(default)]
    pub driver: DriverKind,
    /// The modules (slots) read each interval, each with four channels.
    #[serde(default = "default_modules")]
    pub modules: Vec<u16>,
    /// Reading period, 50 ms to 1 h.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Wavelength reported with readings when the driver does not query it, in nm.
    #[serde(default = "default_wavelength")]
    pub wavelength_nm: f64,
    /// Unit of the channel powers (`dBm`, `mW`, `W`).
    #[serde(default = "default_unit")]
    pub unit: String,
    /// Most time one query (scpi-tcp: also the connect) may take before it counts as a failure.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Whether the device is read from the start; `false` registers it stopped.
    #[serde(default = "default_true")]
    pub active: bool,
    /// `scpi-tcp`: the instrument's `host:port` (port 5025 when omitted).
    #[serde(default)]
    pub address: Option<String>,
    /// `scpi-tcp`: query of a module's wavelength; `{module}` and `{channel}` are replaced.
    /// Empty: no query, `wavelength_nm` is reported.
    #[serde(default = "default_wavelength_query")]
    pub wavelength_query: String,
    /// `scpi-tcp`: unit of the wavelength reply, `m` (Keysight/Agilent 816x) or `nm`.
    #[serde(default = "default_wavelength_reply_unit")]
    pub wavelength_reply_unit: String,
    /// `scpi-tcp`: query of one channel's power; `{module}` and `{channel}` are replaced.
    #[serde(default = "default_power_query")]
    pub power_query: String,
    /// `scpi-tcp`: shortest wait before reconnecting after a failed connect; doubles up to
    /// `reconnect_max`.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// `scpi-tcp`: longest wait between reconnect attempts.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// `mock`: the channels' mean level (channel n is `n - 1` dB below it… see the mock).
    #[serde(default = "default_level")]
    pub level_dbm: f64,
    /// `mock`: peak-to-peak noise of each reading, in dB.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// `mock`: largest slow drift of the level, in dB (a random walk bounded to ± this).
    #[serde(default = "default_drift")]
    pub drift: f64,
    /// `mock`: probability (0 to 1) that a module read fails with "Hardware temporarily
    /// unavailable". Switchable at run time (`POST /v1/devices/{id}/faults`).
    #[serde(default)]
    pub fault_rate: f64,
    /// `mock`: the instrument hangs (every read times out). Switchable at run time.
    #[serde(default)]
    pub stuck: bool,
    /// `mock`: the connection is lost (every read fails). Switchable at run time.
    #[serde(default)]
    pub disconnected: bool,
}

fn default_modules() -> Vec<u16> {
    vec![1]
}
fn default_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_wavelength() -> f64 {
    1310.0
}
fn default_unit() -> String {
    "dBm".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_true() -> bool {
    true
}
fn default_wavelength_query() -> String {
    "SENS{module}:CHAN1:POW:WAV?".to_owned()
}
fn default_wavelength_reply_unit() -> String {
    "m".to_owned()
}
fn default_power_query() -> String {
    "READ{module}:CHAN{channel}:POW?".to_owned()
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(10)
}
fn default_level() -> f64 {
    -20.0
}
fn default_noise() -> f64 {
    0.2
}
fn default_drift() -> f64 {
    1.0
}

impl DeviceConfig {
    /// A mock device with every default, for tests and the embedded demo.
    pub fn mock(id: &str, modules: Vec<u16>, interval: Duration) -> DeviceConfig {
        DeviceConfig {
            id: id.to_owned(),
            driver: DriverKind::Mock,
            modules,
            interval,
            wavelength_nm: default_wavelength(),
            unit: default_unit(),
            timeout: default_timeout(),
            active: true,
            address: None,
            wavelength_query: default_wavelength_query(),
            wavelength_reply_unit: default_wavelength_reply_unit(),
            power_query: default_power_query(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            level_dbm: default_level(),
            noise: default_noise(),
            drift: default_drift(),
            fault_rate: 0.0,
            stuck: false,
            disconnected: false,
        }
    }

    /// An `scpi-tcp` device at `address` with every default.
    pub fn scpi(id: &str, address: &str, modules: Vec<u16>, interval: Duration) -> DeviceConfig {
        DeviceConfig {
            driver: DriverKind::ScpiTcp,
            address: Some(address.to_owned()),
            ..DeviceConfig::mock(id, modules, interval)
        }
    }

    /// The address to connect to, with the default port added when none is given.
    pub fn socket_address(&self) -> Option<String> {
        let address = self.address.as_deref()?.trim();
        if address.is_empty() {
            return None;
        }
        let has_port = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            && !address.ends_with(']');
        Some(if has_port {
            address.to_owned()
        } else {
            format!("{address}:{DEFAULT_SCPI_PORT}")
        })
    }

    /// Checks one device; shared by the configuration and the management API.
    ///
    /// # Errors
    /// Every problem, one sentence each.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let id = &self.id;
        if let Err(error) = protocol::device::validate_device_id(id) {
            problems.push(format!("device id {id:?}: {error}"));
        }
        if self.modules.is_empty() {
            problems.push(format!("device {id:?}: modules must not be empty"));
        }
        let mut seen = HashSet::new();
        for module in &self.modules {
            if *module > protocol::device::MAX_MODULE {
                problems.push(format!(
                    "device {id:?}: module {module} is above {}",
                    protocol::device::MAX_MODULE
                ));
            }
            if !seen.insert(module) {
                problems.push(format!("device {id:?}: module {module} appears twice"));
            }
        }
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            problems.push(format!(
                "device {id:?}: interval must be between 50ms and 1h"
            ));
        }
        if self.timeout.is_zero() {
            problems.push(format!("device {id:?}: timeout must be greater than zero"));
        }
        if !self.wavelength_nm.is_finite() || self.wavelength_nm <= 0.0 {
            problems.push(format!("device {id:?}: wavelength_nm must be positive"));
        }
        if self.unit.trim().is_empty() || self.unit.len() > 16 {
            problems.push(format!("device {id:?}: unit must be 1 to 16 characters"));
        }
        match self.driver {
            DriverKind::ScpiTcp => {
                if self.socket_address().is_none() {
                    problems.push(format!(
                        "device {id:?}: scpi-tcp needs address = \"host:port\""
                    ));
                }
                if !self.power_query.contains("{channel}") {
                    problems.push(format!(
                        "device {id:?}: power_query must contain {{channel}}"
                    ));
                }
                if !["m", "nm"].contains(&self.wavelength_reply_unit.as_str()) {
                    problems.push(format!(
                        "device {id:?}: wavelength_reply_unit must be \"m\" or \"nm\""
                    ));
                }
                if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
                    problems.push(format!(
                        "device {id:?}: reconnect_min must be positive and at most reconnect_max"
                    ));
                }
            }
            DriverKind::Mock => {
                if !(0.0..=1.0).contains(&self.fault_rate) {
                    problems.push(format!("device {id:?}: fault_rate must be from 0 to 1"));
                }
                let finite = [self.level_dbm, self.noise, self.drift]
                    .iter()
                    .all(|value| value.is_finite());
                if !finite || self.noise < 0.0 || self.drift < 0.0 {
                    problems.push(format!(
                        "device {id:?}: level_dbm, noise and drift must be finite, noise and drift not negative"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn devices_come_from_toml_tables_with_defaults() {
        let toml = r#"
            [device_reader]
            listen = "127.0.0.1:9100"

            [[device_reader.devices]]
            id = "opm-1"
            driver = "scpi-tcp"
            address = "10.0.0.7"
            modules = [1, 4]
            interval = "250ms"

            [[device_reader.devices]]
            id = "mock-1"
            fault_rate = 0.1
            active = false
        "#;
        let path =
            std::env::temp_dir().join(format!("device-reader-config-{}.toml", std::process::id()));
        std::fs::write(&path, toml).unwrap();
        let config: Config = settings::load(Some(&path), &Default::default()).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(config.validate(), Ok(()));
        let devices = &config.device_reader.devices;
        assert_eq!(devices[0].driver, DriverKind::ScpiTcp);
        assert_eq!(
            devices[0].socket_address().as_deref(),
            Some("10.0.0.7:5025")
        );
        assert_eq!(devices[0].interval, Duration::from_millis(250));
        assert_eq!(devices[1].driver, DriverKind::Mock);
        assert_eq!(devices[1].modules, vec![1]);
        assert!(!devices[1].active);
    }

    #[test]
    fn every_problem_is_listed() {
        let mut config = Config::default();
        let mut bad = DeviceConfig::mock("a.b", vec![], Duration::from_millis(10));
        bad.fault_rate = 2.0;
        let mut scpi = DeviceConfig::scpi("s", "", vec![1, 1], Duration::from_secs(1));
        scpi.power_query = "READ?".into();
        config.device_reader.devices = vec![
            bad,
            scpi,
            DeviceConfig::mock("s", vec![1], Duration::from_secs(1)),
        ];
        config.device_reader.failures_before_unavailable = 0;
        let problems = config.validate().unwrap_err();
        // id, modules, interval, fault_rate; address, module twice, power_query; duplicate id;
        // failures_before_unavailable.
        assert_eq!(problems.len(), 9, "{problems:#?}");
    }

    #[test]
    fn lease_timing_keeps_takeover_within_two_intervals() {
        let section = DeviceReaderConfig::default();
        let timing = section.lease_timing(Duration::from_millis(500));
        assert_eq!(timing.renew, Duration::from_millis(250));
        assert_eq!(timing.ttl, Duration::from_millis(750));
        assert!(timing.ttl + timing.renew <= Duration::from_secs(1));
        let slow = section.lease_timing(Duration::from_secs(3600));
        assert_eq!(slow.renew, Duration::from_secs(5));
        let fixed = DeviceReaderConfig {
            lease_ttl: Some(Duration::from_secs(3)),
            lease_renew_interval: Some(Duration::from_secs(1)),
            ..DeviceReaderConfig::default()
        };
        assert_eq!(
            fixed.lease_timing(Duration::from_millis(100)),
            LeaseTiming {
                ttl: Duration::from_secs(3),
                renew: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn addresses_get_the_default_port() {
        let device = |address: &str| DeviceConfig::scpi("d", address, vec![1], MIN_INTERVAL);
        assert_eq!(
            device("host:6000").socket_address().as_deref(),
            Some("host:6000")
        );
        assert_eq!(
            device("host").socket_address().as_deref(),
            Some("host:5025")
        );
        assert_eq!(device(" ").socket_address(), None);
    }
}

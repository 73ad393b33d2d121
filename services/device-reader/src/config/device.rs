//! One device's configuration: a `[[device_reader.devices]]` table.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_SCPI_PORT, MAX_INTERVAL, MIN_INTERVAL};

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
    /// `mock`: the mean level; channel n reads 3 dB × (n − 1) below it.
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

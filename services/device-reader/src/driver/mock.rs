//! The `mock` driver (seed 003's `MOCK_MODE`): believable readings and switchable faults.
//!
//! Each channel reads `level_dbm - 3 dB × (channel - 1)` (so the four channels differ as
//! four fibres would), plus a slow drift of the module (a random walk kept within
//! `± drift`) and uniform noise of `noise` dB peak to peak. Faults ([`FaultSwitches`]) come
//! from the configuration and from `inject_fault` at run time: a rate of transient
//! "hardware temporarily unavailable" errors, a number of reads that fail next, a stuck
//! instrument (reads run into the timeout) and a lost connection (reads fail at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::device::FaultRequest;
use rand::Rng;

use super::{Driver, DriverFuture, ModuleValues, ReadError};
use crate::config::DeviceConfig;

/// Largest step of the drift's random walk per reading, as a share of `drift`: small next to
/// the noise, so the level wanders over minutes as a stable meter's does, not within the few
/// seconds an anomaly baseline starts from (at 0.02, 1 dB of drift moved a 0.1 s meter by
/// about 0.06 dB in 3 s, enough to put normal readings 2.5 standard deviations out).
const DRIFT_STEP: f64 = 0.002;
/// Spacing of the four channels' levels, in dB.
const CHANNEL_SPACING_DB: f64 = 3.0;

/// The fault switches of one mock device, shared by its driver and the management API.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitches(Arc<Mutex<Faults>>);

/// The state of the switches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Probability that a read fails transiently.
    pub fault_rate: f64,
    /// Reads hang until the timeout.
    pub stuck: bool,
    /// Reads fail at once with a lost connection.
    pub disconnected: bool,
    /// The next this many reads fail transiently.
    pub fail_next: u32,
}

impl FaultSwitches {
    /// Switches as configured for `device`.
    pub fn from_config(device: &DeviceConfig) -> FaultSwitches {
        FaultSwitches(Arc::new(Mutex::new(Faults {
            fault_rate: device.fault_rate,
            stuck: device.stuck,
            disconnected: device.disconnected,
            fail_next: 0,
        })))
    }

    /// The switches now.
    pub fn get(&self) -> Faults {
        self.0.lock().map(|faults| *faults).unwrap_or_default()
    }

    /// Applies the switches present in `request`.
    ///
    /// # Errors
    /// A sentence when `fault_rate` is outside 0 to 1 (nothing is changed then).
    pub fn apply(&self, request: &FaultRequest) -> Result<Faults, String> {
        if let Some(rate) = request.fault_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err("fault_rate must be from 0 to 1".to_owned());
        }
        let mut faults = self
            .0
            .lock()
            .map_err(|_| "fault switches unavailable".to_owned())?;
        if let Some(rate) = request.fault_rate {
            faults.fault_rate = rate;
        }
        if let Some(stuck) = request.stuck {
            faults.stuck = stuck;
        }
        if let Some(disconnected) = request.disconnected {
            faults.disconnected = disconnected;
        }
        if let Some(fail_next) = request.fail_next {
            faults.fail_next = fail_next;
        }
        Ok(*faults)
    }

    /// Decides the fate of one read: `None` to read, or the failure to return.
    fn next_failure(&self, timeout: Duration) -> Option<ReadError> {
        let Ok(mut faults) = self.0.lock() else {
            return None;
        };
        if faults.disconnected {
            return Some(ReadError::Connection(
                "connection refused (simulated)".to_owned(),
            ));
        }
        if faults.stuck {
            return Some(ReadError::Timeout(timeout));
        }
        if faults.fail_next > 0 {
            faults.fail_next -= 1;
            return Some(ReadError::Hardware);
        }
        if faults.fault_rate > 0.0 && rand::rng().random_bool(faults.fault_rate.min(1.0)) {
            return Some(ReadError::Hardware);
        }
        None
    }
}

/// A simulated optical power meter.
pub struct MockDriver {
    level_dbm: f64,
    noise: f64,
    drift: f64,
    wavelength_nm: f64,
    timeout: Duration,
    faults: FaultSwitches,
    /// Current drift offset per module.
    offsets: HashMap<u16, f64>,
}

impl MockDriver {
    /// A mock for `device` with the given switches.
    pub fn new(device: &DeviceConfig, faults: FaultSwitches) -> MockDriver {
        MockDriver {
            level_dbm: device.level_dbm,
            noise: device.noise,
            drift: device.drift,
            wavelength_nm: device.wavelength_nm,
            timeout: device.timeout,
            faults,
            offsets: HashMap::new(),
        }
    }

    fn values(&mut self, module: u16) -> ModuleValues {
        let mut rng = rand::rng();
        let offset = self.offsets.entry(module).or_insert(0.0);
        if self.drift > 0.0 {
            let step = self.drift * DRIFT_STEP;
            *offset = (*offset + rng.random_range(-step..=step)).clamp(-self.drift, self.drift);
        }
        let base = self.level_dbm + *offset - f64::from(module) * 0.1;
        let half_noise = self.noise / 2.0;
        let mut channels = [0.0; 4];
        for (index, channel) in channels.iter_mut().enumerate() {
            let noise = if half_noise > 0.0 {
                rng.random_range(-half_noise..=half_noise)
            } else {
                0.0
            };
            let spacing = CHANNEL_SPACING_DB * f64::from(u8::try_from(index).unwrap_or(0));
            // Two decimals, as an instrument's display shows them.
            *channel = ((base - spacing + noise) * 100.0).round() / 100.0;
        }
        ModuleValues {
            wavelength_nm: self.wavelength_nm,
            channels,
        }
    }
}

impl Driver for MockDriver {
    fn read(&mut self, module: u16) -> DriverFuture<'_, Result<ModuleValues, ReadError>> {
        Box::pin(async move {
            match self.faults.next_failure(self.timeout) {
                // A stuck instrument costs the whole timeout, as a real one would.
                Some(ReadError::Timeout(timeout)) => {
                    tokio::time::sleep(timeout).await;
                    Err(ReadError::Timeout(timeout))
                }
                Some(failure) => Err(failure),
                None => Ok(self.values(module)),
            }
        })
    }

    fn disconnect(&mut self) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn device() -> DeviceConfig {
        DeviceConfig::mock("m", vec![1, 2], Duration::from_millis(100))
    }

    #[tokio::test]
    async fn readings_stay_near_the_level_with_noise_and_bounded_drift() {
        let config = device();
        let mut driver = MockDriver::new(&config, FaultSwitches::from_config(&config));
        let mut first = Vec::new();
        for _ in 0..500 {
            let values = driver.read(1).await.unwrap();
            assert_eq!(values.wavelength_nm, 1310.0);
            for (index, value) in values.channels.iter().enumerate() {
                let expected = -20.0 - 0.1 - 3.0 * index as f64;
                assert!((value - expected).abs() <= 1.0 + 0.1 + 0.01, "{value}");
            }
            first.push(values.channels[0]);
        }
        let distinct: std::collections::BTreeSet<i64> =
            first.iter().map(|value| (value * 100.0) as i64).collect();
        assert!(distinct.len() > 5, "readings vary");
    }

    #[tokio::test]
    async fn drift_is_slow_next_to_the_noise() {
        let mut config = device();
        config.noise = 0.0;
        let mut driver = MockDriver::new(&config, FaultSwitches::from_config(&config));
        let mut previous = driver.read(1).await.unwrap().channels[0];
        for _ in 0..500 {
            let value = driver.read(1).await.unwrap().channels[0];
            // 1 dB of drift moves at most 0.002 dB a reading (one display step after rounding).
            assert!((value - previous).abs() <= 0.011, "{previous} -> {value}");
            previous = value;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn switched_faults_fail_reads_until_switched_off() {
        let config = device();
        let faults = FaultSwitches::from_config(&config);
        let mut driver = MockDriver::new(&config, faults.clone());
        faults
            .apply(&FaultRequest {
                device_id: "m".into(),
                fail_next: Some(2),
                ..FaultRequest::default()
            })
            .unwrap();
        assert_eq!(driver.read(1).await, Err(ReadError::Hardware));
        assert_eq!(driver.read(1).await, Err(ReadError::Hardware));
        assert!(driver.read(1).await.is_ok());
        faults
            .apply(&FaultRequest {
                stuck: Some(true),
                ..FaultRequest::default()
            })
            .unwrap();
        assert_eq!(
            driver.read(1).await,
            Err(ReadError::Timeout(Duration::from_secs(1)))
        );
        faults
            .apply(&FaultRequest {
                stuck: Some(false),
                disconnected: Some(true),
                ..FaultRequest::default()
            })
            .unwrap();
        assert!(matches!(
            driver.read(1).await,
            Err(ReadError::Connection(_))
        ));
        assert!(
            faults
                .apply(&FaultRequest {
                    fault_rate: Some(1.5),
                    ..FaultRequest::default()
                })
                .is_err()
        );
        faults
            .apply(&FaultRequest {
                disconnected: Some(false),
                fault_rate: Some(1.0),
                ..FaultRequest::default()
            })
            .unwrap();
        assert_eq!(driver.read(2).await, Err(ReadError::Hardware));
    }
}

//! Instrument drivers behind one trait: [`mock`] (simulated readings with fault injection) and
//! [`scpi`] (SCPI over TCP). A driver reads one module at a time; every failure is a
//! [`ReadError`], never a panic and never a made-up value.

pub mod mock;
pub mod parse;
pub mod scpi;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config::{DeviceConfig, DriverKind};

pub use mock::{FaultSwitches, MockDriver};
pub use scpi::ScpiDriver;

/// A boxed future, so [`Driver`] stays object safe.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One module's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModuleValues {
    /// The wavelength the channels measure at, in nm.
    pub wavelength_nm: f64,
    /// Channel 1 to 4 powers.
    pub channels: [f64; 4],
}

/// Why a module could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// The instrument reported (or the mock simulated) a transient failure.
    #[error("Hardware temporarily unavailable")]
    Hardware,
    /// No answer within the per-query timeout.
    #[error("instrument did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer was not a number of the expected form.
    #[error("unparseable reply to {query:?}: {reason}")]
    Garbage {
        /// The query that got it.
        query: String,
        /// What was wrong.
        reason: String,
    },
    /// The connection could not be made or was lost.
    #[error("connection to the instrument lost: {0}")]
    Connection(String),
}

/// An instrument. Each device has its own driver, and a TCP driver its own connection.
pub trait Driver: Send {
    /// Reads `module`: its wavelength and four channel powers.
    fn read(&mut self, module: u16) -> DriverFuture<'_, Result<ModuleValues, ReadError>>;

    /// Closes the connection, if any (the device was stopped or its lease lost).
    fn disconnect(&mut self);
}

/// Builds the driver a device is configured for; `faults` are the mock's switches.
pub fn build(device: &DeviceConfig, faults: FaultSwitches) -> Box<dyn Driver> {
    match device.driver {
        DriverKind::Mock => Box::new(MockDriver::new(device, faults)),
        DriverKind::ScpiTcp => Box::new(ScpiDriver::new(device)),
    }
}

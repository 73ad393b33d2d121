//! The `scpi-tcp` driver: one TCP connection per instrument, owned by its device's driver
//! and never shared; SCPI queries per module and channel, each with the device's timeout.
//!
//! Any failed query (timeout, garbage, a closed socket) drops the connection: a late reply
//! on a kept socket would be read as the answer to the next query. The next read connects
//! again; a failed connect waits `reconnect_min`, doubling to `reconnect_max`, before the
//! next attempt (reads in between fail at once with the remaining wait).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info};

use super::parse::{MAX_REPLY_BYTES, parse_reply, render_query};
use super::{Driver, DriverFuture, ModuleValues, ReadError};
use crate::backoff::Backoff;
use crate::config::DeviceConfig;

/// The four channels of a module.
const CHANNELS: [u16; 4] = [1, 2, 3, 4];

/// An instrument over SCPI/TCP.
pub struct ScpiDriver {
    address: String,
    timeout: Duration,
    wavelength_query: String,
    wavelength_in_metres: bool,
    fallback_wavelength_nm: f64,
    power_query: String,
    connection: Option<BufReader<TcpStream>>,
    backoff: Backoff,
    /// No connect is attempted before this instant (after a failed connect).
    next_connect_at: Option<Instant>,
}

impl ScpiDriver {
    /// A driver for `device` (validated: it has an address). Connects on the first read.
    pub fn new(device: &DeviceConfig) -> ScpiDriver {
        ScpiDriver {
            address: device.socket_address().unwrap_or_default(),
            timeout: device.timeout,
            wavelength_query: device.wavelength_query.trim().to_owned(),
            wavelength_in_metres: device.wavelength_reply_unit == "m",
            fallback_wavelength_nm: device.wavelength_nm,
            power_query: device.power_query.trim().to_owned(),
            connection: None,
            backoff: Backoff::new(device.reconnect_min, device.reconnect_max),
            next_connect_at: None,
        }
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    async fn connect(&mut self) -> Result<(), ReadError> {
        if self.connection.is_some() {
            return Ok(());
        }
        if let Some(at) = self.next_connect_at
            && Instant::now() < at
        {
            let wait = at - Instant::now();
            return Err(ReadError::Connection(format!(
                "not connected; next attempt in {} ms",
                wait.as_millis()
            )));
        }
        let connected = tokio::time::timeout(self.timeout, TcpStream::connect(&self.address)).await;
        match connected {
            Ok(Ok(stream)) => {
                // Queries are single short lines; send each at once.
                let _ = stream.set_nodelay(true);
                info!(address = %self.address, "instrument connected");
                self.connection = Some(BufReader::new(stream));
                self.backoff.reset();
                self.next_connect_at = None;
                Ok(())
            }
            failed => {
                let delay = self.backoff.next_delay();
                self.next_connect_at = Some(Instant::now() + delay);
                let reason = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("connect timed out after {:?}", self.timeout),
                };
                debug!(address = %self.address, reason, retry_in_ms = delay.as_millis(), "instrument connect failed");
                Err(ReadError::Connection(reason))
            }
        }
    }

    /// Sends `query` and reads one number back, within the timeout.
    async fn query_number(&mut self, query: &str) -> Result<f64, ReadError> {
        let timeout = self.timeout;
        let Some(connection) = self.connection.as_mut() else {
            return Err(ReadError::Connection("not connected".to_owned()));
        };
        let exchange = async {
            let line = format!("{query}\n");
            connection
                .get_mut()
                .write_all(line.as_bytes())
                .await
                .map_err(|error| ReadError::Connection(error.to_string()))?;
            let mut reply = Vec::with_capacity(32);
            // One byte more than a reply may have, so an endless line is cut and refused.
            let limit = u64::try_from(MAX_REPLY_BYTES + 2).unwrap_or(u64::MAX);
            let read = (&mut *connection)
                .take(limit)
                .read_until(b'\n', &mut reply)
                .await
                .map_err(|error| ReadError::Connection(error.to_string()))?;
            if read == 0 {
                return Err(ReadError::Connection(
                    "connection closed by the instrument".to_owned(),
                ));
            }
            Ok(reply)
        };
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ReadError::Timeout(timeout)),
        };
        parse_reply(&reply).map_err(|reason| ReadError::Garbage {
            query: query.to_owned(),
            reason,
        })
    }

    async fn read_module(&mut self, module: u16) -> Result<ModuleValues, ReadError> {
        self.connect().await?;
        let wavelength_nm = if self.wavelength_query.is_empty() {
            self.fallback_wavelength_nm
        } else {
            let query = render_query(&self.wavelength_query, module, 1);
            let value = self.query_number(&query).await?;
            let nm = if self.wavelength_in_metres {
                metres_to_nm(value)
            } else {
                value
            };
            if !(nm > 0.0 && nm < 100_000.0) {
                return Err(ReadError::Garbage {
                    query,
                    reason: format!("wavelength {nm} nm is not plausible"),
                });
            }
            nm
        };
        let mut channels = [0.0; 4];
        for (slot, channel) in channels.iter_mut().zip(CHANNELS) {
            let query = render_query(&self.power_query, module, channel);
            *slot = self.query_number(&query).await?;
        }
        Ok(ModuleValues {
            wavelength_nm,
            channels,
        })
    }
}

impl Driver for ScpiDriver {
    fn read(&mut self, module: u16) -> DriverFuture<'_, Result<ModuleValues, ReadError>> {
        Box::pin(async move {
            let result = self.read_module(module).await;
            if let Err(error) = &result
                && self.connection.is_some()
            {
                // The socket's state is unknown after a failed query: start afresh.
                debug!(address = %self.address, error = %error, "dropping instrument connection");
                self.connection = None;
            }
            result
        })
    }

    fn disconnect(&mut self) {
        self.connection = None;
    }
}

/// `1.31E-06` m is `1310` nm, not `1310.0000000000002`: the product is rounded to a picometre,
/// far below any instrument's resolution, so clients show what the instrument said.
fn metres_to_nm(metres: f64) -> f64 {
    (metres * 1e12).round() / 1e3
}

#[cfg(test)]
mod tests {
    #[test]
    fn metres_become_round_nanometres() {
        assert_eq!(super::metres_to_nm(1.31e-6), 1310.0);
        assert_eq!(super::metres_to_nm(1.550_12e-6), 1550.12);
    }
}

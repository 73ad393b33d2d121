//! One device's reading loop on one replica.
//!
//! While this replica holds the device's lease ([`crate::lease`]), the loop wakes at every
//! wall-clock tick of the device's interval (`unix_ms / interval_ms`, the same number on every
//! replica), claims the tick in the store under the lease, and only then reads every module
//! and publishes: readings to the module rooms, failures as `error` events, channel powers as
//! metric samples. A claimed tick is never claimed again, so no reading is published twice,
//! also not by two replicas across a takeover. While the device is unavailable, ticks are
//! skipped until the backoff's wait has passed. Status changes go to room `devices`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use protocol::device::{DeviceFault, DeviceReading, DeviceState, DeviceStatus};
use store::{Lease, TickClaim};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use crate::config::DeviceConfig;
use crate::driver::{self, Driver, FaultSwitches, ReadError};
use crate::health::Health;
use crate::lease::{self, LeaseWatch, millis};
use crate::publish;
use crate::server::Context;

/// What a device's reader shares with the registry and the API.
#[derive(Debug)]
pub(crate) struct DeviceShared {
    /// The status as this replica knows it (its own while it holds the lease, else the last
    /// one another replica published).
    pub status: Mutex<DeviceStatus>,
    /// Whether this replica's reader holds the lease now.
    pub holding: AtomicBool,
}

impl DeviceShared {
    pub(crate) fn new(device: &DeviceConfig) -> DeviceShared {
        DeviceShared {
            status: Mutex::new(DeviceStatus {
                device_id: device.id.clone(),
                driver: device.driver.as_str().to_owned(),
                modules: device.modules.clone(),
                interval_ms: millis(device.interval),
                state: if device.active {
                    DeviceState::Starting
                } else {
                    DeviceState::Stopped
                },
                last_reading_at: None,
                error_count: 0,
                last_error: None,
                reader_id: None,
            }),
            holding: AtomicBool::new(false),
        }
    }

    pub(crate) fn update_state(&self, state: DeviceState) {
        self.update(|status| status.state = state);
    }

    pub(crate) fn status(&self) -> Option<DeviceStatus> {
        self.status.lock().ok().map(|status| status.clone())
    }

    fn update(&self, change: impl FnOnce(&mut DeviceStatus)) -> Option<DeviceStatus> {
        let mut status = self.status.lock().ok()?;
        change(&mut status);
        Some(status.clone())
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    protocol::time::now_unix_ms()
}

/// Reads `device` until `stop`, whenever this replica holds its lease. `stop` is a child of
/// `drain`: a stop of this device alone (an operator's) publishes `stopped`; a drain of the
/// whole replica only releases the lease, since another replica carries on reading and
/// publishes its own status.
pub(crate) async fn run(
    context: Arc<Context>,
    device: DeviceConfig,
    faults: FaultSwitches,
    shared: Arc<DeviceShared>,
    stop: CancellationToken,
    drain: CancellationToken,
) {
    let timing = context.section.lease_timing(device.interval);
    let keeper_stop = CancellationToken::new();
    // A JoinSet, so an aborted reader (a crash in tests) aborts its keeper too.
    let mut keeper = tokio::task::JoinSet::new();
    let mut lease_watch = lease::spawn_keeper(
        &mut keeper,
        Arc::clone(&context),
        lease::lease_name(&device.id),
        timing,
        keeper_stop.clone(),
    );
    let mut reader = Reader {
        driver: driver::build(&device, faults),
        health: Health::new(
            context.section.failures_before_unavailable,
            context.section.retry_min,
            context.section.retry_max,
        ),
        context,
        device,
        shared,
        settled: None,
        retry_not_before: None,
        held_epoch: None,
        published: None,
    };
    shared_holding(&reader, false);
    let interval_ms = millis(reader.device.interval);
    loop {
        reader.follow_lease(&lease_watch).await;
        let tick = unix_ms() / interval_ms;
        if reader.settled.is_none_or(|done| tick > done) {
            let span = tracing::info_span!("device_tick", device = %reader.device.id, tick);
            reader.tick(&lease_watch, tick).instrument(span).await;
        }
        let now_ms = unix_ms();
        let wait =
            std::time::Duration::from_millis((now_ms / interval_ms + 1) * interval_ms - now_ms);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = lease_watch.changed() => {}
        }
    }
    // Say "stopped" while still holding, then release so nobody waits for the TTL.
    if drain.is_cancelled() {
        debug!(device = %reader.device.id, "replica draining; device lease released");
    } else if let Some(lease) = lease_watch.current() {
        reader.health_state_stopped();
        reader.publish_status_if_changed(lease.fencing_token).await;
    } else {
        reader
            .shared
            .update(|status| status.state = DeviceState::Stopped);
    }
    reader.driver.disconnect();
    keeper_stop.cancel();
    while keeper.join_next().await.is_some() {}
    shared_holding(&reader, false);
}

fn shared_holding(reader: &Reader, holding: bool) {
    let before = reader.shared.holding.swap(holding, Ordering::Relaxed);
    if before != holding {
        let gauge = &reader.context.metrics.devices_held;
        if holding { gauge.inc() } else { gauge.dec() }
    }
}

struct Reader {
    context: Arc<Context>,
    device: DeviceConfig,
    driver: Box<dyn Driver>,
    health: Health,
    shared: Arc<DeviceShared>,
    /// The last tick read or seen claimed by another holder.
    settled: Option<u64>,
    /// While unavailable: no attempt before this.
    retry_not_before: Option<Instant>,
    /// The fencing token of the lease held, if any.
    held_epoch: Option<u64>,
    /// The last status published (or seen), to publish only changes.
    published: Option<DeviceStatus>,
}

impl Reader {
    /// Reacts to gaining or losing the lease.
    async fn follow_lease(&mut self, lease_watch: &LeaseWatch) {
        let epoch = lease_watch.current().map(|lease| lease.fencing_token);
        if epoch == self.held_epoch {
            return;
        }
        self.held_epoch = epoch;
        match epoch {
            Some(epoch) => {
                info!(device = %self.device.id, epoch, "reading device");
                shared_holding(self, true);
                let reader_id = self.context.instance_id.clone();
                let state = self.health.state();
                self.shared.update(|status| {
                    status.reader_id = Some(reader_id);
                    status.state = state;
                });
                self.publish_status_if_changed(epoch).await;
            }
            None => {
                debug!(device = %self.device.id, "device lease not held; standing by");
                shared_holding(self, false);
                self.driver.disconnect();
                // Another holder may have read ticks meanwhile; the store's claims decide.
                self.settled = None;
                // And it publishes its own status: ours is news again when we hold once more.
                self.published = None;
            }
        }
    }

    async fn tick(&mut self, lease_watch: &LeaseWatch, tick: u64) {
        let metrics = &self.context.metrics;
        let skipped = |reason: &str| metrics.ticks_skipped.with_label_values(&[reason]).inc();
        let Some(lease) = lease_watch.current() else {
            skipped("standby");
            return;
        };
        if self
            .retry_not_before
            .is_some_and(|not_before| Instant::now() < not_before)
        {
            skipped("backoff");
            return;
        }
        let series = format!("ticks:{}", millis(self.device.interval));
        match self
            .context
            .store
            .claim_lease_tick(&lease, &series, tick)
            .await
        {
            Ok(TickClaim::Claimed) => {}
            Ok(TickClaim::AlreadyClaimed { last }) => {
                skipped("already_claimed");
                self.settled = Some(tick.max(last));
                return;
            }
            Ok(TickClaim::LeaseLost) => {
                skipped("lease_lost");
                return;
            }
            Err(error) => {
                warn!(device = %self.device.id, tick, error = %error, "tick cannot be claimed; not reading it");
                skipped("store_error");
                return;
            }
        }
        self.settled = Some(tick);
        self.read_and_publish(&lease, tick).await;
    }

    async fn read_and_publish(&mut self, lease: &Lease, tick: u64) {
        let epoch = lease.fencing_token;
        let started = Instant::now();
        let mut failures: Vec<(u16, ReadError)> = Vec::new();
        let mut samples = Vec::new();
        let modules = self.device.modules.clone();
        for module in modules {
            match self.driver.read(module).await {
                Ok(values) => {
                    let now = SystemTime::now();
                    let reading = DeviceReading {
                        timestamp: unix_seconds(now),
                        module,
                        wavelength_nm: values.wavelength_nm,
                        unit: self.device.unit.clone(),
                        ch1_power: values.channels[0],
                        ch2_power: values.channels[1],
                        ch3_power: values.channels[2],
                        ch4_power: values.channels[3],
                        device_id: self.device.id.clone(),
                    };
                    publish::reading(&self.context, epoch, tick, &reading).await;
                    samples.extend(publish::reading_samples(&reading, unix_ms()));
                    let at = reading.timestamp;
                    self.shared
                        .update(|status| status.last_reading_at = Some(at));
                }
                Err(error) => failures.push((module, error)),
            }
        }
        self.context
            .metrics
            .read_seconds
            .with_label_values(&[self.device.id.as_str()])
            .observe(started.elapsed().as_secs_f64());
        publish::samples(&self.context, epoch, &samples).await;

        if let Some((_, first)) = failures.first() {
            let message = first.to_string();
            let failure = self.health.on_failure(&message);
            self.retry_not_before = failure.retry_in.map(|wait| Instant::now() + wait);
            if failure.error_count == 1 || !failure.recoverable {
                warn!(device = %self.device.id, error_count = failure.error_count, recoverable = failure.recoverable, error = %message, "device reading failed");
            }
            for (module, error) in &failures {
                self.context
                    .metrics
                    .read_errors
                    .with_label_values(&[self.device.id.as_str(), error_kind(error)])
                    .inc();
                let fault = DeviceFault {
                    message: error.to_string(),
                    timestamp: protocol::time::now_rfc3339(),
                    recoverable: failure.recoverable,
                    error_count: failure.error_count,
                    device_id: self.device.id.clone(),
                    module: *module,
                };
                publish::fault(&self.context, epoch, tick, &fault).await;
            }
        } else {
            if self.health.state() == DeviceState::Unavailable {
                info!(device = %self.device.id, "device answers again");
            }
            self.health.on_success();
            self.retry_not_before = None;
        }
        let (state, error_count) = (self.health.state(), self.health.error_count());
        let last_error = self.health.last_error().map(str::to_owned);
        self.shared.update(|status| {
            status.state = state;
            status.error_count = error_count;
            status.last_error = last_error;
        });
        self.publish_status_if_changed(epoch).await;
    }

    fn health_state_stopped(&mut self) {
        self.shared
            .update(|status| status.state = DeviceState::Stopped);
    }

    /// Publishes the status if it differs from the last one published in what the badges
    /// show (state, error count, error, reader); the reading time alone is no change.
    async fn publish_status_if_changed(&mut self, epoch: u64) {
        let Some(status) = self.shared.status() else {
            return;
        };
        let same = self.published.as_ref().is_some_and(|last| {
            last.state == status.state
                && last.error_count == status.error_count
                && last.last_error == status.last_error
                && last.reader_id == status.reader_id
        });
        if same {
            return;
        }
        publish::status(&self.context, epoch, &status).await;
        self.published = Some(status);
    }
}

fn error_kind(error: &ReadError) -> &'static str {
    match error {
        ReadError::Hardware => "hardware",
        ReadError::Timeout(_) => "timeout",
        ReadError::Garbage { .. } => "garbage",
        ReadError::Connection(_) => "connection",
    }
}

/// Unix seconds with a fraction (seed 003's `timestamp`).
fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

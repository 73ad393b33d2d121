//! The devices one replica knows: their configuration, fault switches, status and reader task.
//!
//! Every replica keeps every device and runs a reader for each started one; the leases decide
//! which replica actually reads. A management change made on one replica is applied there and
//! sent to the others on `sb.device_reader.control` ([`Control`]), so start, stop, additions and
//! fault switches hold cluster-wide. Changes at run time are not persisted: a restarted replica
//! starts from its configuration file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::device::{DeviceState, DeviceStatus, FaultRequest};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::{DeviceConfig, DriverKind};
use crate::driver::FaultSwitches;
use crate::reader::{self, DeviceShared};
use crate::server::Context;

/// A management change, applied on the replica that received it and sent to the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Control {
    /// Register a device (started when `active`).
    Add(Box<DeviceConfig>),
    /// Start reading a device.
    Start(String),
    /// Stop reading a device.
    Stop(String),
    /// Switch a mock device's faults.
    Fault(FaultRequest),
}

/// [`Control`] on the bus, with the replica it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ControlMessage {
    pub origin: String,
    pub control: Control,
}

/// Why a management request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum DeviceError {
    /// The request is malformed or the device configuration invalid.
    #[error("{0}")]
    Invalid(String),
    /// No such device.
    #[error("device {0:?} is not known")]
    NotFound(String),
}

struct Entry {
    config: DeviceConfig,
    faults: FaultSwitches,
    shared: Arc<DeviceShared>,
    /// Cancels the running reader; `None` while stopped.
    running: Option<CancellationToken>,
}

/// The registry.
pub(crate) struct Devices {
    context: Arc<Context>,
    entries: Mutex<BTreeMap<String, Entry>>,
    readers: Mutex<JoinSet<()>>,
    work: CancellationToken,
}

impl Devices {
    pub(crate) fn new(context: Arc<Context>) -> Devices {
        Devices {
            context,
            entries: Mutex::new(BTreeMap::new()),
            readers: Mutex::new(JoinSet::new()),
            work: CancellationToken::new(),
        }
    }

    /// Applies one change; returns the device's status afterwards.
    pub(crate) fn apply(&self, control: &Control) -> Result<DeviceStatus, DeviceError> {
        match control {
            Control::Add(device) => self.add(device),
            Control::Start(id) => self.start(id),
            Control::Stop(id) => self.stop(id),
            Control::Fault(request) => self.inject(request),
        }
    }

    fn add(&self, device: &DeviceConfig) -> Result<DeviceStatus, DeviceError> {
        device
            .check()
            .map_err(|problems| DeviceError::Invalid(problems.join("; ")))?;
        let mut entries = self.lock_entries()?;
        if entries.contains_key(&device.id) {
            return Err(DeviceError::Invalid(format!(
                "device {:?} already exists",
                device.id
            )));
        }
        if entries.len() >= self.context.section.max_devices {
            return Err(DeviceError::Invalid(format!(
                "at most {} devices",
                self.context.section.max_devices
            )));
        }
        let mut entry = Entry {
            config: device.clone(),
            faults: FaultSwitches::from_config(device),
            shared: Arc::new(DeviceShared::new(device)),
            running: None,
        };
        if device.active {
            self.spawn_reader(&mut entry);
        }
        let status = entry.shared.status();
        entries.insert(device.id.clone(), entry);
        self.context
            .metrics
            .devices_configured
            .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
        status.ok_or_else(|| DeviceError::Invalid("device status unavailable".into()))
    }

    fn start(&self, id: &str) -> Result<DeviceStatus, DeviceError> {
        let mut entries = self.lock_entries()?;
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| DeviceError::NotFound(id.to_owned()))?;
        if entry.running.is_none() {
            entry.shared.update_state(DeviceState::Starting);
            self.spawn_reader(entry);
        }
        entry
            .shared
            .status()
            .ok_or_else(|| DeviceError::NotFound(id.to_owned()))
    }

    fn stop(&self, id: &str) -> Result<DeviceStatus, DeviceError> {
        let mut entries = self.lock_entries()?;
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| DeviceError::NotFound(id.to_owned()))?;
        if let Some(running) = entry.running.take() {
            running.cancel();
        }
        // The reader publishes `stopped` itself if it holds the lease; answer with it now.
        entry.shared.update_state(DeviceState::Stopped);
        entry
            .shared
            .status()
            .ok_or_else(|| DeviceError::NotFound(id.to_owned()))
    }

    fn inject(&self, request: &FaultRequest) -> Result<DeviceStatus, DeviceError> {
        let entries = self.lock_entries()?;
        let entry = entries
            .get(&request.device_id)
            .ok_or_else(|| DeviceError::NotFound(request.device_id.clone()))?;
        if entry.config.driver != DriverKind::Mock {
            return Err(DeviceError::Invalid(
                "faults can only be injected into mock devices".into(),
            ));
        }
        entry.faults.apply(request).map_err(DeviceError::Invalid)?;
        entry
            .shared
            .status()
            .ok_or_else(|| DeviceError::NotFound(request.device_id.clone()))
    }

    /// Every device's status, by id.
    pub(crate) fn list(&self) -> Vec<DeviceStatus> {
        self.entries
            .lock()
            .map(|entries| entries.values().filter_map(|e| e.shared.status()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn get(&self, id: &str) -> Result<DeviceStatus, DeviceError> {
        let entries = self.lock_entries()?;
        entries
            .get(id)
            .and_then(|entry| entry.shared.status())
            .ok_or_else(|| DeviceError::NotFound(id.to_owned()))
    }

    /// Takes a status another replica published, for devices this replica does not read.
    pub(crate) fn observe(&self, status: DeviceStatus) {
        let Ok(entries) = self.entries.lock() else {
            return;
        };
        let Some(entry) = entries.get(&status.device_id) else {
            return;
        };
        let reader_is_other = status.reader_id.as_deref() != Some(&self.context.instance_id);
        let holding = entry
            .shared
            .holding
            .load(std::sync::atomic::Ordering::Relaxed);
        if reader_is_other
            && !holding
            && let Ok(mut known) = entry.shared.status.lock()
        {
            *known = status;
        }
    }

    /// Stops every reader (they release their leases, so other replicas take over at once),
    /// waiting up to `grace`; returns how many were cut off.
    pub(crate) async fn stop_all(&self, grace: Duration) -> usize {
        self.work.cancel();
        let mut readers = match self.readers.lock() {
            Ok(mut readers) => std::mem::take(&mut *readers),
            Err(_) => return 0,
        };
        let drained = tokio::time::timeout(grace, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let remaining = readers.len();
            readers.abort_all();
            return remaining;
        }
        0
    }

    fn spawn_reader(&self, entry: &mut Entry) {
        if self.work.is_cancelled() {
            return;
        }
        let stop = self.work.child_token();
        entry.running = Some(stop.clone());
        let Ok(mut readers) = self.readers.lock() else {
            warn!(device = %entry.config.id, "reader set unavailable; device not started");
            return;
        };
        // Reap readers that have ended (stopped devices).
        while readers.try_join_next().is_some() {}
        readers.spawn(reader::run(
            Arc::clone(&self.context),
            entry.config.clone(),
            entry.faults.clone(),
            Arc::clone(&entry.shared),
            stop,
            self.work.clone(),
        ));
    }

    fn lock_entries(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Entry>>, DeviceError> {
        self.entries
            .lock()
            .map_err(|_| DeviceError::Invalid("device registry unavailable".into()))
    }
}

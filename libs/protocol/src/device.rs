//! Lab instruments (seed 003): the device reader's readings, errors and status, their rooms,
//! and the device reader's management API.
//!
//! Readings travel as room messages on `sb.room.devices.<device_id>.m<module>`
//! ([`reading_room`]) with event [`EVENT_DATA`] and a [`DeviceReading`] as `data`; hardware
//! failures go to the same room as event [`EVENT_ERROR`] with a [`DeviceFault`]. Status changes
//! go to room [`STATUS_ROOM`] (`devices`) as event [`EVENT_STATUS`] with a [`DeviceStatus`].
//! Seed 003's compatibility endpoint `/api/v1/ws/v2/power` sends the reading's fields flat,
//! with `"type": "data"` in front ([`DeviceReading::flat_frame`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Subjects;
use crate::room::{NameError, RoomName, validate_node_id};

/// Room of every device's status changes.
pub const STATUS_ROOM: &str = "devices";
/// Event of a reading in a device room.
pub const EVENT_DATA: &str = "data";
/// Event of a hardware error in a device room.
/// Not `error`: on `/api/ws/connect` a room message's `type` is its event, and `error` is the
/// protocol's own error message, so a client could not tell a device fault from a refusal.
/// Seed 003's flat frame still says `"type": "error"` ([`DeviceFault::flat_frame`]).
pub const EVENT_ERROR: &str = "device_error";
/// Event of a status change in [`STATUS_ROOM`].
pub const EVENT_STATUS: &str = "device_status";

/// Highest module number a device may have (room names stay short and bounded).
pub const MAX_MODULE: u16 = 64;

/// `devices.<device_id>.m<module>`: the room of one module's readings and errors.
///
/// # Errors
/// [`NameError`] when `device_id` is not one segment of `A-Z a-z 0-9 _ -` of at most 64 bytes.
pub fn reading_room(device_id: &str, module: u16) -> Result<RoomName, NameError> {
    validate_device_id(device_id)?;
    RoomName::parse(&format!("{STATUS_ROOM}.{device_id}.m{module}"))
}

/// Returns `(device_id, module)` of a `devices.<device_id>.m<module>` room.
pub fn parse_reading_room(room: &str) -> Option<(&str, u16)> {
    let rest = room.strip_prefix(STATUS_ROOM)?.strip_prefix('.')?;
    let (device_id, module) = rest.split_once('.')?;
    let module = module.strip_prefix('m')?.parse().ok()?;
    validate_device_id(device_id).ok()?;
    Some((device_id, module))
}

/// A device id has the rules of a node id: one segment of `A-Z a-z 0-9 _ -`, at most 64 bytes.
///
/// # Errors
/// [`NameError`] otherwise.
pub fn validate_device_id(device_id: &str) -> Result<(), NameError> {
    validate_node_id(device_id)
}

/// One reading of one module: seed 003's data message without its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceReading {
    /// When the instrument was read: Unix seconds with a fraction (seed 003).
    pub timestamp: f64,
    /// The module (slot) of the instrument.
    pub module: u16,
    /// The wavelength the channels measure at, in nm.
    pub wavelength_nm: f64,
    /// Unit of the channel powers (`dBm`, `mW`, …).
    pub unit: String,
    /// Channel 1 power.
    pub ch1_power: f64,
    /// Channel 2 power.
    pub ch2_power: f64,
    /// Channel 3 power.
    pub ch3_power: f64,
    /// Channel 4 power.
    pub ch4_power: f64,
    /// The device id (not in seed 003's frame, which knows one device per connection).
    pub device_id: String,
}

impl DeviceReading {
    /// The channel powers in order.
    pub fn channels(&self) -> [f64; 4] {
        [
            self.ch1_power,
            self.ch2_power,
            self.ch3_power,
            self.ch4_power,
        ]
    }

    /// Seed 003's flat frame: `{"type": "data", "timestamp", "module", "wavelength_nm", "unit",
    /// "ch1_power" … "ch4_power"}` (plus `device_id`, which the seed's clients ignore).
    pub fn flat_frame(&self) -> Value {
        flat("data", self)
    }
}

/// A hardware failure while reading a device: seed 003's error message without its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFault {
    /// What failed, for people ("Hardware temporarily unavailable").
    pub message: String,
    /// When it failed (RFC 3339, as seed 003 writes it).
    pub timestamp: String,
    /// `true` while the reader keeps trying at the normal interval; `false` once the device is
    /// reported unavailable (it is then retried with backoff).
    pub recoverable: bool,
    /// Consecutive failures, reset by the next good reading.
    pub error_count: u32,
    /// The device.
    pub device_id: String,
    /// The module whose room this is.
    pub module: u16,
}

impl DeviceFault {
    /// Seed 003's flat frame: `{"type": "error", "message", "timestamp", "recoverable",
    /// "error_count"}` (plus `device_id` and `module`).
    pub fn flat_frame(&self) -> Value {
        flat("error", self)
    }
}

fn flat(kind: &str, body: &impl Serialize) -> Value {
    let mut frame = Map::new();
    frame.insert("type".to_owned(), Value::String(kind.to_owned()));
    if let Ok(Value::Object(fields)) = serde_json::to_value(body) {
        frame.extend(fields);
    }
    Value::Object(frame)
}

/// Where a device stands, as seed 003's badges show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Configured and started, no reading yet.
    Starting,
    /// Readings arrive.
    Connected,
    /// Too many consecutive failures; retried with backoff.
    Unavailable,
    /// Stopped by an operator (or registered stopped).
    Stopped,
}

/// One device's status: in room [`STATUS_ROOM`] on every change, and the answer of
/// `GET /api/ws/devices[/{id}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device_id: String,
    /// `mock` or `scpi-tcp`.
    pub driver: String,
    /// Its modules.
    pub modules: Vec<u16>,
    /// Reading period in milliseconds.
    pub interval_ms: u64,
    /// Where it stands.
    pub state: DeviceState,
    /// When the last good reading was taken (Unix seconds with a fraction), if ever.
    pub last_reading_at: Option<f64>,
    /// Consecutive failures.
    pub error_count: u32,
    /// The last failure's message, if any since the last good reading.
    pub last_error: Option<String>,
    /// The device-reader replica reading it (lease holder).
    pub reader_id: Option<String>,
}

/// Names of the device reader's management API: `sb.api.device_reader.<method>` (built with
/// [`Subjects::api`](crate::Subjects::api)), MessagePack request and
/// [`ApiReply`](crate::metrics::ApiReply).
pub mod api {
    /// The `<service>` token.
    pub const SERVICE: &str = "device_reader";
    /// `list_devices`: [`ListDevicesRequest`](super::ListDevicesRequest) →
    /// `Vec<`[`DeviceStatus`](super::DeviceStatus)`>`.
    pub const LIST_DEVICES: &str = "list_devices";
    /// `get_device`: [`DeviceRequest`](super::DeviceRequest) → [`DeviceStatus`](super::DeviceStatus)
    /// (`not_found` error when unknown).
    pub const GET_DEVICE: &str = "get_device";
    /// `add_device`: a device's configuration table as JSON → [`DeviceStatus`](super::DeviceStatus).
    pub const ADD_DEVICE: &str = "add_device";
    /// `start_device`: [`DeviceRequest`](super::DeviceRequest) → [`DeviceStatus`](super::DeviceStatus).
    pub const START_DEVICE: &str = "start_device";
    /// `stop_device`: [`DeviceRequest`](super::DeviceRequest) → [`DeviceStatus`](super::DeviceStatus).
    pub const STOP_DEVICE: &str = "stop_device";
    /// `inject_fault` (mock driver only): [`FaultRequest`](super::FaultRequest) →
    /// [`DeviceStatus`](super::DeviceStatus) (`invalid_message` for a device of another driver).
    pub const INJECT_FAULT: &str = "inject_fault";
    /// Queue group of the replicas: each request is answered by one of them.
    pub const QUEUE_GROUP: &str = "sb-device-reader-api";
}

/// `list_devices`: no parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListDevicesRequest {}

/// A request naming one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// The device.
    pub device_id: String,
}

/// `inject_fault`: the mock driver's fault switches for one device. Absent switches keep their
/// current value, so `{"device_id": "opm-1", "stuck": true}` changes only `stuck`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRequest {
    /// The device (its driver must be `mock`).
    pub device_id: String,
    /// Probability (0 to 1) that a module read fails with "Hardware temporarily unavailable".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_rate: Option<f64>,
    /// The instrument hangs: every read runs into the device's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<bool>,
    /// The connection to the instrument is lost: every read fails at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected: Option<bool>,
    /// The next this many reads fail (transient errors), whatever the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_next: Option<u32>,
}

/// `sb.device_reader.control`: how device-reader replicas tell each other about a management
/// change (a device added, started, stopped, or its faults switched) that one of them
/// received, so every replica applies it. Every replica subscribes (no queue group); the
/// payload is internal to the device reader.
pub fn control_subject(subjects: &Subjects) -> String {
    format!("{}.{}.control", subjects.prefix(), api::SERVICE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn reading() -> DeviceReading {
        DeviceReading {
            timestamp: 1_234_567_890.123,
            module: 4,
            wavelength_nm: 1310.0,
            unit: "dBm".to_owned(),
            ch1_power: -17.85,
            ch2_power: -21.56,
            ch3_power: 6.94,
            ch4_power: -60.12,
            device_id: "opm-1".to_owned(),
        }
    }

    #[test]
    fn rooms_round_trip_and_reject_bad_ids() {
        let room = reading_room("opm-1", 4).unwrap();
        assert_eq!(room.as_str(), "devices.opm-1.m4");
        assert_eq!(parse_reading_room(room.as_str()), Some(("opm-1", 4)));
        assert!(reading_room("a.b", 1).is_err());
        assert!(reading_room("", 1).is_err());
        assert_eq!(parse_reading_room("devices"), None);
        assert_eq!(parse_reading_room("devices.opm-1.x4"), None);
        assert_eq!(parse_reading_room("nodes.opm-1.m4"), None);
    }

    #[test]
    fn flat_frames_have_seed_003s_shape() {
        let frame = reading().flat_frame();
        assert_eq!(frame["type"], "data");
        assert_eq!(frame["timestamp"], json!(1_234_567_890.123));
        assert_eq!(frame["module"], 4);
        assert_eq!(frame["wavelength_nm"], json!(1310.0));
        assert_eq!(frame["unit"], "dBm");
        assert_eq!(frame["ch4_power"], json!(-60.12));
        let fault = DeviceFault {
            message: "Hardware temporarily unavailable".to_owned(),
            timestamp: "2024-01-01T12:00:00Z".to_owned(),
            recoverable: true,
            error_count: 2,
            device_id: "opm-1".to_owned(),
            module: 4,
        };
        let frame = fault.flat_frame();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["recoverable"], true);
        assert_eq!(frame["error_count"], 2);
    }

    #[test]
    fn fault_requests_leave_absent_switches_out() {
        let request: FaultRequest =
            serde_json::from_value(json!({"device_id": "opm-1", "stuck": true})).unwrap();
        assert_eq!(request.stuck, Some(true));
        assert_eq!(request.fault_rate, None);
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(value, json!({"device_id": "opm-1", "stuck": true}));
        assert_eq!(
            control_subject(&Subjects::new("sb")),
            "sb.device_reader.control"
        );
    }

    #[test]
    fn status_serialises_state_in_snake_case() {
        let status = DeviceStatus {
            device_id: "opm-1".to_owned(),
            driver: "mock".to_owned(),
            modules: vec![1, 4],
            interval_ms: 100,
            state: DeviceState::Unavailable,
            last_reading_at: None,
            error_count: 5,
            last_error: Some("timeout".to_owned()),
            reader_id: Some("dr-1".to_owned()),
        };
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(value["state"], "unavailable");
        let back: DeviceStatus = serde_json::from_value(value).unwrap();
        assert_eq!(back, status);
    }
}

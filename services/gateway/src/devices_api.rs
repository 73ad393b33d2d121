//! `GET /api/ws/devices` and `GET /api/ws/devices/{id}`: the device reader's device list and
//! one device's status (what seed 003's "Checking… / Service Unavailable / Connected" badges
//! read), asked over the bus on `sb.api.device_reader.list_devices|get_device`.
//!
//! A malformed id is refused here with 400 `invalid_message`; no device reader answering
//! within `gateway.device_api_timeout` is 503 `unavailable`; the device reader's errors
//! (an unknown device, for one) keep their code, HTTP status and public reason.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use protocol::ErrorCode;
use protocol::device::{DeviceRequest, DeviceStatus, ListDevicesRequest, api, validate_device_id};

use crate::bus_api::{proxy, refuse};
use crate::state::Shared;

/// Who answers, for the 503's message.
const WHO: &str = "device reader";

/// `GET /api/ws/devices`: every device with its status.
pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Response {
    proxy::<_, Vec<DeviceStatus>>(
        &shared,
        (api::SERVICE, WHO),
        api::LIST_DEVICES,
        &ListDevicesRequest {},
        shared.config.device_api_timeout,
    )
    .await
}

/// `GET /api/ws/devices/{id}`: one device's status.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path(device_id): Path<String>,
) -> Response {
    if validate_device_id(&device_id).is_err() {
        return refuse(
            ErrorCode::InvalidMessage,
            "device id must be one segment of A-Z a-z 0-9 _ - (at most 64 bytes)",
        );
    }
    proxy::<_, DeviceStatus>(
        &shared,
        (api::SERVICE, WHO),
        api::GET_DEVICE,
        &DeviceRequest { device_id },
        shared.config.device_api_timeout,
    )
    .await
}

//! Putting a device's messages on the bus: readings (`data`) and hardware errors (`error`) to
//! `sb.room.devices.<id>.m<module>`, status changes (`device_status`) to `sb.room.devices`,
//! and channel powers as metric samples to `sb.ingest.metric`. Every message carries the
//! lease's fencing token (`Sb-Lease-Epoch`) and the trace context.

use bus::Headers;
use protocol::device::{
    DeviceFault, DeviceReading, DeviceStatus, EVENT_DATA, EVENT_ERROR, EVENT_STATUS, STATUS_ROOM,
    reading_room,
};
use protocol::envelope::{HEADER_TRACEPARENT, encode_bus};
use protocol::metrics::MetricSample;
use protocol::streams::HEADER_LEASE_EPOCH;
use protocol::{RoomEnvelope, RoomName};
use serde::Serialize;
use tracing::warn;

use crate::server::Context;

/// Publishes one reading with `seq` = its tick.
pub(crate) async fn reading(context: &Context, epoch: u64, tick: u64, reading: &DeviceReading) {
    let Ok(room) = reading_room(&reading.device_id, reading.module) else {
        return;
    };
    if room_message(context, epoch, &room, EVENT_DATA, Some(tick), reading).await {
        context
            .metrics
            .readings
            .with_label_values(&[reading.device_id.as_str()])
            .inc();
    } else {
        context
            .metrics
            .publish_errors
            .with_label_values(&["reading"])
            .inc();
    }
}

/// Publishes one hardware error.
pub(crate) async fn fault(context: &Context, epoch: u64, tick: u64, fault: &DeviceFault) {
    let Ok(room) = reading_room(&fault.device_id, fault.module) else {
        return;
    };
    if !room_message(context, epoch, &room, EVENT_ERROR, Some(tick), fault).await {
        context
            .metrics
            .publish_errors
            .with_label_values(&["error"])
            .inc();
    }
}

/// Publishes a status change to room `devices`.
pub(crate) async fn status(context: &Context, epoch: u64, status: &DeviceStatus) {
    let Ok(room) = RoomName::parse(STATUS_ROOM) else {
        return;
    };
    if !room_message(context, epoch, &room, EVENT_STATUS, None, status).await {
        context
            .metrics
            .publish_errors
            .with_label_values(&["status"])
            .inc();
    }
}

/// Sends `samples` as one list to `sb.ingest.metric`, if enabled and there are any.
pub(crate) async fn samples(context: &Context, epoch: u64, samples: &[MetricSample]) {
    if !context.section.emit_metric_samples || samples.is_empty() {
        return;
    }
    let payload = match encode_bus(&samples) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(error = %error, "metric samples cannot be encoded");
            return;
        }
    };
    let subject = context.subjects.ingest_metric();
    match context
        .bus
        .publish_with_headers(&subject, headers(epoch), payload.into())
        .await
    {
        Ok(()) => context
            .metrics
            .samples
            .inc_by(u64::try_from(samples.len()).unwrap_or(u64::MAX)),
        Err(error) => {
            context
                .metrics
                .publish_errors
                .with_label_values(&["samples"])
                .inc();
            warn!(error = %error, "metric samples not published");
        }
    }
}

/// The samples of one reading: `device.ch1_power` … `device.ch4_power` labelled with the
/// device, module and unit.
pub(crate) fn reading_samples(reading: &DeviceReading, ts_ms: u64) -> Vec<MetricSample> {
    let module = reading.module.to_string();
    reading
        .channels()
        .iter()
        .enumerate()
        .map(|(index, value)| {
            MetricSample::new(format!("device.ch{}_power", index + 1), *value, ts_ms)
                .with_label("device", reading.device_id.as_str())
                .with_label("module", module.as_str())
                .with_label("unit", reading.unit.as_str())
        })
        .collect()
}

/// Publishes a room envelope; returns whether the bus took it (failures are logged here).
async fn room_message(
    context: &Context,
    epoch: u64,
    room: &RoomName,
    event: &str,
    seq: Option<u64>,
    data: &impl Serialize,
) -> bool {
    let data = match serde_json::to_value(data) {
        Ok(data) => data,
        Err(error) => {
            warn!(room = room.as_str(), error = %error, "device message cannot be encoded");
            return false;
        }
    };
    let envelope = RoomEnvelope {
        event: event.to_owned(),
        data,
        timestamp: Some(protocol::time::now_rfc3339()),
        seq,
        priority: None,
    };
    let payload = match encode_bus(&envelope) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(room = room.as_str(), error = %error, "device message cannot be encoded");
            return false;
        }
    };
    match context
        .bus
        .publish_with_headers(&context.subjects.room(room), headers(epoch), payload.into())
        .await
    {
        Ok(()) => true,
        Err(error) => {
            warn!(room = room.as_str(), error = %error, "device message not published");
            false
        }
    }
}

fn headers(epoch: u64) -> Headers {
    let mut headers = Headers::new();
    headers.insert(HEADER_LEASE_EPOCH, epoch.to_string());
    if let Some(traceparent) = telemetry::current_traceparent() {
        headers.insert(HEADER_TRACEPARENT, traceparent);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_name_channels_and_label_device_module_unit() {
        let reading = DeviceReading {
            timestamp: 1.5,
            module: 4,
            wavelength_nm: 1310.0,
            unit: "dBm".into(),
            ch1_power: -1.0,
            ch2_power: -2.0,
            ch3_power: -3.0,
            ch4_power: -4.0,
            device_id: "opm-1".into(),
        };
        let samples = reading_samples(&reading, 1500);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[2].metric, "device.ch3_power");
        assert_eq!(samples[2].value, -3.0);
        assert!(protocol::metrics::is_valid_metric_name(&samples[0].metric));
        assert_eq!(samples[0].labels["device"], "opm-1");
        assert_eq!(samples[0].labels["module"], "4");
        assert_eq!(samples[0].labels["unit"], "dBm");
    }
}

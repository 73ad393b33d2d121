//! Putting things on the bus: room envelopes on `sb.room.<room>` with the lease epoch in a
//! header, and metric sample lists on `sb.ingest.metric`.

use bus::Headers;
use protocol::envelope::{HEADER_TRACEPARENT, encode_bus};
use protocol::metrics::MetricSample;
use protocol::streams::HEADER_LEASE_EPOCH;
use protocol::{RoomEnvelope, RoomName};
use store::Lease;
use tracing::warn;

use crate::state::Shared;

/// One room message to publish.
pub(crate) struct RoomPublish<'a> {
    pub room: &'a str,
    pub event: &'a str,
    pub data: serde_json::Value,
    pub seq: Option<u64>,
    pub priority: Option<&'a str>,
}

/// Publishes `message` under `lease`. Failures are logged and counted here, once; the
/// stream moves on to its next tick either way, since a late duplicate would be worse than
/// a gap.
pub(crate) async fn publish_room(shared: &Shared, lease: &Lease, message: RoomPublish<'_>) {
    let room = match RoomName::parse(message.room) {
        Ok(room) => room,
        Err(error) => {
            warn!(room = message.room, error = %error, "room name refused");
            return;
        }
    };
    let envelope = RoomEnvelope {
        event: message.event.to_owned(),
        data: message.data,
        timestamp: Some(protocol::time::now_rfc3339()),
        seq: message.seq,
        priority: message.priority.map(str::to_owned),
    };
    let payload = match encode_bus(&envelope) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(room = message.room, error = %error, "room message cannot be encoded");
            return;
        }
    };
    let subject = shared.subjects.room(&room);
    match shared
        .bus
        .publish_with_headers(&subject, headers(lease), payload.into())
        .await
    {
        Ok(()) => shared
            .metrics
            .room_messages
            .with_label_values(&[message.room])
            .inc(),
        Err(error) => {
            shared
                .metrics
                .publish_errors
                .with_label_values(&["room"])
                .inc();
            warn!(room = message.room, error = %error, "room message not published");
        }
    }
}

/// Sends `samples` as one list to `sb.ingest.metric`, if enabled and there are any.
pub(crate) async fn publish_samples(shared: &Shared, lease: &Lease, samples: &[MetricSample]) {
    if !shared.config.emit_metric_samples || samples.is_empty() {
        return;
    }
    let payload = match encode_bus(&samples) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(error = %error, "metric samples cannot be encoded");
            return;
        }
    };
    let subject = shared.subjects.ingest_metric();
    match shared
        .bus
        .publish_with_headers(&subject, headers(lease), payload.into())
        .await
    {
        Ok(()) => shared
            .metrics
            .samples
            .inc_by(crate::registry::as_u64(samples.len())),
        Err(error) => {
            shared
                .metrics
                .publish_errors
                .with_label_values(&["samples"])
                .inc();
            warn!(error = %error, "metric samples not published");
        }
    }
}

fn headers(lease: &Lease) -> Headers {
    let mut headers = Headers::new();
    headers.insert(HEADER_LEASE_EPOCH, lease.fencing_token.to_string());
    if let Some(traceparent) = telemetry::current_traceparent() {
        headers.insert(HEADER_TRACEPARENT, traceparent);
    }
    headers
}

//! The management API over NATS: `sb.api.device_reader.<method>` request/reply, queue group
//! `sb-device-reader-api`, MessagePack (or JSON) request and [`ApiReply`] reply, like the
//! aggregator's query API. The HTTP API (`/v1/devices`) calls the same functions.
//!
//! Changes (`add_device`, `start_device`, `stop_device`, `inject_fault`) are applied on the
//! answering replica and sent to every other one on `sb.device_reader.control`.

use bus::{Bus, Headers, Message, Subscription};
use protocol::device::{DeviceRequest, DeviceStatus, FaultRequest, api, control_subject};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::ApiReply;
use protocol::{ErrorCode, Subjects};
use serde::Serialize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::DeviceConfig;
use crate::devices::{Control, ControlMessage, DeviceError};
use crate::error::RunError;
use crate::server::App;

/// Subscribes to every method of the API.
pub(crate) async fn subscribe(
    bus: &Bus,
    subjects: &Subjects,
) -> Result<Subscription, bus::SubscribeError> {
    bus.queue_subscribe(&subjects.api(api::SERVICE, "*"), api::QUEUE_GROUP)
        .await
}

/// The code and public message of a refusal.
pub(crate) fn error_code(error: &DeviceError) -> ErrorCode {
    match error {
        DeviceError::Invalid(_) => ErrorCode::InvalidMessage,
        DeviceError::NotFound(_) => ErrorCode::DeviceNotFound,
    }
}

/// Applies `control` here and tells the other replicas.
pub(crate) async fn manage(app: &App, control: Control) -> Result<DeviceStatus, DeviceError> {
    let status = app.devices.apply(&control)?;
    let message = ControlMessage {
        origin: app.context.instance_id.clone(),
        control,
    };
    match encode_bus(&message) {
        Ok(payload) => {
            let subject = control_subject(&app.context.subjects);
            if let Err(error) = app.context.bus.publish(&subject, payload.into()).await {
                warn!(error = %error, "management change not sent to the other replicas");
            }
        }
        Err(error) => warn!(error = %error, "management change cannot be encoded"),
    }
    Ok(status)
}

/// Applies changes other replicas received, until `shutdown`.
/// [`RunError::InputEnded`] when the bus ends the subscription (its connection closed for good).
pub(crate) async fn follow_control(
    app: Arc<App>,
    mut changes: Subscription,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = changes.next() => message,
        };
        let Some(message) = message else {
            return Err(RunError::InputEnded("device control"));
        };
        let Ok(change) = decode_bus::<ControlMessage>(&message.payload) else {
            warn!("malformed device control message ignored");
            continue;
        };
        if change.origin == app.context.instance_id {
            continue;
        }
        if let Err(error) = app.devices.apply(&change.control) {
            debug!(origin = %change.origin, error = %error, "device change from another replica not applied");
        }
    }
}

/// Takes the statuses other replicas publish to room `devices`, until `shutdown`.
/// [`RunError::InputEnded`] when the bus ends the subscription (its connection closed for good).
pub(crate) async fn follow_status(
    app: Arc<App>,
    mut statuses: Subscription,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = statuses.next() => message,
        };
        let Some(message) = message else {
            return Err(RunError::InputEnded("device statuses"));
        };
        let Ok(envelope) = decode_bus::<protocol::RoomEnvelope>(&message.payload) else {
            continue;
        };
        if envelope.event != protocol::device::EVENT_STATUS {
            continue;
        }
        if let Ok(status) = serde_json::from_value::<DeviceStatus>(envelope.data) {
            app.devices.observe(status);
        }
    }
}

/// Answers requests until `shutdown`.
/// [`RunError::InputEnded`] when the bus ends the subscription (its connection closed for good).
pub(crate) async fn serve(
    app: Arc<App>,
    mut requests: Subscription,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            request = requests.next() => request,
        };
        let Some(request) = request else {
            return Err(RunError::InputEnded("management api"));
        };
        let (payload, outcome, method) = answer(&app, &request).await;
        app.context
            .metrics
            .api_requests
            .with_label_values(&["nats", method, outcome])
            .inc();
        let Some(payload) = payload else {
            continue;
        };
        if let Err(error) = app
            .context
            .bus
            .respond(&request, Headers::new(), payload.into())
            .await
        {
            debug!(error = %error, subject = %request.subject, "management reply not sent");
        }
    }
}

async fn answer(app: &App, request: &Message) -> (Option<Vec<u8>>, &'static str, &'static str) {
    let method = request.subject.rsplit('.').next().unwrap_or_default();
    let payload = &request.payload;
    let device_request = || {
        decode_bus::<DeviceRequest>(payload)
            .map_err(|_| DeviceError::Invalid("malformed request: device_id is required".into()))
    };
    match method {
        api::LIST_DEVICES => encode(Ok(app.devices.list()), api::LIST_DEVICES),
        api::GET_DEVICE => encode(
            device_request().and_then(|r| app.devices.get(&r.device_id)),
            api::GET_DEVICE,
        ),
        api::ADD_DEVICE => {
            let result = match decode_bus::<DeviceConfig>(payload) {
                Ok(device) => manage(app, Control::Add(Box::new(device))).await,
                Err(error) => Err(DeviceError::Invalid(format!(
                    "malformed device configuration: {error}"
                ))),
            };
            encode(result, api::ADD_DEVICE)
        }
        api::START_DEVICE => {
            let result = match device_request() {
                Ok(r) => manage(app, Control::Start(r.device_id)).await,
                Err(error) => Err(error),
            };
            encode(result, api::START_DEVICE)
        }
        api::STOP_DEVICE => {
            let result = match device_request() {
                Ok(r) => manage(app, Control::Stop(r.device_id)).await,
                Err(error) => Err(error),
            };
            encode(result, api::STOP_DEVICE)
        }
        api::INJECT_FAULT => {
            let result = match decode_bus::<FaultRequest>(payload) {
                Ok(request) => manage(app, Control::Fault(request)).await,
                Err(_) => Err(DeviceError::Invalid("malformed fault request".into())),
            };
            encode(result, api::INJECT_FAULT)
        }
        _ => {
            let reply: ApiReply<()> = ApiReply::error(ErrorCode::InvalidMessage, "unknown method");
            let (payload, outcome) = encode_reply(&reply);
            (payload, outcome, "unknown")
        }
    }
}

fn encode<T: Serialize>(
    result: Result<T, DeviceError>,
    method: &'static str,
) -> (Option<Vec<u8>>, &'static str, &'static str) {
    let reply = match result {
        Ok(value) => ApiReply::ok(value),
        Err(error) => ApiReply::error(error_code(&error), error.to_string()),
    };
    let (payload, outcome) = encode_reply(&reply);
    (payload, outcome, method)
}

fn encode_reply<T: Serialize>(reply: &ApiReply<T>) -> (Option<Vec<u8>>, &'static str) {
    let outcome = if reply.error.is_some() { "error" } else { "ok" };
    match encode_bus(reply) {
        Ok(bytes) => (Some(bytes), outcome),
        Err(error) => {
            warn!(error = %error, "management reply cannot be encoded");
            (None, "error")
        }
    }
}

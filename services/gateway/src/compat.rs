//! Seed 003's compatibility endpoints, for instrument clients written against it:
//!
//! - `GET /api/v1/ws/v2/power?device=<id>&module=<n>&interval=<seconds>`: one device module's
//!   room (`devices.<id>.m<n>`), conflated to the connection's own interval, in seed 003's
//!   flat frames (`data`, `error`), with `heartbeat` and `reconnect` as seed 003 shows them.
//!   `device` may be left out when the device reader knows exactly one device.
//! - `GET /api/v1/ws/v2/health`: `ping` → `pong`, and heartbeats.
//!
//! Refusals follow `/api/ws/connect`: parameters that cannot work (a bad interval, module or
//! device id, an undeterminable device) are HTTP errors before the upgrade, with the
//! protocol's error JSON; token problems and a room the token does not allow are told on the
//! WebSocket (an `error` frame, then the code's close code), where a browser can read them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auth::{Claims, Role};
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use http_front::ConnectionSlot;
use protocol::device::{self, DeviceStatus, ListDevicesRequest, MAX_MODULE, api};
use protocol::message::MIN_DELIVERY_INTERVAL_MS;
use protocol::{Codec, ErrorCode};
use tracing::debug;

use crate::bus_api::{AskError, ask, refuse};
use crate::config::GatewayConfig;
use crate::handshake::{
    admission, admit, bearer_token, holding, refuse as refuse_socket, sized, verify_token,
};
use crate::http::error_response;
use crate::session;
use crate::state::Shared;

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The `sub` of an anonymous health probe (when `gateway.health_requires_token` is off).
const HEALTH_PROBE_SUB: &str = "health-probe";

/// 9999-12-31T23:59:59Z: an anonymous probe's connection never expires.
const NEVER_EXPIRES: u64 = 253_402_300_799;

/// What a power stream asked for.
#[derive(Debug, PartialEq)]
struct PowerParams {
    device: Option<String>,
    module: u16,
    interval: Duration,
}

/// Reads `device`, `module` and `interval`, or says in one sentence what is wrong.
fn power_params(
    params: &HashMap<String, String>,
    config: &GatewayConfig,
) -> Result<PowerParams, String> {
    let device = match params.get("device").map(String::as_str) {
        None | Some("") => None,
        Some(id) if device::validate_device_id(id).is_ok() => Some(id.to_owned()),
        Some(_) => {
            return Err(
                "device must be one segment of A-Z a-z 0-9 _ - (at most 64 bytes)".to_owned(),
            );
        }
    };
    let module_rule = format!("module must be a whole number from 0 to {MAX_MODULE}");
    let module = match params.get("module").map(|module| module.parse::<u16>()) {
        Some(Ok(module)) if module <= MAX_MODULE => module,
        Some(_) => return Err(module_rule),
        None => return Err(format!("the module parameter is required ({module_rule})")),
    };
    let floor = Duration::from_millis(MIN_DELIVERY_INTERVAL_MS);
    let ceiling = config.max_delivery_interval;
    let interval = match params.get("interval") {
        None => config.power_default_interval,
        Some(raw) => match raw
            .parse::<f64>()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        {
            Some(interval) if interval >= floor && interval <= ceiling => interval,
            _ => {
                return Err(format!(
                    "interval must be a number of seconds from {} to {}",
                    floor.as_secs_f64(),
                    ceiling.as_secs_f64()
                ));
            }
        },
    };
    Ok(PowerParams {
        device,
        module,
        interval,
    })
}

/// `GET /api/v1/ws/v2/power`: seed 003's instrument stream.
pub(crate) async fn power(
    State(shared): State<Arc<Shared>>,
    Extension(slot): Extension<ConnectionSlot>,
    params: Params,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(Query(params)) = params else {
        return refuse(ErrorCode::InvalidMessage, "malformed query string");
    };
    let asked = match power_params(&params, &shared.config) {
        Ok(asked) => asked,
        Err(reason) => {
            shared
                .metrics
                .bad_input
                .with_label_values(&[ErrorCode::InvalidMessage.as_str()])
                .inc();
            return refuse(ErrorCode::InvalidMessage, &reason);
        }
    };
    let permit = match admission(&shared, &slot, &headers) {
        Ok(permit) => permit,
        Err(code) => return error_response(code),
    };
    let token = params
        .get("token")
        .cloned()
        .or_else(|| bearer_token(&headers));
    let verdict = match admit(&shared, token.as_deref()).await {
        Ok(claims) => {
            let device_id = match asked.device {
                Some(device_id) => device_id,
                None => match only_device(&shared, asked.module).await {
                    Ok(device_id) => device_id,
                    Err(response) => {
                        slot.put_back(permit);
                        return response;
                    }
                },
            };
            match device::reading_room(&device_id, asked.module) {
                Ok(room) if claims.can_subscribe(room.as_str()) => Ok((claims, room)),
                Ok(_) => Err(ErrorCode::Forbidden),
                Err(_) => {
                    slot.put_back(permit);
                    return refuse(ErrorCode::InvalidMessage, "device id is not valid");
                }
            }
        }
        Err(code) => Err(code),
    };
    let interval = asked.interval;
    let task_shared = shared.clone();
    sized(upgrade, &shared.config)
        .on_failed_upgrade(|error| debug!(error = %error, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let tasks = task_shared.drain.tasks.clone();
            match verdict {
                Ok((claims, room)) => {
                    let stream = session::run_power(task_shared, socket, claims, room, interval);
                    tasks.spawn(holding(permit, stream));
                }
                Err(code) => {
                    tasks.spawn(holding(permit, refuse_socket(socket, Codec::Json, code)));
                }
            }
            std::future::ready(())
        })
}

/// `GET /api/v1/ws/v2/health`: `ping` → `pong`, heartbeats. Without a token unless
/// `gateway.health_requires_token`; never counted against the per-user connection rate (a
/// load balancer probes more often than a user connects).
pub(crate) async fn health(
    State(shared): State<Arc<Shared>>,
    Extension(slot): Extension<ConnectionSlot>,
    params: Params,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let permit = match admission(&shared, &slot, &headers) {
        Ok(permit) => permit,
        Err(code) => return error_response(code),
    };
    let verdict = if shared.config.health_requires_token {
        let token = params
            .ok()
            .and_then(|Query(params)| params.get("token").cloned())
            .or_else(|| bearer_token(&headers));
        verify_token(&shared, token.as_deref()).await
    } else {
        Ok(anonymous_probe())
    };
    let task_shared = shared.clone();
    sized(upgrade, &shared.config)
        .on_failed_upgrade(|error| debug!(error = %error, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let tasks = task_shared.drain.tasks.clone();
            match verdict {
                Ok(claims) => {
                    let probe = session::run_health(task_shared, socket, claims);
                    tasks.spawn(holding(permit, probe));
                }
                Err(code) => {
                    tasks.spawn(holding(permit, refuse_socket(socket, Codec::Json, code)));
                }
            }
            std::future::ready(())
        })
}

/// The claims of a health probe without a token: no rooms, no publishing.
fn anonymous_probe() -> Claims {
    Claims {
        sub: HEALTH_PROBE_SUB.to_owned(),
        exp: NEVER_EXPIRES,
        iat: None,
        rooms: Vec::new(),
        publish: Vec::new(),
        role: Role::Viewer,
        node_id: None,
    }
}

/// The device when the client named none: the device reader's only device, or an HTTP
/// error saying why there is no single answer.
async fn only_device(shared: &Shared, module: u16) -> Result<String, Response> {
    let listed = ask::<_, Vec<DeviceStatus>>(
        shared,
        api::SERVICE,
        api::LIST_DEVICES,
        &ListDevicesRequest {},
        shared.config.device_api_timeout,
    )
    .await;
    match listed {
        Ok(devices) => match devices.as_slice() {
            [only] if only.modules.contains(&module) => Ok(only.device_id.clone()),
            [only] => Err(refuse(
                ErrorCode::InvalidMessage,
                &format!("device {} has no module {module}", only.device_id),
            )),
            [] => Err(refuse(
                ErrorCode::InvalidMessage,
                "no device is configured; name one with device=",
            )),
            several => {
                let names: Vec<&str> = several
                    .iter()
                    .take(10)
                    .map(|status| status.device_id.as_str())
                    .collect();
                Err(refuse(
                    ErrorCode::InvalidMessage,
                    &format!(
                        "{} devices are configured ({}); name one with device=",
                        several.len(),
                        names.join(", ")
                    ),
                ))
            }
        },
        Err(AskError::NoAnswer) => Err(refuse(
            ErrorCode::Unavailable,
            "no device reader answered, so the device cannot be chosen; name it with device=",
        )),
        Err(other) => Err(other.into_response("device reader")),
    }
}

/// Accepts `room` as a device room name (for tests of the parameters).
#[cfg(test)]
fn room_of(params: &PowerParams) -> Option<protocol::RoomName> {
    device::reading_room(params.device.as_deref()?, params.module).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<PowerParams, String> {
        let params = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        power_params(&params, &GatewayConfig::default())
    }

    #[test]
    fn power_parameters_are_read_and_bounded() {
        let Ok(asked) = parse(&[("device", "opm-1"), ("module", "4"), ("interval", "0.1")]) else {
            panic!("valid parameters");
        };
        assert_eq!(asked.interval, Duration::from_millis(100));
        assert_eq!(
            room_of(&asked).map(|room| room.as_str().to_owned()),
            Some("devices.opm-1.m4".to_owned())
        );
        let Ok(default) = parse(&[("module", "1")]) else {
            panic!("device and interval are optional");
        };
        assert_eq!(default.device, None);
        assert_eq!(default.interval, Duration::from_millis(100));
        for bad in ["0.01", "0", "-1", "61", "NaN", "inf", "fast", ""] {
            let Err(reason) = parse(&[("module", "1"), ("interval", bad)]) else {
                panic!("interval {bad:?} is refused");
            };
            assert!(reason.contains("interval"), "{reason}");
        }
        assert!(parse(&[("module", "65")]).is_err());
        assert!(parse(&[("module", "x")]).is_err());
        assert!(parse(&[]).is_err());
        assert!(parse(&[("module", "1"), ("device", "a.b")]).is_err());
    }
}

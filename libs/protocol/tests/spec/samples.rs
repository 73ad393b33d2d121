//! One sample of every message type, built from the Rust types: with every field set, and
//! with every optional field left out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use switchboard_protocol::device::{DeviceFault, DeviceReading, DeviceState, DeviceStatus};
use switchboard_protocol::time::{now_rfc3339, now_unix_ms};
use switchboard_protocol::{
    Ack, ClientMessage, CommandReply, CommandRequest, ErrorCode, NodeState, RoomEnvelope,
    RoomMessage, ServerMessage,
};

use crate::support::Sample;

/// The `sb.ingest.metric` payload. `protocol` has no type for it yet (the aggregator brings
/// one); this mirror of the subject contract stands in until then.
#[derive(Serialize)]
struct MetricSample {
    metric: String,
    value: f64,
    ts_ms: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

fn device_reading() -> DeviceReading {
    DeviceReading {
        timestamp: now_unix_ms() as f64 / 1000.0,
        module: 4,
        wavelength_nm: 1310.0,
        unit: "dBm".into(),
        ch1_power: -17.85,
        ch2_power: -21.56,
        ch3_power: 6.94,
        ch4_power: -60.12,
        device_id: "opm-1".into(),
    }
}

fn device_fault() -> DeviceFault {
    DeviceFault {
        message: "Hardware temporarily unavailable".into(),
        timestamp: now_rfc3339(),
        recoverable: true,
        error_count: 2,
        device_id: "opm-1".into(),
        module: 4,
    }
}

/// A device's status; with `history`, every optional field set.
fn device_status(history: bool) -> DeviceStatus {
    DeviceStatus {
        device_id: "opm-1".into(),
        driver: "mock".into(),
        modules: vec![1, 4],
        interval_ms: 100,
        state: if history {
            DeviceState::Unavailable
        } else {
            DeviceState::Starting
        },
        last_reading_at: history.then(|| now_unix_ms() as f64 / 1000.0),
        error_count: if history { 5 } else { 0 },
        last_error: history.then(|| "timeout".to_owned()),
        reader_id: history.then(|| "dr-1".to_owned()),
    }
}

fn full_node_state() -> NodeState {
    NodeState {
        node_id: "node-7".into(),
        layer: "edge".into(),
        update_count: 42,
        last_sync_time: Some(now_rfc3339()),
        last_sync_count: 3,
        current_data: json!({"temperature": 21.5}),
        operation_log: vec![json!({"op": "sync", "items": 3})],
    }
}

/// One sample of every message type with every field set.
pub fn samples_with_every_field() -> Vec<Sample> {
    let mut samples = base_samples_with_every_field();
    samples.extend(crate::node_monitoring::samples_with_every_field());
    samples.extend(crate::direct::samples_with_every_field());
    samples
}

fn base_samples_with_every_field() -> Vec<Sample> {
    let mut since = BTreeMap::new();
    since.insert("alerts".to_owned(), 41);
    vec![
        Sample::frame(
            "subscribe.schema.json",
            "subscribe",
            &ClientMessage::Subscribe {
                rooms: vec!["alerts".into(), "node.a-1.cpu".into()],
                since: Some(since),
                min_interval_ms: Some(250),
            },
        ),
        Sample::frame(
            "unsubscribe.schema.json",
            "unsubscribe",
            &ClientMessage::Unsubscribe {
                rooms: vec!["nodes".into()],
            },
        ),
        Sample::frame("ping.schema.json", "ping", &ClientMessage::Ping),
        Sample::frame(
            "refresh.schema.json",
            "refresh",
            &ClientMessage::Refresh {
                token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln".into(),
            },
        ),
        Sample::frame(
            "publish.schema.json",
            "publish",
            &ClientMessage::Publish {
                room: "chat.lobby".into(),
                event: "said".into(),
                data: json!({"text": "hello"}),
            },
        ),
        Sample::frame(
            "node_state.schema.json",
            "node_state",
            &ClientMessage::NodeState(full_node_state()),
        ),
        Sample::frame(
            "ack.schema.json",
            "ack",
            &ClientMessage::Ack(Ack {
                id: "cmd-1".into(),
                ok: false,
                result: Some(json!({"partial": true})),
                error: Some("disk full".into()),
            }),
        ),
        Sample::frame(
            "connection_established.schema.json",
            "connection_established",
            &ServerMessage::ConnectionEstablished {
                connection_id: "6f1c2a9e-5b1d-4c8e-9d51-2f8a4b7c3e10".into(),
                server_id: "gateway-0".into(),
                heartbeat_interval_ms: 30_000,
                timestamp: now_rfc3339(),
            },
        ),
        Sample::frame(
            "subscribed.schema.json",
            "subscribed",
            &ServerMessage::Subscribed {
                rooms: vec!["alerts".into()],
                recovered: Some(true),
            },
        ),
        Sample::frame(
            "unsubscribed.schema.json",
            "unsubscribed",
            &ServerMessage::Unsubscribed {
                rooms: vec!["nodes".into()],
                reason: Some(ErrorCode::Forbidden),
            },
        ),
        Sample::frame(
            "refreshed.schema.json",
            "refreshed",
            &ServerMessage::Refreshed { exp: 1_761_131_000 },
        ),
        Sample::frame(
            "pong.schema.json",
            "pong",
            &ServerMessage::Pong {
                timestamp: now_rfc3339(),
            },
        ),
        Sample::frame(
            "heartbeat.schema.json",
            "heartbeat",
            &ServerMessage::Heartbeat {
                timestamp: now_rfc3339(),
                active_streams: 3,
            },
        ),
        Sample::frame(
            "error.schema.json",
            "error",
            &ServerMessage::error(ErrorCode::Forbidden, Some("admin".into())),
        ),
        Sample::frame(
            "reconnect.schema.json",
            "reconnect",
            &ServerMessage::Reconnect {
                reason: "server shutting down".into(),
                retry_after: 4.2,
            },
        ),
        Sample::frame(
            "command.schema.json",
            "command",
            &ServerMessage::Command {
                id: "cmd-1".into(),
                name: "set_interval".into(),
                params: json!({"interval_ms": 5000}),
            },
        ),
        Sample::frame(
            "room_message.schema.json",
            "room_message",
            &RoomMessage {
                event: "alert".into(),
                room: "alerts".into(),
                data: json!({"metric": "cpu_usage", "value": 95.0, "threshold": 90.0}),
                timestamp: now_rfc3339(),
                seq: Some(42),
                priority: Some("critical".into()),
            },
        ),
        Sample::bus(
            "room_envelope.schema.json",
            "room_envelope",
            &RoomEnvelope {
                event: "alert".into(),
                data: json!({"metric": "cpu_usage", "value": 95.0}),
                timestamp: Some(now_rfc3339()),
                seq: Some(42),
                priority: Some("warning".into()),
            },
        ),
        Sample::bus(
            "command_request.schema.json",
            "command_request",
            &CommandRequest {
                id: Some("cmd-1".into()),
                name: "set_interval".into(),
                params: json!({"interval_ms": 5000}),
            },
        ),
        Sample::bus(
            "command_reply.schema.json",
            "command_reply",
            &CommandReply {
                id: "cmd-1".into(),
                ok: false,
                result: Some(json!({"partial": true})),
                error: Some(ErrorCode::CommandTimeout.as_str().into()),
            },
        ),
        Sample::bus(
            "metric_sample.schema.json",
            "metric_sample",
            &MetricSample {
                metric: "betanet.latency_ms".into(),
                value: 25.5,
                ts_ms: now_unix_ms(),
                labels: BTreeMap::from([("node_id".to_owned(), "node-7".to_owned())]),
            },
        ),
        Sample::bus(
            "common.schema.json#/$defs/node_state_report",
            "node_state_report",
            &full_node_state(),
        ),
        Sample::bus(
            "device_reading.schema.json",
            "device reading",
            &device_reading(),
        ),
        Sample::bus("device_fault.schema.json", "device fault", &device_fault()),
        Sample::bus(
            "device_status.schema.json",
            "device status",
            &device_status(true),
        ),
        Sample::frame(
            "power_data.schema.json",
            "seed 003 data frame",
            &device_reading().flat_frame(),
        ),
        Sample::frame(
            "power_error.schema.json",
            "seed 003 error frame",
            &device_fault().flat_frame(),
        ),
    ]
}

/// Samples of the message types with optional fields, every optional field left out.
pub fn samples_with_optional_fields_absent() -> Vec<Sample> {
    let mut samples = base_samples_with_optional_fields_absent();
    samples.extend(crate::node_monitoring::samples_with_optional_fields_absent());
    samples.extend(crate::direct::samples_with_optional_fields_absent());
    samples
}

fn base_samples_with_optional_fields_absent() -> Vec<Sample> {
    vec![
        Sample::frame(
            "subscribe.schema.json",
            "subscribe without since",
            &ClientMessage::Subscribe {
                rooms: vec!["nodes".into()],
                since: None,
                min_interval_ms: None,
            },
        ),
        Sample::frame(
            "subscribe.schema.json",
            "subscribe to no rooms",
            &ClientMessage::Subscribe {
                rooms: vec![],
                since: None,
                min_interval_ms: None,
            },
        ),
        Sample::frame(
            "publish.schema.json",
            "publish without data",
            &ClientMessage::Publish {
                room: "chat".into(),
                event: "said".into(),
                data: Value::Null,
            },
        ),
        Sample::frame(
            "node_state.schema.json",
            "node_state with defaults",
            &ClientMessage::NodeState(NodeState {
                node_id: "node-7".into(),
                ..NodeState::default()
            }),
        ),
        Sample::frame(
            "ack.schema.json",
            "ack without result or error",
            &ClientMessage::Ack(Ack {
                id: "cmd-1".into(),
                ok: true,
                result: None,
                error: None,
            }),
        ),
        Sample::frame(
            "subscribed.schema.json",
            "subscribed without recovered",
            &ServerMessage::Subscribed {
                rooms: vec!["nodes".into()],
                recovered: None,
            },
        ),
        Sample::frame(
            "unsubscribed.schema.json",
            "unsubscribed without reason",
            &ServerMessage::Unsubscribed {
                rooms: vec!["nodes".into()],
                reason: None,
            },
        ),
        Sample::frame(
            "error.schema.json",
            "error without room",
            &ServerMessage::error(ErrorCode::Internal, None),
        ),
        Sample::frame(
            "command.schema.json",
            "command without params",
            &ServerMessage::Command {
                id: "cmd-1".into(),
                name: "ping".into(),
                params: Value::Null,
            },
        ),
        Sample::frame(
            "room_message.schema.json",
            "room message without seq or priority",
            &RoomMessage {
                event: "node_status_update".into(),
                room: "nodes".into(),
                data: Value::Null,
                timestamp: now_rfc3339(),
                seq: None,
                priority: None,
            },
        ),
        Sample::bus(
            "room_envelope.schema.json",
            "room envelope with only a type",
            &RoomEnvelope {
                event: "task_progress".into(),
                data: Value::Null,
                timestamp: None,
                seq: None,
                priority: None,
            },
        ),
        Sample::bus(
            "command_request.schema.json",
            "command request without id",
            &CommandRequest {
                id: None,
                name: "ping".into(),
                params: Value::Null,
            },
        ),
        Sample::bus(
            "command_reply.schema.json",
            "command reply without result or error",
            &CommandReply {
                id: "cmd-1".into(),
                ok: true,
                result: None,
                error: None,
            },
        ),
        Sample::bus(
            "metric_sample.schema.json",
            "metric samples in an array, without labels",
            &vec![
                MetricSample {
                    metric: "device.ch1_power".into(),
                    value: -17.85,
                    ts_ms: now_unix_ms(),
                    labels: BTreeMap::new(),
                },
                MetricSample {
                    metric: "device.ch2_power".into(),
                    value: -21.56,
                    ts_ms: now_unix_ms(),
                    labels: BTreeMap::new(),
                },
            ],
        ),
        Sample::bus(
            "common.schema.json#/$defs/node_state_report",
            "node state report with defaults",
            &NodeState {
                node_id: "node-7".into(),
                ..NodeState::default()
            },
        ),
        Sample::bus(
            "device_status.schema.json",
            "device status never read",
            &device_status(false),
        ),
    ]
}

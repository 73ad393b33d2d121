//! Invalid messages the schemas must refuse.

use serde_json::{Value, json};

use crate::support::Schemas;

/// One invalid message a line: `schema | what is wrong | message`.
const INVALID: &str = r#"
subscribe | room with a space | {"type": "subscribe", "rooms": ["bad room"]}
subscribe | room with an empty segment | {"type": "subscribe", "rooms": ["a..b"]}
subscribe | wildcard room | {"type": "subscribe", "rooms": ["nodes.*"]}
subscribe | empty room name | {"type": "subscribe", "rooms": [""]}
subscribe | rooms missing | {"type": "subscribe"}
subscribe | rooms not a list | {"type": "subscribe", "rooms": "nodes"}
subscribe | negative since | {"type": "subscribe", "rooms": ["a"], "since": {"a": -1}}
subscribe | since for an invalid room | {"type": "subscribe", "rooms": ["a"], "since": {"a b": 1}}
subscribe | another message's type | {"type": "unsubscribe", "rooms": ["a"]}
ping | unknown field | {"type": "ping", "payload": 1}
publish | reserved event name | {"type": "publish", "room": "a", "event": "pong"}
publish | invalid room | {"type": "publish", "room": "a/b", "event": "said"}
node_state | node id with a dot | {"type": "node_state", "node_id": "node.1"}
node_state | node id missing | {"type": "node_state", "layer": "edge"}
node_state | unknown field | {"type": "node_state", "node_id": "n1", "cpu": 3}
ack | id missing | {"type": "ack", "ok": true}
refresh | token missing | {"type": "refresh"}
refresh | token not a string | {"type": "refresh", "token": 7}
refreshed | exp missing | {"type": "refreshed"}
refreshed | negative exp | {"type": "refreshed", "exp": -1}
unsubscribed | reason not an error code | {"type": "unsubscribed", "rooms": ["a"], "reason": "gone"}
error | unknown error code | {"type": "error", "code": "teapot", "message": "m", "recoverable": true, "timestamp": "2025-10-22T10:30:00Z"}
error | timestamp missing | {"type": "error", "code": "internal", "message": "m", "recoverable": true}
connection_established | server_id missing | {"type": "connection_established", "connection_id": "c", "heartbeat_interval_ms": 30000, "timestamp": "2025-10-22T10:30:00Z"}
heartbeat | timestamp without offset (seed 003's form) | {"type": "heartbeat", "timestamp": "2024-01-01T12:00:00", "active_streams": 1}
reconnect | negative retry_after | {"type": "reconnect", "reason": "r", "retry_after": -1}
unsubscribed | invalid room echoed back | {"type": "unsubscribed", "rooms": ["bad room"]}
room_message | control type as event | {"type": "heartbeat", "room": "a", "data": null, "timestamp": "2025-10-22T10:30:00Z"}
room_message | unknown priority | {"type": "alert", "room": "a", "data": null, "timestamp": "2025-10-22T10:30:00Z", "priority": "urgent"}
room_message | data missing | {"type": "alert", "room": "a", "timestamp": "2025-10-22T10:30:00Z"}
room_envelope | type missing | {"data": {}}
command_request | name missing | {"id": "cmd-1"}
command_reply | ok missing | {"id": "cmd-1"}
metric_sample | empty array | []
metric_sample | value not a number | {"metric": "m", "value": "1", "ts_ms": 1}
metric_sample | ts_ms missing | {"metric": "m", "value": 1.0}
metric_sample | label value not a string | {"metric": "m", "value": 1.0, "ts_ms": 1, "labels": {"n": 1}}
metric_sample | metric name with a space | {"metric": "cpu usage", "value": 1.0, "ts_ms": 1}
"#;

fn invalid_messages() -> Vec<(String, String, Value)> {
    let mut cases: Vec<(String, String, Value)> = INVALID
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.splitn(3, " | ");
            let mut next = || fields.next().expect("line has three fields").to_owned();
            let (schema, label, message) = (next(), next(), next());
            let message = serde_json::from_str(&message)
                .unwrap_or_else(|e| panic!("{label}: message is not JSON: {e}"));
            (schema, label, message)
        })
        .collect();
    cases.push((
        "subscribe".into(),
        "room over 128 bytes".into(),
        json!({"type": "subscribe", "rooms": ["x".repeat(129)]}),
    ));
    cases.push((
        "publish".into(),
        "event name over 64 bytes".into(),
        json!({"type": "publish", "room": "a", "event": "e".repeat(65)}),
    ));
    cases
}

#[test]
fn invalid_messages_fail_their_schemas() {
    let schemas = Schemas::load();
    let accepted: Vec<String> = invalid_messages()
        .into_iter()
        .filter(|(schema, _, message)| {
            schemas
                .validator(&format!("{schema}.schema.json"))
                .is_valid(message)
        })
        .map(|(schema, label, message)| format!("{schema}: {label}: {message}"))
        .collect();
    assert!(
        accepted.is_empty(),
        "schemas accept invalid messages:\n{}",
        accepted.join("\n")
    );
}

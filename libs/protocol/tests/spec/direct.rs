//! Messages without a room (`proto/schemas/direct_message.schema.json`, `direct_envelope`,
//! and the HTTP `publish_request`): samples from the Rust types, what the schemas refuse, and
//! the subject encoding of a `sub`.

use serde_json::{Value, json};
use switchboard_protocol::direct::{
    DirectEnvelope, DirectMessage, Target, decode_subject_token, encode_subject_token,
};
use switchboard_protocol::time::now_rfc3339;
use switchboard_protocol::{Codec, ServerFrame, Subjects};

use crate::support::{Sample, Schemas};

fn envelope(role: Option<&str>) -> DirectEnvelope {
    DirectEnvelope {
        event: "maintenance".into(),
        data: json!({"message": "restart at 22:00 UTC"}),
        timestamp: Some(now_rfc3339()),
        role: role.map(str::to_owned),
    }
}

fn delivered(target: Target) -> DirectMessage {
    DirectMessage::from_envelope(target, envelope(None), now_rfc3339)
}

/// The three delivered shapes (together they write every property of the schema), the
/// envelope with every field, and the HTTP publish body's four shapes. The publish body has
/// no type in `protocol` (the gateway owns it); its samples stand for what the gateway's
/// tests send.
pub fn samples_with_every_field() -> Vec<Sample> {
    vec![
        Sample::frame(
            "direct_message.schema.json",
            "personal message",
            &delivered(Target::User("alice@example.com".into())),
        ),
        Sample::frame(
            "direct_message.schema.json",
            "message to one connection",
            &delivered(Target::Connection(
                "6f1c0c1e-3b7a-4b61-9d33-0c4a1d0e2f55".into(),
            )),
        ),
        Sample::frame(
            "direct_message.schema.json",
            "broadcast",
            &delivered(Target::Broadcast),
        ),
        Sample::bus(
            "direct_envelope.schema.json",
            "direct envelope",
            &envelope(Some("admin")),
        ),
        Sample::frame(
            "publish_request.schema.json",
            "publish to a room",
            &json!({"room": "alerts", "type": "alert", "data": {}, "priority": "critical"}),
        ),
        Sample::frame(
            "publish_request.schema.json",
            "publish to a user",
            &json!({"user": "alice", "type": "hello", "data": 1}),
        ),
        Sample::frame(
            "publish_request.schema.json",
            "publish to a connection",
            &json!({"connection_id": "c-1", "type": "hello"}),
        ),
        Sample::frame(
            "publish_request.schema.json",
            "broadcast to admins",
            &json!({"broadcast": true, "role": "admin", "type": "hello", "data": {}}),
        ),
    ]
}

/// The envelope with only its `type`.
pub fn samples_with_optional_fields_absent() -> Vec<Sample> {
    vec![Sample::bus(
        "direct_envelope.schema.json",
        "direct envelope with only a type",
        &DirectEnvelope {
            event: "hello".into(),
            data: Value::Null,
            timestamp: None,
            role: None,
        },
    )]
}

#[test]
fn the_schemas_refuse_what_the_gateway_refuses() {
    let schemas = Schemas::load();
    let refused = [
        (
            "direct_message.schema.json",
            json!({"type": "x", "data": 1, "timestamp": "2026-12-02T10:30:00Z"}),
        ),
        (
            "direct_message.schema.json",
            json!({"type": "x", "user": "a", "broadcast": true, "data": 1, "timestamp": "2026-12-02T10:30:00Z"}),
        ),
        (
            "direct_message.schema.json",
            json!({"type": "x", "user": "a", "room": "r", "data": 1, "timestamp": "2026-12-02T10:30:00Z"}),
        ),
        (
            "direct_message.schema.json",
            json!({"type": "pong", "user": "a", "data": 1, "timestamp": "2026-12-02T10:30:00Z"}),
        ),
        ("direct_envelope.schema.json", json!({"data": 1})),
        (
            "direct_envelope.schema.json",
            json!({"type": "x", "role": "king"}),
        ),
        ("publish_request.schema.json", json!({"type": "x"})),
        (
            "publish_request.schema.json",
            json!({"type": "x", "room": "a", "user": "b"}),
        ),
        (
            "publish_request.schema.json",
            json!({"type": "x", "user": "a", "connection_id": "c"}),
        ),
        (
            "publish_request.schema.json",
            json!({"type": "x", "broadcast": true, "room": "a"}),
        ),
        (
            "publish_request.schema.json",
            json!({"type": "x", "broadcast": false}),
        ),
        (
            "publish_request.schema.json",
            json!({"type": "x", "user": "a", "role": "admin"}),
        ),
        (
            "publish_request.schema.json",
            json!({"type": "x", "user": "a", "priority": "critical"}),
        ),
        (
            "publish_request.schema.json",
            json!({"type": "x", "connection_id": "a.b"}),
        ),
    ];
    for (schema, message) in refused {
        assert!(
            !schemas.errors(schema, &message).is_empty(),
            "{schema} accepts {message}"
        );
    }
}

#[test]
fn a_direct_frame_decodes_as_direct_and_a_room_message_still_as_room() {
    let frame = Codec::Json
        .encode(&delivered(Target::User("alice".into())))
        .unwrap();
    assert!(matches!(
        ServerFrame::decode(Codec::Json, &frame),
        Ok(ServerFrame::Direct(message)) if message.user.as_deref() == Some("alice")
    ));
    let packed = Codec::MsgPack
        .encode(&delivered(Target::Broadcast))
        .unwrap();
    assert!(matches!(
        ServerFrame::decode(Codec::MsgPack, &packed),
        Ok(ServerFrame::Direct(message)) if message.broadcast == Some(true)
    ));
    let room = br#"{"type":"alert","room":"alerts","data":1,"timestamp":"2026-12-02T10:30:00Z"}"#;
    assert!(matches!(
        ServerFrame::decode(Codec::Json, room),
        Ok(ServerFrame::Room(_))
    ));
}

#[test]
fn a_sub_becomes_one_subject_token_as_subjects_md_describes() {
    let subjects = Subjects::default();
    assert_eq!(
        subjects.user("alice@example.com"),
        "sb.user.alice@example%2Ecom"
    );
    assert_eq!(subjects.user("a b*c>d"), "sb.user.a%20b%2Ac%3Ed");
    assert_eq!(encode_subject_token("zoë"), "zo%C3%AB");
    assert_eq!(decode_subject_token("zo%C3%AB").as_deref(), Some("zoë"));
}

//! The schemas' name rules and closed sets agree with the Rust validators and constants.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use switchboard_protocol::ErrorCode;
use switchboard_protocol::RoomName;
use switchboard_protocol::message::{MAX_EVENT_NAME_BYTES, RESERVED_TYPES, is_valid_event_name};
use switchboard_protocol::room::{MAX_NODE_ID_BYTES, MAX_ROOM_NAME_BYTES, validate_node_id};

use crate::support::Schemas;

const ROOM_NAME: &str = "common.schema.json#/$defs/room_name";
const NODE_ID: &str = "common.schema.json#/$defs/node_id";
const EVENT_NAME: &str = "common.schema.json#/$defs/event_name";

/// Names on both sides of every rule: characters, segments, wildcards, length limits.
fn candidate_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "nodes",
        "node.a-1.cpu",
        "A_b-9",
        "node_status_update",
        "alert.v2",
        "",
        "a..b",
        ".a",
        "a.",
        "a.*",
        "a.>",
        "*",
        ">",
        "a b",
        "a/b",
        "ä",
        "a\n",
        "a:b",
    ]
    .iter()
    .map(|name| (*name).to_owned())
    .collect();
    for length in [63, 64, 65, 127, 128, 129] {
        names.push("x".repeat(length));
    }
    names.extend(RESERVED_TYPES.iter().map(|name| (*name).to_owned()));
    names
}

fn assert_schema_agrees(target: &str, rust_accepts: impl Fn(&str) -> bool) {
    let validator = Schemas::load().validator(target);
    let disagreements: Vec<String> = candidate_names()
        .into_iter()
        .filter(|name| validator.is_valid(&json!(name)) != rust_accepts(name))
        .map(|name| format!("{name:?}: rust accepts = {}", rust_accepts(&name)))
        .collect();
    assert!(
        disagreements.is_empty(),
        "{target} and the Rust validator disagree:\n{}",
        disagreements.join("\n")
    );
}

#[test]
fn room_name_schema_agrees_with_room_name_parse() {
    assert_schema_agrees(ROOM_NAME, |name| RoomName::parse(name).is_ok());
}

#[test]
fn node_id_schema_agrees_with_validate_node_id() {
    assert_schema_agrees(NODE_ID, |name| validate_node_id(name).is_ok());
}

#[test]
fn event_name_schema_agrees_with_is_valid_event_name() {
    assert_schema_agrees(EVENT_NAME, is_valid_event_name);
}

#[test]
fn schema_length_limits_are_the_rust_limits() {
    let schemas = Schemas::load();
    let max_length = |target: &str| schemas.get(target)["maxLength"].as_u64();
    let as_u64 = |limit: usize| u64::try_from(limit).ok();
    assert_eq!(max_length(ROOM_NAME), as_u64(MAX_ROOM_NAME_BYTES));
    assert_eq!(max_length(NODE_ID), as_u64(MAX_NODE_ID_BYTES));
    assert_eq!(max_length(EVENT_NAME), as_u64(MAX_EVENT_NAME_BYTES));
}

#[test]
fn error_code_enum_is_exactly_error_code_all_in_order() {
    let schemas = Schemas::load();
    let in_schema: Vec<&str> = schemas.get("common.schema.json#/$defs/error_code")["enum"]
        .as_array()
        .expect("error_code has an enum")
        .iter()
        .map(|code| code.as_str().expect("error codes are strings"))
        .collect();
    let in_rust: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(in_schema, in_rust);
}

#[test]
fn reserved_event_names_are_exactly_the_control_and_client_message_types() {
    let schemas = Schemas::load();
    let reserved_in_schema: BTreeSet<&str> = schemas.get(EVENT_NAME)["not"]["enum"]
        .as_array()
        .expect("event_name excludes the reserved types")
        .iter()
        .map(|name| name.as_str().expect("reserved types are strings"))
        .collect();
    // Seed 003's flat frames live on their own endpoint, where `data` is a frame type of the
    // seed's, not of this protocol (it stays a valid room event name: the device reader's).
    let message_types: BTreeSet<&str> = schemas
        .files()
        .iter()
        .filter(|(file, _)| !file.starts_with("power_"))
        .filter_map(|(_, schema)| schema.pointer("/properties/type/const"))
        .map(|name| name.as_str().expect("message types are strings"))
        .collect();
    let reserved_in_rust: BTreeSet<&str> = RESERVED_TYPES.into_iter().collect();
    assert_eq!(reserved_in_schema, reserved_in_rust);
    assert_eq!(message_types, reserved_in_rust);
}

#[test]
fn schema_files_are_valid_draft_2020_12_schemas() {
    for (file, schema) in Schemas::load().files() {
        assert_eq!(
            schema["$schema"],
            Value::from("https://json-schema.org/draft/2020-12/schema"),
            "{file} declares its dialect"
        );
        if let Err(error) = jsonschema::draft202012::meta::validate(schema) {
            panic!("{file} is not a valid draft 2020-12 schema: {error}");
        }
    }
}

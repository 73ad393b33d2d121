//! Every message type, built from the Rust types, against its schema; the schemas' own
//! examples against the schemas and the Rust types.

use std::collections::BTreeSet;

use serde_json::Value;
use switchboard_protocol::device::{DeviceFault, DeviceReading, DeviceStatus};
use switchboard_protocol::nodes::{NodeDetail, NodeLinksReport};
use switchboard_protocol::streams::{NodeStatusUpdate, ResourceUpdate, TopologyChange};
use switchboard_protocol::{
    Codec, CommandReply, CommandRequest, DirectEnvelope, ErrorCode, RoomEnvelope, ServerFrame,
    ServerMessage,
};

use crate::samples::{samples_with_every_field, samples_with_optional_fields_absent};
use crate::support::{COMMON, Sample, Schemas, assert_all_valid};

#[test]
fn messages_with_every_field_set_match_their_schemas() {
    assert_all_valid(&Schemas::load(), &samples_with_every_field());
}

#[test]
fn messages_with_optional_fields_absent_match_their_schemas() {
    assert_all_valid(&Schemas::load(), &samples_with_optional_fields_absent());
}

#[test]
fn every_error_code_makes_a_valid_error_frame() {
    let samples: Vec<Sample> = ErrorCode::ALL
        .iter()
        .map(|&code| {
            Sample::frame(
                "error.schema.json",
                "error",
                &ServerMessage::error(code, None),
            )
        })
        .collect();
    assert_all_valid(&Schemas::load(), &samples);
}

#[test]
fn every_message_schema_has_a_rust_sample() {
    let schemas = Schemas::load();
    let sampled: BTreeSet<String> = samples_with_every_field()
        .iter()
        .map(|sample| sample.target.to_owned())
        .filter(|target| !target.contains('#'))
        .collect();
    assert_eq!(sampled, schemas.message_files());
}

#[test]
fn schemas_declare_exactly_the_fields_of_the_rust_types() {
    // Closed schemas catch a Rust field the spec lacks; this catches the reverse, a schema
    // property no Rust type writes (a typo, or a field removed from the code).
    // A type whose variants write exclusive fields (a direct message's `user`,
    // `connection_id`, `broadcast`) has one sample per variant: together they must write
    // every property.
    let schemas = Schemas::load();
    let mut written: std::collections::BTreeMap<&str, (BTreeSet<String>, Vec<&str>)> =
        std::collections::BTreeMap::new();
    let samples = samples_with_every_field();
    for sample in &samples {
        let Some(object) = sample.json.as_object() else {
            continue;
        };
        let entry = written.entry(sample.target).or_default();
        entry.0.extend(object.keys().cloned());
        entry.1.push(sample.label);
    }
    for (target, (fields, labels)) in written {
        assert_eq!(
            fields,
            schemas.declared_properties(target),
            "fields of {labels:?} versus properties of {target}"
        );
    }
}

#[test]
fn schema_examples_are_valid_and_decode_into_the_rust_types() {
    let schemas = Schemas::load();
    for (file, schema) in schemas.files() {
        let examples = schema.get("examples").and_then(Value::as_array);
        if file.as_str() != COMMON {
            assert!(
                examples.is_some_and(|e| !e.is_empty()),
                "{file} has no examples"
            );
        }
        for example in examples.into_iter().flatten() {
            let errors = schemas.errors(file, example);
            assert!(errors.is_empty(), "{file} example {example}: {errors:?}");
            decode_example_with_rust(file, example);
        }
    }
}

/// Types with seed 003's flat frame.
trait Flat {
    fn flat_frame(&self) -> Value;
}

impl Flat for DeviceReading {
    fn flat_frame(&self) -> Value {
        DeviceReading::flat_frame(self)
    }
}

impl Flat for DeviceFault {
    fn flat_frame(&self) -> Value {
        DeviceFault::flat_frame(self)
    }
}

/// Schema files of the client → server messages.
const CLIENT_MESSAGE_FILES: [&str; 7] = [
    "subscribe.schema.json",
    "unsubscribe.schema.json",
    "ping.schema.json",
    "publish.schema.json",
    "node_state.schema.json",
    "ack.schema.json",
    "refresh.schema.json",
];

/// Decodes a schema example with the Rust type that reads it, so the spec's examples are
/// messages the implementation accepts.
fn decode_example_with_rust(file: &str, example: &Value) {
    fn bus<T: serde::de::DeserializeOwned>(example: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(example.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    }
    /// A flat frame is its type's fields plus `type`; rebuilding it must give the example back.
    fn flat<T: serde::de::DeserializeOwned + Flat>(
        example: &Value,
        kind: &str,
    ) -> Result<(), String> {
        let value: T = serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
        if example["type"] != kind || value.flat_frame() != *example {
            return Err(format!("flat frame of {kind} differs"));
        }
        Ok(())
    }
    let bytes = serde_json::to_vec(example).expect("example serializes");
    let result = match file {
        "room_envelope.schema.json" => bus::<RoomEnvelope>(example),
        "direct_envelope.schema.json" => bus::<DirectEnvelope>(example),
        // The HTTP publish body has no type in `protocol` (the gateway's PublishRequest);
        // the gateway's `direct` tests send these shapes.
        "publish_request.schema.json" => Ok(()),
        "command_request.schema.json" => bus::<CommandRequest>(example),
        "command_reply.schema.json" => bus::<CommandReply>(example),
        "node_status_update.schema.json" => bus::<NodeStatusUpdate>(example),
        "resource_update.schema.json" => bus::<ResourceUpdate>(example),
        "topology_change.schema.json" => bus::<TopologyChange>(example),
        "node_links_report.schema.json" => bus::<NodeLinksReport>(example),
        "node_detail.schema.json" => bus::<NodeDetail>(example),
        "device_reading.schema.json" => bus::<DeviceReading>(example),
        "device_fault.schema.json" => bus::<DeviceFault>(example),
        "device_status.schema.json" => bus::<DeviceStatus>(example),
        // Seed 003's flat frames: the fields of the reading or fault, plus `type`.
        "power_data.schema.json" => flat::<DeviceReading>(example, "data"),
        "power_error.schema.json" => flat::<DeviceFault>(example, "error"),
        // No Rust type yet; the schema and the mirror in this file are the contract.
        "metric_sample.schema.json" => Ok(()),
        _ if CLIENT_MESSAGE_FILES.contains(&file) => Codec::Json
            .decode_client(&bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => match ServerFrame::decode(Codec::Json, &bytes) {
            Ok(ServerFrame::Room(_)) if file == "room_message.schema.json" => Ok(()),
            Ok(ServerFrame::Direct(_)) if file == "direct_message.schema.json" => Ok(()),
            Ok(ServerFrame::Control(_))
                if file != "room_message.schema.json" && file != "direct_message.schema.json" =>
            {
                Ok(())
            }
            other => Err(format!("decoded as {other:?}")),
        },
    };
    if let Err(error) = result {
        panic!("{file} example {example} is refused by the Rust types: {error}");
    }
}

//! Loading `proto/` and validating values against its schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Registry, Validator};
use serde::Serialize;
use serde_json::{Value, json};
use switchboard_protocol::Codec;
use switchboard_protocol::envelope::{decode_bus, encode_bus};

/// Base URI the schema files are registered under. The schemas have no `$id` and refer to each
/// other by relative paths, so any base that keeps the folder layout works; a fixed one keeps
/// the checkout path (which may need percent-encoding) out of the URIs.
const SCHEMA_BASE: &str = "file:///proto/schemas/";

/// The shared-definitions file, which is not a message schema.
pub const COMMON: &str = "common.schema.json";

/// Returns the `proto/` folder of the workspace.
pub fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto")
}

/// Reads a file under `proto/`.
pub fn read_proto_file(relative: &str) -> String {
    let path = proto_dir().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every schema file under `proto/schemas/`, parsed, with a registry that resolves the
/// references between them without touching the file system or network.
pub struct Schemas {
    files: BTreeMap<String, Value>,
    registry: Registry<'static>,
}

impl Schemas {
    pub fn load() -> Self {
        let dir = proto_dir().join("schemas");
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(&dir).expect("proto/schemas/ exists") {
            let path = entry.expect("directory entry is readable").path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            if !name.ends_with(".schema.json") {
                continue;
            }
            let text = fs::read_to_string(&path).expect("schema file is readable");
            let schema: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            files.insert(name.to_owned(), schema);
        }
        let registry = Registry::new()
            .extend(
                files
                    .iter()
                    .map(|(name, schema)| (format!("{SCHEMA_BASE}{name}"), schema.clone())),
            )
            .expect("schema URIs are valid")
            .prepare()
            .expect("schemas resolve against each other");
        Self { files, registry }
    }

    /// File names of the message schemas (every schema file but the shared definitions).
    pub fn message_files(&self) -> BTreeSet<String> {
        self.files
            .keys()
            .filter(|name| name.as_str() != COMMON)
            .cloned()
            .collect()
    }

    /// All schema files by name.
    pub fn files(&self) -> &BTreeMap<String, Value> {
        &self.files
    }

    /// Returns the schema a target names: `file.schema.json` or `file.schema.json#/json/pointer`.
    pub fn get(&self, target: &str) -> &Value {
        let (file, pointer) = target.split_once('#').unwrap_or((target, ""));
        self.files
            .get(file)
            .and_then(|schema| schema.pointer(pointer))
            .unwrap_or_else(|| panic!("no schema at {target}"))
    }

    /// Builds a validator for a target (see [`Schemas::get`]), with format checks on, so
    /// `date-time` fields must be RFC 3339.
    pub fn validator(&self, target: &str) -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&json!({ "$ref": format!("{SCHEMA_BASE}{target}") }))
            .unwrap_or_else(|e| panic!("schema {target} does not compile: {e}"))
    }

    /// Returns the validation errors of `instance` against `target`, one line each.
    pub fn errors(&self, target: &str, instance: &Value) -> Vec<String> {
        self.validator(target)
            .iter_errors(instance)
            .map(|error| format!("at {:?}: {error}", error.instance_path().as_str()))
            .collect()
    }

    /// Returns the property names a target declares, following `$ref`s and the object
    /// branches of `oneOf`, so a closed schema's full field list can be compared with a
    /// Rust type's fields.
    pub fn declared_properties(&self, target: &str) -> BTreeSet<String> {
        let file = target.split_once('#').map_or(target, |(file, _)| file);
        let mut names = BTreeSet::new();
        self.collect_properties(file, self.get(target), &mut names);
        names
    }

    fn collect_properties(&self, file: &str, schema: &Value, names: &mut BTreeSet<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            names.extend(properties.keys().cloned());
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = match reference.strip_prefix('#') {
                Some(pointer) => format!("{file}#{pointer}"),
                None => reference.to_owned(),
            };
            let referenced_file = target.split_once('#').map_or(target.as_str(), |(f, _)| f);
            self.collect_properties(referenced_file, self.get(&target), names);
        }
        for branch in schema
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if branch.get("type").and_then(Value::as_str) != Some("array") {
                self.collect_properties(file, branch, names);
            }
        }
    }
}

/// One message as receivers see it, in both encodings, with the schema it must satisfy.
pub struct Sample {
    pub target: &'static str,
    pub label: &'static str,
    /// Encoded as JSON, parsed back.
    pub json: Value,
    /// Encoded as named MessagePack, decoded to a JSON value.
    pub msgpack: Value,
}

impl Sample {
    /// A WebSocket message, encoded with [`Codec::Json`] and [`Codec::MsgPack`].
    pub fn frame<T: Serialize>(target: &'static str, label: &'static str, message: &T) -> Self {
        Self {
            target,
            label,
            json: on_the_wire(Codec::Json, message),
            msgpack: on_the_wire(Codec::MsgPack, message),
        }
    }

    /// A bus payload, encoded with `encode_bus` (and as JSON, for readers that use JSON).
    pub fn bus<T: Serialize>(target: &'static str, label: &'static str, payload: &T) -> Self {
        let bytes = encode_bus(payload).expect("bus payload encodes");
        Self {
            target,
            label,
            json: on_the_wire(Codec::Json, payload),
            msgpack: decode_bus(&bytes).expect("bus payload decodes to a JSON value"),
        }
    }
}

/// Encodes `message` with `codec` and decodes the bytes to a JSON value.
pub fn on_the_wire<T: Serialize>(codec: Codec, message: &T) -> Value {
    let bytes = codec.encode(message).expect("message encodes");
    codec
        .decode(&bytes)
        .expect("encoded message decodes to a JSON value")
}

/// Asserts that every sample validates in both encodings, listing every failure at once.
pub fn assert_all_valid(schemas: &Schemas, samples: &[Sample]) {
    let mut failures = Vec::new();
    for sample in samples {
        for (encoding, value) in [("json", &sample.json), ("msgpack", &sample.msgpack)] {
            let errors = schemas.errors(sample.target, value);
            if !errors.is_empty() {
                failures.push(format!(
                    "{} ({encoding}) against {}: {value}\n    {}",
                    sample.label,
                    sample.target,
                    errors.join("\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "messages built from the Rust types break their schemas:\n{}",
        failures.join("\n")
    );
}

//! `proto/asyncapi.yaml` and `proto/subjects.md` against the schema files and the names the
//! protocol crate defines. The YAML is scanned as text: the checks only need `$ref` values and
//! block-mapping keys, which does not justify a YAML parser dependency.

use std::collections::BTreeSet;

use switchboard_protocol::codec::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use switchboard_protocol::envelope::{HEADER_MSG_ID, HEADER_ORIGIN_SERVER, HEADER_TRACEPARENT};
use switchboard_protocol::subject::NODE_COMMAND_QUEUE_GROUP;
use switchboard_protocol::{RoomName, Subjects};

use crate::support::{Schemas, read_proto_file};

/// Every `$ref` value in the document, without quotes.
fn references(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|line| line.split_once("$ref:"))
        .map(|(_, value)| value.trim().trim_matches(['\'', '"']).to_owned())
        .collect()
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// Reports whether a path of block-mapping keys (`["components", "messages", "ping"]`) exists:
/// each key must sit one level deeper inside the block of the key before it.
fn yaml_path_exists(yaml: &str, path: &[&str]) -> bool {
    let lines: Vec<&str> = yaml.lines().collect();
    let (mut start, mut end, mut indent) = (0, lines.len(), 0);
    for segment in path {
        let key = format!("{segment}:");
        let found = (start..end).find(|&index| {
            let line = lines[index];
            let rest = line.trim_start().strip_prefix(key.as_str());
            indentation(line) == indent
                && rest.is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        });
        let Some(index) = found else {
            return false;
        };
        start = index + 1;
        end = (start..end)
            .find(|&next| is_content(lines[next]) && indentation(lines[next]) <= indent)
            .unwrap_or(end);
        indent = (start..end)
            .map(|next| lines[next])
            .find(|line| is_content(line))
            .map_or(indent + 2, indentation);
    }
    true
}

#[test]
fn asyncapi_references_existing_schema_files_and_definitions() {
    let yaml = read_proto_file("asyncapi.yaml");
    let schemas = Schemas::load();
    let external: Vec<String> = references(&yaml)
        .into_iter()
        .filter(|reference| !reference.starts_with('#'))
        .collect();
    assert!(!external.is_empty(), "asyncapi.yaml references no schemas");
    for reference in external {
        let (file, pointer) = reference.split_once('#').unwrap_or((&reference, ""));
        let file = file
            .strip_prefix("./schemas/")
            .unwrap_or_else(|| panic!("{reference} is not under ./schemas/"));
        assert!(
            crate::support::proto_dir()
                .join("schemas")
                .join(file)
                .is_file(),
            "asyncapi.yaml references {reference}, which does not exist"
        );
        let target = format!("{file}#{pointer}");
        assert!(
            schemas.files()[file].pointer(pointer).is_some(),
            "asyncapi.yaml references {target}, which is not in {file}"
        );
    }
}

#[test]
fn every_schema_file_is_referenced_from_asyncapi() {
    let yaml = read_proto_file("asyncapi.yaml");
    let referenced: BTreeSet<String> = references(&yaml)
        .iter()
        .filter_map(|reference| reference.strip_prefix("./schemas/"))
        .map(|reference| reference.split('#').next().unwrap_or(reference).to_owned())
        .collect();
    let files: BTreeSet<String> = Schemas::load().files().keys().cloned().collect();
    assert_eq!(referenced, files);
}

#[test]
fn asyncapi_internal_references_resolve() {
    let yaml = read_proto_file("asyncapi.yaml");
    for reference in references(&yaml) {
        let Some(pointer) = reference.strip_prefix("#/") else {
            continue;
        };
        let path: Vec<&str> = pointer.split('/').collect();
        assert!(
            yaml_path_exists(&yaml, &path),
            "asyncapi.yaml references {reference}, which it does not define"
        );
    }
}

#[test]
fn asyncapi_declares_every_websocket_message_on_the_connect_channel() {
    let yaml = read_proto_file("asyncapi.yaml");
    for file in Schemas::load().message_files() {
        let name = file.trim_end_matches(".schema.json");
        let in_components = yaml_path_exists(&yaml, &["components", "messages", name]);
        assert!(in_components, "components.messages lacks {name}");
    }
    for message in [
        "subscribe",
        "unsubscribe",
        "ping",
        "publish",
        "node_state",
        "ack",
        "connection_established",
        "subscribed",
        "unsubscribed",
        "pong",
        "heartbeat",
        "error",
        "reconnect",
        "command",
        "room_message",
        "direct_message",
    ] {
        assert!(
            yaml_path_exists(&yaml, &["channels", "connect", "messages", message]),
            "channels.connect.messages lacks {message}"
        );
    }
}

/// The subject templates, built by `protocol::Subjects` with placeholder tokens.
fn subject_templates() -> Vec<String> {
    let subjects = Subjects::default();
    let room = RoomName::parse("ROOM").expect("placeholder is a valid room name");
    vec![
        subjects.room(&room).replace("ROOM", "{room}"),
        subjects.node_command("{node_id}"),
        subjects.ingest_node("{node_id}"),
        subjects.gateway_node_links("{gateway_id}"),
        subjects.ingest_metric(),
        subjects.batch_generated(),
        subjects.batch_validated(),
        subjects.api("{service}", "{method}"),
        subjects.user("SUB").replace("SUB", "{sub}"),
        subjects.connection("{connection_id}"),
        subjects.broadcast(),
    ]
}

#[test]
fn asyncapi_uses_the_subjects_subprotocols_and_headers_of_the_protocol_crate() {
    let yaml = read_proto_file("asyncapi.yaml");
    for subject in subject_templates() {
        let declared = yaml.lines().any(|line| {
            line.trim_start()
                .strip_prefix("address:")
                .is_some_and(|address| address.trim().trim_matches('\'') == subject)
        });
        assert!(
            declared,
            "asyncapi.yaml has no channel with address {subject}"
        );
    }
    for name in [
        SUBPROTOCOL_JSON,
        SUBPROTOCOL_MSGPACK,
        HEADER_TRACEPARENT,
        HEADER_MSG_ID,
        HEADER_ORIGIN_SERVER,
        NODE_COMMAND_QUEUE_GROUP,
    ] {
        assert!(yaml.contains(name), "asyncapi.yaml does not mention {name}");
    }
}

#[test]
fn subject_map_lists_every_subject_header_and_queue_group() {
    let map = read_proto_file("subjects.md");
    for subject in subject_templates() {
        assert!(
            map.contains(&format!("`{subject}`")),
            "subjects.md lacks {subject}"
        );
    }
    for name in [
        HEADER_TRACEPARENT,
        HEADER_MSG_ID,
        HEADER_ORIGIN_SERVER,
        NODE_COMMAND_QUEUE_GROUP,
    ] {
        assert!(
            map.contains(&format!("`{name}`")),
            "subjects.md lacks {name}"
        );
    }
}

#[test]
fn yaml_path_lookup_follows_nesting() {
    let yaml = "a:\n  b:\n    c: 1\n  d: 2\ne:\n  c: 3\n";
    assert!(yaml_path_exists(yaml, &["a", "b", "c"]));
    assert!(yaml_path_exists(yaml, &["a", "d"]));
    assert!(yaml_path_exists(yaml, &["e", "c"]));
    assert!(!yaml_path_exists(yaml, &["a", "c"]));
    assert!(!yaml_path_exists(yaml, &["e", "b"]));
    assert!(!yaml_path_exists(yaml, &["a", "b", "d"]));
}

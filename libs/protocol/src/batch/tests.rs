use serde_json::{Value, json};

use super::*;

fn generated() -> GeneratedBatch {
    GeneratedBatch {
        public_key: "pk-1".into(),
        block_hash: "0xabc".into(),
        block_height: 42,
        nonces: vec![1, -2, 3],
        dist: vec![0.5, 0.25, -0.0],
        node_id: 7,
    }
}

fn validated() -> ValidatedBatch {
    let base = generated();
    ValidatedBatch {
        public_key: base.public_key,
        block_hash: base.block_hash,
        block_height: base.block_height,
        nonces: base.nonces,
        dist: base.dist,
        node_id: base.node_id,
        received_dist: vec![0.5, 0.25, 0.0],
        r_target: 1.5,
        fraud_threshold: 0.01,
        n_invalid: 0,
        probability_honest: 0.99,
        fraud_detected: false,
    }
}

#[test]
fn frames_have_the_ml_node_wire_shape() {
    let frame = BatchFrame::new(Batch::Generated(generated()), "u-1".into());
    let value: Value = serde_json::from_str(&frame.to_json()).unwrap();
    assert_eq!(value["type"], "generated");
    assert_eq!(value["id"], "u-1");
    assert_eq!(value["batch"]["nonces"], json!([1, -2, 3]));
    assert_eq!(
        BatchFrame::from_json(frame.to_json().as_bytes()).unwrap(),
        frame
    );

    let ack = BatchAck { id: "u-1".into() };
    assert_eq!(ack.to_json(), r#"{"type":"ack","id":"u-1"}"#);
    assert_eq!(
        serde_json::from_str::<BatchAck>(&ack.to_json()).unwrap(),
        ack
    );
    assert!(serde_json::from_str::<BatchAck>(r#"{"type":"nack","id":"x"}"#).is_err());
}

#[test]
fn the_hash_ignores_the_attempt_id_and_covers_every_field() {
    let batch = Batch::Generated(generated());
    let first = BatchFrame::new(batch.clone(), "a".into()).into_parts().0;
    let second = BatchFrame::new(batch.clone(), "b".into()).into_parts().0;
    assert_eq!(first.content_hash(), second.content_hash());
    assert_eq!(batch.content_hash().to_hex().len(), 64);

    let mut changed = generated();
    changed.nonces.push(4);
    assert_ne!(
        Batch::Generated(changed).content_hash(),
        batch.content_hash()
    );
    let mut changed = generated();
    changed.node_id = 8;
    assert_ne!(
        Batch::Generated(changed).content_hash(),
        batch.content_hash()
    );
    // Moving an item between lists changes the hash: lengths are part of the encoding.
    let mut moved = generated();
    moved.public_key = "pk-".into();
    moved.block_hash = "10xabc".into();
    assert_ne!(Batch::Generated(moved).content_hash(), batch.content_hash());

    let mut fraud = validated();
    fraud.fraud_detected = true;
    assert_ne!(
        Batch::Validated(fraud).content_hash(),
        Batch::Validated(validated()).content_hash()
    );
    assert_ne!(
        Batch::Validated(validated()).content_hash(),
        batch.content_hash()
    );
}

#[test]
fn negative_zero_hashes_like_zero() {
    let mut positive = generated();
    positive.dist[2] = 0.0;
    assert_eq!(
        Batch::Generated(positive).content_hash(),
        Batch::Generated(generated()).content_hash()
    );
}

#[test]
fn the_hash_survives_a_json_round_trip() {
    let batch = Batch::Validated(validated());
    let again = Batch::from_json(BatchKind::Validated, batch.to_json().as_bytes()).unwrap();
    assert_eq!(again.content_hash(), batch.content_hash());
    let bus = Batch::decode_bus(BatchKind::Validated, &batch.encode_bus().unwrap()).unwrap();
    assert_eq!(bus, batch);
}

#[test]
fn a_bus_batch_with_a_non_finite_float_is_invalid() {
    // Found by fuzz/bus_envelope: MessagePack carries NaN and infinities, JSON does not, so such
    // a batch decoded off the bus passed validate() and then became a callback body with `null`
    // where a number belongs, which from_json refuses.
    let mut batch = validated();
    batch.received_dist[2] = f64::NAN;
    let payload = Batch::Validated(batch).encode_bus().unwrap();
    let from_bus = Batch::decode_bus(BatchKind::Validated, &payload).unwrap();
    assert_eq!(
        from_bus.validate(),
        Err(BatchError::InvalidValue(
            "received_dist[2] is not a finite number".into()
        ))
    );
    assert!(Batch::from_json(BatchKind::Validated, from_bus.to_json().as_bytes()).is_err());

    let mut batch = validated();
    batch.r_target = f64::INFINITY;
    assert_eq!(
        Batch::Validated(batch).validate(),
        Err(BatchError::InvalidValue(
            "r_target is not a finite number".into()
        ))
    );
    let mut batch = generated();
    batch.dist[0] = f64::NEG_INFINITY;
    assert!(Batch::Generated(batch).validate().is_err());
}

#[test]
fn floats_survive_json_exactly_so_hashes_agree_across_paths() {
    // Values whose shortest form a fast, not correctly rounded, parser gets wrong by an ulp.
    let mut batch = generated();
    batch.dist = vec![
        0.908_075_808_230_200_3,
        0.1 + 0.2,
        1e-310,
        2.225_073_858_507_201e-308,
    ];
    let batch = Batch::Generated(batch);
    let again = Batch::from_json(BatchKind::Generated, batch.to_json().as_bytes()).unwrap();
    assert_eq!(again, batch);
    assert_eq!(again.content_hash(), batch.content_hash());
}

#[test]
fn invalid_bodies_are_classified() {
    let cases: [(&str, &str); 6] = [
        ("{not json", "malformed_json"),
        ("", "malformed_json"),
        (
            r#"{"public_key":"p","block_hash":"h","block_height":1,"dist":[],"node_id":1}"#,
            "missing_field",
        ),
        (
            r#"{"public_key":"p","block_hash":"h","block_height":"1","nonces":[],"dist":[],"node_id":1}"#,
            "wrong_type",
        ),
        (
            r#"{"public_key":"p","block_hash":"h","block_height":1,"nonces":[],"dist":[],"node_id":-1}"#,
            "wrong_type",
        ),
        (
            r#"{"public_key":"","block_hash":"h","block_height":1,"nonces":[],"dist":[],"node_id":1}"#,
            "invalid_value",
        ),
    ];
    for (body, reason) in cases {
        let error = Batch::from_json(BatchKind::Generated, body.as_bytes()).unwrap_err();
        assert_eq!(error.reason(), reason, "{body}: {error}");
    }
    let missing = Batch::from_json(BatchKind::Generated, br#"{"public_key":"p"}"#).unwrap_err();
    assert!(missing.to_string().contains("block_hash"), "{missing}");
    let unknown = BatchFrame::from_json(br#"{"type":"mined","batch":{},"id":"x"}"#).unwrap_err();
    assert_eq!(unknown.reason(), "wrong_type");
    let no_id = BatchFrame::new(Batch::Generated(generated()), String::new());
    assert_eq!(
        BatchFrame::from_json(no_id.to_json().as_bytes())
            .unwrap_err()
            .reason(),
        "invalid_value"
    );
}

#[test]
fn kinds_map_to_subjects_and_paths() {
    let subjects = Subjects::default();
    assert_eq!(
        BatchKind::Generated.subject(&subjects),
        "sb.ingest.batch.generated"
    );
    assert_eq!(
        BatchKind::of_subject(&subjects, "sb.ingest.batch.validated"),
        Some(BatchKind::Validated)
    );
    assert_eq!(BatchKind::of_subject(&subjects, "sb.room.tasks"), None);
    assert_eq!(stream_subjects(&subjects).len(), 2);
    assert_eq!(
        BatchKind::Validated.callback_path(),
        format!("{CALLBACK_PATH_PREFIX}/validated")
    );
}

/// The shapes in `proto/schemas/common.schema.json` accept what the Rust types write, and the
/// Rust types read the schema's examples.
#[test]
fn rust_batches_and_frames_match_the_proto_schemas() {
    let common: Value =
        serde_json::from_str(include_str!("../../../../proto/schemas/common.schema.json")).unwrap();
    let validator = |definition: &str| {
        let mut schema = common.clone();
        schema["$ref"] = json!(format!("#/$defs/{definition}"));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .unwrap()
    };
    let samples = [
        (
            "generated_batch",
            serde_json::to_value(generated()).unwrap(),
        ),
        (
            "validated_batch",
            serde_json::to_value(validated()).unwrap(),
        ),
        ("batch", serde_json::to_value(validated()).unwrap()),
        (
            "ml_node_batch_frame",
            serde_json::from_str(
                &BatchFrame::new(Batch::Validated(validated()), "u".into()).to_json(),
            )
            .unwrap(),
        ),
        (
            "ml_node_ack",
            serde_json::to_value(BatchAck { id: "u".into() }).unwrap(),
        ),
        (
            "batch_progress",
            serde_json::to_value(BatchProgress {
                node: "ml-1".into(),
                node_num: Some(7),
                connection: ConnectionState::Refused,
                stored: KindCounts {
                    generated: 3,
                    validated: 1,
                },
                duplicates: 2,
                invalid: 0,
                received: PathCounts {
                    websocket: 4,
                    http: 2,
                },
                last_block_height: Some(12),
            })
            .unwrap(),
        ),
    ];
    for (definition, sample) in samples {
        let errors: Vec<String> = validator(definition)
            .iter_errors(&sample)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{definition}: {errors:?}");
        for example in common["$defs"][definition]["examples"]
            .as_array()
            .unwrap_or_else(|| panic!("{definition} has examples"))
        {
            assert!(validator(definition).is_valid(example), "{example}");
            let text = example.to_string();
            let decoded = match definition {
                "generated_batch" => {
                    Batch::from_json(BatchKind::Generated, text.as_bytes()).map(drop)
                }
                "validated_batch" | "batch" => {
                    Batch::from_json(BatchKind::Validated, text.as_bytes())
                        .or_else(|_| Batch::from_json(BatchKind::Generated, text.as_bytes()))
                        .map(drop)
                }
                "ml_node_batch_frame" => BatchFrame::from_json(text.as_bytes()).map(drop),
                "batch_progress" => serde_json::from_str::<BatchProgress>(&text)
                    .map(drop)
                    .map_err(|e| BatchError::WrongType(e.to_string())),
                _ => serde_json::from_str::<BatchAck>(&text)
                    .map(drop)
                    .map_err(|e| BatchError::WrongType(e.to_string())),
            };
            assert!(
                decoded.is_ok(),
                "{definition} example {example}: {decoded:?}"
            );
        }
    }
    let wrong = json!({"public_key": "p", "block_hash": "h", "block_height": 1,
        "nonces": [1.5], "dist": [], "node_id": 1});
    assert!(!validator("generated_batch").is_valid(&wrong));
}

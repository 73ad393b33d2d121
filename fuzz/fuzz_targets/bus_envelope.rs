//! Payloads read off the bus (named MessagePack maps from any publisher): the room envelope
//! the gateway fans out (and its seed 003 flat frame), command requests and replies, node
//! states, metric samples and batches. The first byte picks the payload type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::batch::{Batch, BatchKind};
use protocol::device::{DeviceFault, DeviceReading};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::metrics::MetricPayload;
use protocol::{Codec, CommandReply, CommandRequest, NodeState, RoomEnvelope, RoomMessage};
use switchboard_fuzz::{MAX_INPUT_BYTES, assert_reencodes};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, payload)) = input.split_first() else {
        return;
    };
    if payload.len() > MAX_INPUT_BYTES {
        return;
    }
    match selector % 7 {
        0 => room_envelope(payload),
        1 => {
            if let Ok(request) = decode_bus::<CommandRequest>(payload) {
                assert_reencodes(Codec::MsgPack, &request);
            }
        }
        2 => {
            if let Ok(reply) = decode_bus::<CommandReply>(payload) {
                assert_reencodes(Codec::MsgPack, &reply);
            }
        }
        3 => {
            if let Ok(state) = decode_bus::<NodeState>(payload) {
                assert_reencodes(Codec::MsgPack, &state);
            }
        }
        4 => metric_payload(payload),
        5 => batch(BatchKind::Generated, payload),
        _ => batch(BatchKind::Validated, payload),
    }
});

/// What the gateway's fan-out does with a room envelope: decode, read the timestamp, build the
/// room message every member gets (in JSON or MessagePack) and, for device rooms, seed 003's
/// flat frame.
fn room_envelope(payload: &[u8]) {
    let Ok(envelope) = decode_bus::<RoomEnvelope>(payload) else {
        return;
    };
    assert_reencodes(Codec::MsgPack, &envelope);
    if let Some(timestamp) = envelope.timestamp.as_deref() {
        let _ = humantime::parse_rfc3339_weak(timestamp);
    }
    let message = RoomMessage {
        event: envelope.event,
        room: "devices.opm-1.m4".to_owned(),
        data: envelope.data,
        timestamp: envelope.timestamp.unwrap_or_default(),
        seq: envelope.seq,
        priority: envelope.priority,
    };
    // Whatever came in over MessagePack must reach a JSON client intact, and a MessagePack one.
    assert_reencodes(Codec::Json, &message);
    assert_reencodes(Codec::MsgPack, &message);
    let flat = match message.event.as_str() {
        protocol::device::EVENT_DATA => serde_json::from_value::<DeviceReading>(message.data)
            .ok()
            .map(|reading| reading.flat_frame()),
        protocol::device::EVENT_ERROR => serde_json::from_value::<DeviceFault>(message.data)
            .ok()
            .map(|fault| fault.flat_frame()),
        _ => None,
    };
    if let Some(frame) = flat {
        assert_eq!(
            frame.get("type").and_then(serde_json::Value::as_str),
            Some(message.event.as_str()),
            "a flat frame must say its type"
        );
        assert_reencodes(Codec::Json, &frame);
    }
}

/// The aggregator's ingest: one sample or a list of them, told apart by the first marker.
fn metric_payload(payload: &[u8]) {
    let Ok(decoded) = MetricPayload::decode_bus(payload) else {
        return;
    };
    let encoded = encode_bus(&decoded).expect("a decoded metric payload encodes");
    let again = MetricPayload::decode_bus(&encoded).expect("an encoded metric payload decodes");
    assert_eq!(
        encode_bus(&again).expect("a decoded metric payload encodes"),
        encoded,
        "a metric payload changed across a round trip"
    );
}

/// A batch on the batch stream: it must survive the hop to an HTTP callback (JSON) with the
/// same content hash, as batch-ingest's consumers rely on.
fn batch(kind: BatchKind, payload: &[u8]) {
    let Ok(batch) = Batch::decode_bus(kind, payload) else {
        return;
    };
    assert_eq!(batch.kind(), kind);
    let encoded = batch.encode_bus().expect("a decoded batch encodes");
    let again = Batch::decode_bus(kind, &encoded).expect("an encoded batch decodes");
    assert_eq!(again.content_hash(), batch.content_hash());
    if batch.validate().is_ok() {
        let json = batch.to_json();
        match Batch::from_json(kind, json.as_bytes()) {
            Ok(from_json) => assert_eq!(
                from_json.content_hash(),
                batch.content_hash(),
                "a batch's content hash changed across the JSON hop: {json}"
            ),
            Err(error) => panic!("a valid batch's JSON does not decode ({error}): {json}"),
        }
    }
}

//! Batch JSON as batch-ingest reads it: the HTTP callback bodies (`Batch::from_json`, either
//! kind) and an ML node's WebSocket text frames (`BatchFrame::from_json`). The first byte picks
//! the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::batch::{Batch, BatchFrame, BatchKind};
use switchboard_fuzz::MAX_INPUT_BYTES;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    if body.len() > MAX_INPUT_BYTES {
        return;
    }
    match selector % 3 {
        0 => callback(BatchKind::Generated, body),
        1 => callback(BatchKind::Validated, body),
        _ => frame(body),
    }
});

/// An accepted batch is valid, goes onto the bus and comes back off it with the same hash,
/// and its JSON (what a callback re-delivery sends) decodes to the same batch.
fn callback(kind: BatchKind, body: &[u8]) {
    let Ok(batch) = Batch::from_json(kind, body) else {
        return;
    };
    assert_eq!(batch.kind(), kind);
    assert!(batch.validate().is_ok(), "an accepted batch fails validate");
    let payload = batch.encode_bus().expect("an accepted batch encodes");
    let from_bus = Batch::decode_bus(kind, &payload).expect("an accepted batch's payload decodes");
    assert_eq!(from_bus.content_hash(), batch.content_hash());
    let json = batch.to_json();
    let again = Batch::from_json(kind, json.as_bytes())
        .unwrap_or_else(|error| panic!("an accepted batch's JSON is refused ({error}): {json}"));
    assert_eq!(again.content_hash(), batch.content_hash());
    assert_eq!(
        again.to_json(),
        json,
        "a batch's JSON changed across a round trip"
    );
}

fn frame(text: &[u8]) {
    let Ok(frame) = BatchFrame::from_json(text) else {
        return;
    };
    assert!(!frame.id().is_empty());
    let json = frame.to_json();
    let again = BatchFrame::from_json(json.as_bytes())
        .unwrap_or_else(|error| panic!("an accepted frame's JSON is refused ({error}): {json}"));
    assert_eq!(
        again.to_json(),
        json,
        "a frame's JSON changed across a round trip"
    );
    let (batch, id) = frame.into_parts();
    assert!(!id.is_empty());
    assert!(
        batch.validate().is_ok(),
        "an accepted frame holds an invalid batch"
    );
}

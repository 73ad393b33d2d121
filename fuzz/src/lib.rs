//! Invariants the fuzz targets share. Each target decodes outside bytes with the code the
//! services run; what decodes must also survive the hop it takes next (encoded again and
//! decoded by the next reader), which is what these helpers check.

use protocol::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Inputs longer than this are skipped: every decoder sits behind a frame or body size cap far
/// below it (the gateway's frame limit, the HTTP body limit, NATS's max payload), and long
/// inputs only slow the fuzzer down.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Encodes `value` with `codec`, decodes the result and encodes that again: the two encodings
/// must be byte-for-byte equal. Comparing bytes rather than values keeps NaN (which is not
/// equal to itself) from failing the check while still catching any field that changes.
///
/// # Panics
/// When a decoded value cannot be encoded, its encoding does not decode, or the second
/// encoding differs from the first: each is a bug the fuzzer reports.
pub fn assert_reencodes<T>(codec: Codec, value: &T)
where
    T: Serialize + DeserializeOwned + std::fmt::Debug,
{
    let first = codec
        .encode(value)
        .unwrap_or_else(|error| panic!("decoded value does not encode ({error}): {value:?}"));
    let again: T = codec.decode(&first).unwrap_or_else(|error| {
        panic!("own encoding does not decode ({error}): {value:?} as {first:?}")
    });
    let second = codec
        .encode(&again)
        .unwrap_or_else(|error| panic!("re-decoded value does not encode ({error}): {again:?}"));
    assert_eq!(
        first, second,
        "encoding changed across a round trip: {value:?} became {again:?}"
    );
}

/// The `type`s of [`protocol::ClientMessage`].
const CLIENT_TYPES: [&str; 7] = [
    "subscribe",
    "unsubscribe",
    "ping",
    "publish",
    "node_state",
    "ack",
    "refresh",
];

/// Decodes a client frame as a gateway session does and checks what it got: a message
/// re-encodes to itself, and only a type outside the client set is reported as unknown.
///
/// # Panics
/// When an invariant does not hold.
pub fn check_client_frame(codec: Codec, bytes: &[u8]) {
    match codec.decode_client(bytes) {
        Ok(message) => assert_reencodes::<protocol::ClientMessage>(codec, &message),
        Err(protocol::DecodeError::UnknownType(kind)) => assert!(
            !CLIENT_TYPES.contains(&kind.as_str()),
            "a client type reported as unknown: {kind:?}"
        ),
        Err(protocol::DecodeError::Malformed(_)) => {}
    }
}

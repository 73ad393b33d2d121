//! SCPI replies as the device reader's `scpi-tcp` driver reads them off an instrument's
//! socket: one line of at most `MAX_REPLY_BYTES + 2` bytes, parsed strictly into one number.
//!
//! The parser's source file is compiled in here rather than the device-reader crate linked:
//! that crate brings ~300 crates (axum, NATS, Redis, OpenTelemetry) for a pure function,
//! which would triple the fuzz build. It is the same file the driver compiles.
#![no_main]

#[path = "../../services/device-reader/src/driver/parse.rs"]
#[allow(dead_code)] // the query-template half of the file is not fuzzed here
mod parse;

use libfuzzer_sys::fuzz_target;

/// SCPI's "not a number" (9.91E37): never a value.
const SCPI_NAN: f64 = 9.91e37;

fuzz_target!(|bytes: &[u8]| {
    // The driver reads at most this much (`take`), up to the first newline.
    let limit = parse::MAX_REPLY_BYTES + 2;
    let reply = match bytes.iter().position(|&byte| byte == b'\n') {
        Some(end) if end < limit => &bytes[..=end],
        _ => &bytes[..bytes.len().min(limit)],
    };
    let Ok(value) = parse::parse_reply(reply) else {
        return;
    };
    assert!(
        value.is_finite() && value.abs() < SCPI_NAN,
        "{value} accepted from {reply:?}"
    );
    // An accepted reply is a plain decimal number: what Rust reads from it is the same value.
    let text = std::str::from_utf8(reply)
        .expect("an accepted reply is text")
        .trim();
    assert!(
        text.bytes()
            .all(|byte| byte.is_ascii_digit() || b"+-.eE".contains(&byte)),
        "{text:?} is not an SCPI number"
    );
    assert_eq!(text.parse::<f64>().ok(), Some(value));
});

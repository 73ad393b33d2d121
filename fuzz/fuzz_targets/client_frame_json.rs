//! Client frames in JSON text frames: `Codec::Json.decode_client`, which every
//! `/api/ws/connect` session (and seed 003's endpoints) runs on each text frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::Codec;
use switchboard_fuzz::{MAX_INPUT_BYTES, check_client_frame};

fuzz_target!(|bytes: &[u8]| {
    if bytes.len() <= MAX_INPUT_BYTES {
        check_client_frame(Codec::Json, bytes);
    }
});

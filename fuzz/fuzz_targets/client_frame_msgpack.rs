//! Client frames in MessagePack binary frames: `Codec::MsgPack.decode_client`, which every
//! `/api/ws/connect` session runs on each binary frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::Codec;
use switchboard_fuzz::{MAX_INPUT_BYTES, check_client_frame};

fuzz_target!(|bytes: &[u8]| {
    if bytes.len() <= MAX_INPUT_BYTES {
        check_client_frame(Codec::MsgPack, bytes);
    }
});

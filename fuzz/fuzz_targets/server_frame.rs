//! Server frames as the SDK (libs/client) reads them: `ServerFrame::decode`, a control
//! message, a room message or a direct (personal, per-connection, broadcast) message, in
//! either codec. The first byte picks the codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Codec, ServerFrame, ServerMessage};
use switchboard_fuzz::{MAX_INPUT_BYTES, assert_reencodes};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    if bytes.len() > MAX_INPUT_BYTES {
        return;
    }
    let codec = if selector & 1 == 0 {
        Codec::Json
    } else {
        Codec::MsgPack
    };
    match ServerFrame::decode(codec, bytes) {
        Ok(ServerFrame::Control(message)) => assert_reencodes::<ServerMessage>(codec, &message),
        Ok(ServerFrame::Room(message)) => {
            assert_reencodes(codec, &message);
            // A room message re-read by a client is still a room message, never a control one.
            let encoded = codec.encode(&message).unwrap_or_default();
            assert!(
                matches!(
                    ServerFrame::decode(codec, &encoded),
                    Ok(ServerFrame::Room(_))
                ),
                "a room message of type {:?} reads back as something else",
                message.event
            );
        }
        Ok(ServerFrame::Direct(message)) => {
            assert_reencodes(codec, &message);
            // A direct message re-read by a client is still a direct message.
            let encoded = codec.encode(&message).unwrap_or_default();
            assert!(
                matches!(
                    ServerFrame::decode(codec, &encoded),
                    Ok(ServerFrame::Direct(_))
                ),
                "a direct message of type {:?} reads back as something else",
                message.event
            );
        }
        Err(_) => {}
    }
});

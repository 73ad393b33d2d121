//! The benchmark message: `{seq, sent_ns, pad}`, published to the bus and found again in what
//! a client receives.
//!
//! Both targets deliver the same JSON object to the application; the pad makes the delivered
//! message (Switchboard's room message, or the NATS `MSG` payload) about `payload_bytes` long.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem::Finder;

use protocol::{EncodeError, RoomEnvelope, RoomMessage};
use serde_json::json;

use crate::Target;

/// The event name benchmark messages carry (the room message's `type`).
pub(crate) const BENCH_EVENT: &str = "bench";

/// Returns the wall clock in nanoseconds since the Unix epoch; publisher and subscribers run
/// on one machine, so their clocks agree.
pub(crate) fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Returns the pad that makes a message to `room` with sequence number `typical_seq` deliver
/// about `payload_bytes` to a `target` client.
pub(crate) fn pad_for(
    target: Target,
    room: &str,
    typical_seq: u64,
    payload_bytes: usize,
) -> String {
    let data = bench_value(typical_seq, unix_now_ns(), "");
    let unpadded = match target {
        Target::NatsWs => data.to_string().len(),
        Target::Switchboard => {
            let delivered = RoomMessage {
                event: BENCH_EVENT.to_owned(),
                room: room.to_owned(),
                data,
                timestamp: protocol::time::now_rfc3339(),
                seq: None,
                priority: None,
            };
            serde_json::to_vec(&delivered).map_or(0, |bytes| bytes.len())
        }
    };
    "x".repeat(payload_bytes.saturating_sub(unpadded))
}

fn bench_value(seq: u64, sent_ns: u64, pad: &str) -> serde_json::Value {
    json!({"seq": seq, "sent_ns": sent_ns, "pad": pad})
}

/// Returns the bus payload for `target`: a MessagePack `RoomEnvelope` for Switchboard, the
/// bare JSON object for nats-server.
///
/// # Errors
/// [`EncodeError`] if the envelope cannot be encoded (it always can).
pub(crate) fn bus_payload(
    target: Target,
    seq: u64,
    sent_ns: u64,
    pad: &str,
) -> Result<Vec<u8>, EncodeError> {
    match target {
        Target::NatsWs => {
            Ok(format!(r#"{{"seq":{seq},"sent_ns":{sent_ns},"pad":"{pad}"}}"#).into_bytes())
        }
        Target::Switchboard => protocol::envelope::encode_bus(&RoomEnvelope {
            event: BENCH_EVENT.to_owned(),
            data: bench_value(seq, sent_ns, pad),
            timestamp: None,
            seq: None,
            priority: None,
        }),
    }
}

/// Finds `seq` and `sent_ns` in a delivered message; `None` for anything else (control
/// messages). A byte scan instead of a JSON parse keeps the loader's cost per message small;
/// the keys are unique to the benchmark data, and in a Switchboard room message `data`
/// precedes any top-level `seq`, so the first `"seq":` is the benchmark's.
pub(crate) fn parse_bench(message: &[u8]) -> Option<(u64, u64)> {
    // Built once: the SIMD searchers are the loader's main cost per message otherwise.
    static SENT_NS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"sent_ns\":"));
    static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"seq\":"));
    let sent_ns = number_after(message, &SENT_NS)?;
    let seq = number_after(message, &SEQ)?;
    Some((seq, sent_ns))
}

fn number_after(haystack: &[u8], key: &Finder<'_>) -> Option<u64> {
    let start = key.find(haystack)? + key.needle().len();
    let digits = haystack[start..]
        .iter()
        .skip_while(|byte| **byte == b' ')
        .take_while(|byte| byte.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for digit in digits {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// Returns the position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_payload_is_padded_to_size_and_parses_back() {
        let pad = pad_for(Target::NatsWs, "bench.fanout", 500, 200);
        let payload = bus_payload(Target::NatsWs, 500, unix_now_ns(), &pad).unwrap();
        assert!(
            (198..=202).contains(&payload.len()),
            "{} bytes",
            payload.len()
        );
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["seq"], 500);
        assert_eq!(parse_bench(&payload).map(|(seq, _)| seq), Some(500));
    }

    #[test]
    fn switchboard_envelope_becomes_a_room_message_of_the_asked_size() {
        let pad = pad_for(Target::Switchboard, "bench.fanout", 7, 200);
        let bytes = bus_payload(Target::Switchboard, 7, 1_700_000_000_000_000_000, &pad).unwrap();
        let envelope: RoomEnvelope = protocol::envelope::decode_bus(&bytes).unwrap();
        let delivered = RoomMessage {
            event: envelope.event,
            room: "bench.fanout".to_owned(),
            data: envelope.data,
            timestamp: protocol::time::now_rfc3339(),
            seq: Some(3),
            priority: None,
        };
        let json = serde_json::to_vec(&delivered).unwrap();
        assert!((195..=215).contains(&json.len()), "{} bytes", json.len());
        assert_eq!(parse_bench(&json), Some((7, 1_700_000_000_000_000_000)));
    }

    #[test]
    fn control_messages_are_not_benchmark_messages() {
        assert_eq!(
            parse_bench(br#"{"type":"heartbeat","active_streams":1}"#),
            None
        );
        assert_eq!(parse_bench(br#"{"seq":1,"sent_ns":"x"}"#), None);
        assert_eq!(find(b"abc", b"abcd"), None);
    }
}

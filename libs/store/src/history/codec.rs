//! The binary records of the history keys. Little-endian, fixed size, no framing: a raw
//! record is 10 bytes, a roll-up slot 32.

use super::{MINUTE_MS, MinuteRollup, RawSample};

/// Bytes of one raw record: `u16` milliseconds into the minute, `f64` value.
pub(crate) const RAW_RECORD_BYTES: usize = 10;
/// Bytes of one roll-up slot: `u32` count, `f64` min, max, avg, `f32` stddev. The stddev
/// is the one figure whose precision matters least, so it pays for the key fitting in a
/// 2 KiB allocation (60 × 32 = 1,920 bytes).
pub(crate) const ROLLUP_RECORD_BYTES: usize = 32;

/// Encodes samples of the minute starting at `minute_start_ms` (others are skipped).
pub(crate) fn encode_raw(minute_start_ms: u64, samples: &[RawSample]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(samples.len() * RAW_RECORD_BYTES);
    for sample in samples {
        let Some(offset) = sample
            .ts_ms
            .checked_sub(minute_start_ms)
            .filter(|offset| *offset < MINUTE_MS)
            .and_then(|offset| u16::try_from(offset).ok())
        else {
            continue;
        };
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.extend_from_slice(&sample.value.to_le_bytes());
    }
    bytes
}

/// Decodes the raw records of the minute starting at `minute_start_ms`; a truncated
/// trailing record is ignored.
pub(crate) fn decode_raw(
    minute_start_ms: u64,
    bytes: &[u8],
) -> impl Iterator<Item = RawSample> + '_ {
    bytes.chunks_exact(RAW_RECORD_BYTES).map(move |record| {
        let (offset, value) = record.split_at(2);
        RawSample {
            ts_ms: minute_start_ms + u64::from(u16::from_le_bytes([offset[0], offset[1]])),
            value: f64::from_le_bytes(to_array(value)),
        }
    })
}

/// Encodes one roll-up slot.
pub(crate) fn encode_rollup(rollup: &MinuteRollup) -> [u8; ROLLUP_RECORD_BYTES] {
    let mut record = [0u8; ROLLUP_RECORD_BYTES];
    record[0..4].copy_from_slice(&rollup.count.to_le_bytes());
    record[4..12].copy_from_slice(&rollup.min.to_le_bytes());
    record[12..20].copy_from_slice(&rollup.max.to_le_bytes());
    record[20..28].copy_from_slice(&rollup.avg.to_le_bytes());
    #[allow(
        clippy::cast_possible_truncation,
        reason = "stddev is stored as f32 on purpose, see ROLLUP_RECORD_BYTES"
    )]
    let stddev = rollup.stddev as f32;
    record[28..32].copy_from_slice(&stddev.to_le_bytes());
    record
}

/// Decodes the filled slots of an hour key starting at `hour_start_ms`.
pub(crate) fn decode_rollups(
    hour_start_ms: u64,
    bytes: &[u8],
) -> impl Iterator<Item = MinuteRollup> + '_ {
    bytes
        .chunks_exact(ROLLUP_RECORD_BYTES)
        .zip(0u64..)
        .filter_map(move |(record, slot)| {
            let count = u32::from_le_bytes(to_array(&record[0..4]));
            (count > 0).then(|| MinuteRollup {
                minute_start_ms: hour_start_ms + slot * MINUTE_MS,
                count,
                min: f64::from_le_bytes(to_array(&record[4..12])),
                max: f64::from_le_bytes(to_array(&record[12..20])),
                avg: f64::from_le_bytes(to_array(&record[20..28])),
                stddev: f64::from(f32::from_le_bytes(to_array(&record[28..32]))),
            })
        })
}

fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0u8; N];
    array.copy_from_slice(&bytes[..N]);
    array
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_records_round_trip_within_their_minute() {
        let samples = [
            RawSample {
                ts_ms: 120_000,
                value: -1.25,
            },
            RawSample {
                ts_ms: 179_999,
                value: f64::MAX,
            },
            RawSample {
                ts_ms: 180_000,
                value: 3.0,
            },
        ];
        let bytes = encode_raw(120_000, &samples);
        assert_eq!(bytes.len(), 2 * RAW_RECORD_BYTES);
        let back: Vec<RawSample> = decode_raw(120_000, &bytes).collect();
        assert_eq!(back, samples[..2]);
    }

    #[test]
    fn rollup_slots_round_trip_and_empty_slots_are_skipped() {
        let rollup = MinuteRollup {
            minute_start_ms: 3 * MINUTE_MS,
            count: 7,
            min: 1.5,
            max: 9.25,
            avg: 4.125,
            stddev: 0.5,
        };
        let mut hour = vec![0u8; 60 * ROLLUP_RECORD_BYTES];
        hour[3 * ROLLUP_RECORD_BYTES..4 * ROLLUP_RECORD_BYTES]
            .copy_from_slice(&encode_rollup(&rollup));
        let back: Vec<MinuteRollup> = decode_rollups(0, &hour).collect();
        assert_eq!(back, vec![rollup]);
    }
}

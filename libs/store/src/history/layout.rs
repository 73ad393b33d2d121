//! How history writes and reads map onto keys: the key names, the lowering of
//! [`HistoryWrite`]s to key operations both backends execute alike, and the decoding of
//! what reads return.

use super::{
    HOUR_MS, HistoryWrite, MINUTE_MS, MinuteRollup, RAW_RETENTION_MS, ROLLUP_RETENTION_MS,
    RawSample, codec,
};

/// Extra life of a raw minute key past the raw retention, so a reader at the boundary still
/// finds it.
const RAW_EXPIRY_MARGIN_MS: u64 = MINUTE_MS;

/// A key-level operation both backends execute the same way; [`Store::write_history`]
/// lowers every [`HistoryWrite`] to these.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KvOp {
    /// Appends to a string and sets its absolute expiry.
    Append {
        key: String,
        bytes: Vec<u8>,
        expire_at_ms: u64,
    },
    /// Replaces a string and sets its absolute expiry.
    Set {
        key: String,
        bytes: Vec<u8>,
        expire_at_ms: u64,
    },
    /// Creates a zero-filled string of `size` bytes (with its expiry) if absent, then writes
    /// `bytes` at `offset`.
    WriteAt {
        key: String,
        size: usize,
        offset: usize,
        bytes: Vec<u8>,
        expire_at_ms: u64,
    },
    /// Sets a hash field.
    HashSet {
        key: String,
        field: String,
        bytes: Vec<u8>,
    },
    /// Deletes a hash field.
    HashDelete { key: String, field: String },
}

/// Key names of the history, under `prefix` (`"sb:"`).
pub(crate) struct HistoryKeys<'a> {
    pub(crate) prefix: &'a str,
}

impl HistoryKeys<'_> {
    pub(crate) fn raw(&self, metric: &str, minute_index: u64) -> String {
        format!("{}metric:{metric}:raw:{minute_index}", self.prefix)
    }

    pub(crate) fn rollups(&self, metric: &str, hour_index: u64) -> String {
        format!("{}metric:{metric}:1m:{hour_index}", self.prefix)
    }

    pub(crate) fn summary(&self) -> String {
        format!("{}metrics:summary", self.prefix)
    }

    pub(crate) fn members(&self, group: &str) -> String {
        format!("{}members:{group}", self.prefix)
    }

    pub(crate) fn claim(&self, key: &str) -> String {
        format!("{}claim:{key}", self.prefix)
    }
}

/// Lowers history writes to key operations.
pub(crate) fn lower_writes(keys: &HistoryKeys<'_>, writes: &[HistoryWrite]) -> Vec<KvOp> {
    let mut ops = Vec::with_capacity(writes.len());
    for write in writes {
        match write {
            HistoryWrite::AppendRaw { metric, samples } => {
                let mut by_minute: Vec<(u64, Vec<RawSample>)> = Vec::new();
                for sample in samples {
                    let minute = sample.ts_ms / MINUTE_MS;
                    match by_minute.iter_mut().find(|(index, _)| *index == minute) {
                        Some((_, group)) => group.push(*sample),
                        None => by_minute.push((minute, vec![*sample])),
                    }
                }
                for (minute, group) in by_minute {
                    ops.push(KvOp::Append {
                        key: keys.raw(metric, minute),
                        bytes: codec::encode_raw(minute * MINUTE_MS, &group),
                        expire_at_ms: raw_expiry(minute),
                    });
                }
            }
            HistoryWrite::ReplaceRawMinute {
                metric,
                minute_start_ms,
                samples,
            } => {
                let minute = minute_start_ms / MINUTE_MS;
                let inside: Vec<RawSample> = samples
                    .iter()
                    .copied()
                    .filter(|sample| sample.ts_ms / MINUTE_MS == minute)
                    .collect();
                ops.push(KvOp::Set {
                    key: keys.raw(metric, minute),
                    bytes: codec::encode_raw(minute * MINUTE_MS, &inside),
                    expire_at_ms: raw_expiry(minute),
                });
            }
            HistoryWrite::PutRollup { metric, rollup } => {
                let minute = rollup.minute_start_ms / MINUTE_MS;
                let hour = rollup.minute_start_ms / HOUR_MS;
                let slot = usize::try_from(minute % 60).unwrap_or(0);
                ops.push(KvOp::WriteAt {
                    key: keys.rollups(metric, hour),
                    size: codec::ROLLUP_RECORD_BYTES * 60,
                    offset: slot * codec::ROLLUP_RECORD_BYTES,
                    bytes: codec::encode_rollup(rollup).to_vec(),
                    expire_at_ms: (hour + 1) * HOUR_MS + ROLLUP_RETENTION_MS,
                });
            }
            HistoryWrite::PutSummary { metric, summary } => ops.push(KvOp::HashSet {
                key: keys.summary(),
                field: metric.clone(),
                bytes: summary.clone(),
            }),
            HistoryWrite::RemoveSummary { metric } => ops.push(KvOp::HashDelete {
                key: keys.summary(),
                field: metric.clone(),
            }),
        }
    }
    ops
}

fn raw_expiry(minute_index: u64) -> u64 {
    (minute_index + 1) * MINUTE_MS + RAW_RETENTION_MS + RAW_EXPIRY_MARGIN_MS
}

/// The raw minute keys covering `(after_ms, until_ms]`.
pub(crate) fn raw_minutes(after_ms: u64, until_ms: u64) -> std::ops::RangeInclusive<u64> {
    (after_ms / MINUTE_MS)..=(until_ms / MINUTE_MS)
}

/// The roll-up hour keys covering minutes starting in `[from_ms, until_ms)`.
pub(crate) fn rollup_hours(from_ms: u64, until_ms: u64) -> std::ops::RangeInclusive<u64> {
    (from_ms / HOUR_MS)..=(until_ms.saturating_sub(1) / HOUR_MS)
}

/// Decodes raw minute blobs, keeps samples in `(after_ms, until_ms]`, sorts them by time and
/// drops exact duplicates.
pub(crate) fn collect_raw(
    blobs: impl IntoIterator<Item = (u64, Option<Vec<u8>>)>,
    after_ms: u64,
    until_ms: u64,
) -> Vec<RawSample> {
    let mut samples: Vec<RawSample> = Vec::new();
    for (minute, blob) in blobs {
        if let Some(blob) = blob {
            samples.extend(
                codec::decode_raw(minute * MINUTE_MS, &blob)
                    .filter(|sample| sample.ts_ms > after_ms && sample.ts_ms <= until_ms),
            );
        }
    }
    sort_and_dedup(&mut samples);
    samples
}

/// Sorts samples by time and removes exact duplicates (same time and value bits).
pub fn sort_and_dedup(samples: &mut Vec<RawSample>) {
    samples.sort_by(|a, b| {
        a.ts_ms
            .cmp(&b.ts_ms)
            .then(a.value.to_bits().cmp(&b.value.to_bits()))
    });
    samples.dedup_by(|a, b| a.ts_ms == b.ts_ms && a.value.to_bits() == b.value.to_bits());
}

/// Decodes roll-up hour blobs, keeping minutes that start in `[from_ms, until_ms)`.
pub(crate) fn collect_rollups(
    blobs: impl IntoIterator<Item = (u64, Option<Vec<u8>>)>,
    from_ms: u64,
    until_ms: u64,
) -> Vec<MinuteRollup> {
    let mut rollups = Vec::new();
    for (hour, blob) in blobs {
        if let Some(blob) = blob {
            rollups.extend(
                codec::decode_rollups(hour * HOUR_MS, &blob).filter(|rollup| {
                    rollup.minute_start_ms >= from_ms && rollup.minute_start_ms < until_ms
                }),
            );
        }
    }
    rollups.sort_by_key(|rollup| rollup.minute_start_ms);
    rollups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_split_by_minute_and_rollups_land_in_their_hour_slot() {
        let keys = HistoryKeys { prefix: "sb:" };
        let samples = vec![
            RawSample {
                ts_ms: 59_999,
                value: 1.0,
            },
            RawSample {
                ts_ms: 60_000,
                value: 2.0,
            },
        ];
        let rollup = MinuteRollup::from_values(HOUR_MS + 2 * MINUTE_MS, &[1.0]).unwrap();
        let ops = lower_writes(
            &keys,
            &[
                HistoryWrite::AppendRaw {
                    metric: "m".into(),
                    samples,
                },
                HistoryWrite::PutRollup {
                    metric: "m".into(),
                    rollup,
                },
            ],
        );
        assert_eq!(ops.len(), 3);
        assert!(matches!(&ops[0], KvOp::Append { key, .. } if key == "sb:metric:m:raw:0"));
        assert!(matches!(&ops[1], KvOp::Append { key, .. } if key == "sb:metric:m:raw:1"));
        assert!(matches!(
            &ops[2],
            KvOp::WriteAt { key, offset, size, .. }
                if key == "sb:metric:m:1m:1" && *offset == 2 * 32 && *size == 60 * 32
        ));
    }

    #[test]
    fn duplicates_are_removed_and_order_is_by_time() {
        let mut samples = vec![
            RawSample {
                ts_ms: 5,
                value: 1.0,
            },
            RawSample {
                ts_ms: 3,
                value: 2.0,
            },
            RawSample {
                ts_ms: 5,
                value: 1.0,
            },
            RawSample {
                ts_ms: 5,
                value: 0.5,
            },
        ];
        sort_and_dedup(&mut samples);
        let times: Vec<u64> = samples.iter().map(|sample| sample.ts_ms).collect();
        assert_eq!(times, vec![3, 5, 5]);
    }
}

//! What a flush writes: new raw samples, complete minutes (rolled up, and their raw key
//! rewritten at its exact size), late minutes rolled up again, and summary entries.
//!
//! A minute is complete [`COMPACTION_GRACE_MS`] after it ends; a sample for it that arrives
//! later (but within the raw hour) is appended and its roll-up recomputed. Right after an
//! adoption every complete minute in memory is rolled up again, which repairs the minutes a
//! crashed owner never rolled up; raw keys are only rewritten for the last
//! [`RAW_REWRITE_HORIZON_MS`], since older ones expire soon anyway.

use std::collections::BTreeSet;

use protocol::envelope::encode_bus;
use protocol::metrics::{MetricSummary, Window};
use store::history::{HistoryWrite, MINUTE_MS, MinuteRollup, RAW_RETENTION_MS, RawSample};

use super::{Engine, Owned, Role};

/// How long after its end a minute is considered complete.
pub(crate) const COMPACTION_GRACE_MS: u64 = 2_000;
/// Complete minutes younger than this get their raw key rewritten at its exact size.
pub(crate) const RAW_REWRITE_HORIZON_MS: u64 = 5 * MINUTE_MS;

impl Engine {
    /// Slides every owned metric's windows to `now_ms`, prunes the standby buffer, forgets
    /// metrics idle for an hour, and returns the writes that bring the store up to date.
    pub(crate) fn flush(&mut self, now_ms: u64) -> Vec<HistoryWrite> {
        let now_ms = self.clock(now_ms);
        self.standby.prune(now_ms);
        let mut writes = std::mem::take(&mut self.released);
        let idle_cutoff = now_ms.saturating_sub(RAW_RETENTION_MS);
        let replica_id = self.replica_id.as_str();
        let summary_interval_ms = self.summary_interval_ms;
        self.entries.retain(|name, entry| match &mut entry.role {
            Role::Owned(owned) => {
                if owned.series.advance(now_ms) {
                    owned.summary_dirty = true;
                }
                let idle = owned.series.len() == 0 && entry.last_seen_ms < idle_cutoff;
                flush_owned(name, owned, now_ms, &mut writes);
                let summary_due = now_ms >= owned.summary_written_ms + summary_interval_ms;
                if owned.summary_dirty && (summary_due || idle) {
                    if let Some(summary) = summary_of(name, owned, replica_id, now_ms) {
                        writes.push(summary);
                    }
                    owned.summary_dirty = false;
                    owned.summary_written_ms = now_ms;
                }
                !idle
            }
            Role::Standby => entry.last_seen_ms >= idle_cutoff,
            Role::Adopting { .. } => true,
        });
        writes
    }
}

fn flush_owned(metric: &str, owned: &mut Owned, now_ms: u64, writes: &mut Vec<HistoryWrite>) {
    // The first minute lying wholly within the raw hour.
    let first_whole_minute = now_ms.saturating_sub(RAW_RETENTION_MS) / MINUTE_MS + 1;
    let mut rollups: BTreeSet<u64> = std::mem::take(&mut owned.late_minutes)
        .into_iter()
        .filter(|minute| *minute >= first_whole_minute)
        .collect();
    let mut rewritten: BTreeSet<u64> = BTreeSet::new();
    let last_complete = (now_ms.saturating_sub(COMPACTION_GRACE_MS) / MINUTE_MS).checked_sub(1);
    if let Some(last) = last_complete {
        let first = owned
            .compacted_through
            .map_or(first_whole_minute, |done| done + 1)
            .max(first_whole_minute);
        if first <= last {
            let minutes: BTreeSet<u64> = owned
                .series
                .points_between(first * MINUTE_MS, (last + 1) * MINUTE_MS)
                .map(|point| point.ts_ms / MINUTE_MS)
                .collect();
            for minute in minutes {
                rollups.insert(minute);
                if (minute + 1) * MINUTE_MS + RAW_REWRITE_HORIZON_MS > now_ms {
                    rewritten.insert(minute);
                }
            }
            owned.compacted_through = Some(last);
            // Once a minute, so float drift in the running sums never builds up.
            owned.series.recompute_sums();
        }
    }
    let appended: Vec<RawSample> = std::mem::take(&mut owned.pending)
        .into_iter()
        .filter(|sample| !rewritten.contains(&(sample.ts_ms / MINUTE_MS)))
        .collect();
    if !appended.is_empty() {
        writes.push(HistoryWrite::AppendRaw {
            metric: metric.to_owned(),
            samples: appended,
        });
    }
    for minute in rewritten {
        let samples = owned
            .series
            .points_between(minute * MINUTE_MS, (minute + 1) * MINUTE_MS)
            .map(|point| RawSample {
                ts_ms: point.ts_ms,
                value: point.value,
            })
            .collect();
        writes.push(HistoryWrite::ReplaceRawMinute {
            metric: metric.to_owned(),
            minute_start_ms: minute * MINUTE_MS,
            samples,
        });
    }
    for minute in rollups {
        let values: Vec<f64> = owned
            .series
            .points_between(minute * MINUTE_MS, (minute + 1) * MINUTE_MS)
            .map(|point| point.value)
            .collect();
        if let Some(rollup) = MinuteRollup::from_values(minute * MINUTE_MS, &values) {
            writes.push(HistoryWrite::PutRollup {
                metric: metric.to_owned(),
                rollup,
            });
        }
    }
}

fn summary_of(metric: &str, owned: &Owned, replica_id: &str, now_ms: u64) -> Option<HistoryWrite> {
    let latest = owned.latest?;
    let summary = MetricSummary {
        metric: metric.to_owned(),
        latest_value: latest.value,
        latest_ts_ms: latest.ts_ms,
        windows: Window::ALL
            .into_iter()
            .map(|window| (window, owned.series.statistics(window)))
            .collect(),
        owner: replica_id.to_owned(),
        updated_ms: now_ms,
    };
    match encode_bus(&summary) {
        Ok(bytes) => Some(HistoryWrite::PutSummary {
            metric: metric.to_owned(),
            summary: bytes,
        }),
        Err(error) => {
            tracing::warn!(metric, error = %error, "metric summary cannot be encoded");
            None
        }
    }
}

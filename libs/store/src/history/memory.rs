//! The in-memory history: the same key layout as Redis, in maps behind one
//! `std::sync::Mutex` that is never held across an `.await`. String keys expire by absolute
//! Unix time like Redis `PXAT`; members and claims by `tokio::time::Instant`, so tests with a
//! paused clock see them expire.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::{
    HOUR_MS, HistoryKeys, KvOp, MetricHistory, RAW_RETENTION_MS, ROLLUP_RETENTION_MS, RawSample,
    collect_raw, collect_rollups, raw_minutes, rollup_hours,
};

/// Expired strings are swept at most this often (reads ignore them regardless).
const SWEEP_INTERVAL_MS: u64 = 60_000;

/// Every history key, member and claim of one process.
#[derive(Debug, Default)]
pub(crate) struct MemoryHistory {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// key → (bytes, expiry in Unix ms).
    strings: HashMap<String, (Vec<u8>, u64)>,
    hashes: HashMap<String, HashMap<String, Vec<u8>>>,
    /// group → member → expiry.
    members: HashMap<String, HashMap<String, Instant>>,
    claims: HashMap<String, Instant>,
    last_sweep_ms: u64,
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl State {
    fn live_string(&self, key: &str, now_ms: u64) -> Option<&Vec<u8>> {
        self.strings
            .get(key)
            .filter(|(_, expire_at)| *expire_at > now_ms)
            .map(|(bytes, _)| bytes)
    }
}

impl MemoryHistory {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below is a single map operation, so a poisoned lock still guards
        // consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn apply(&self, ops: Vec<KvOp>) {
        let now_ms = unix_now_ms();
        let mut state = self.lock();
        for op in ops {
            match op {
                KvOp::Append {
                    key,
                    bytes,
                    expire_at_ms,
                } => {
                    let entry = state.strings.entry(key).or_insert((Vec::new(), 0));
                    if entry.1 <= now_ms {
                        entry.0.clear();
                    }
                    entry.0.extend_from_slice(&bytes);
                    entry.1 = expire_at_ms;
                }
                KvOp::Set {
                    key,
                    bytes,
                    expire_at_ms,
                } => {
                    state.strings.insert(key, (bytes, expire_at_ms));
                }
                KvOp::WriteAt {
                    key,
                    size,
                    offset,
                    bytes,
                    expire_at_ms,
                } => {
                    let entry = state.strings.entry(key).or_insert((Vec::new(), 0));
                    if entry.1 <= now_ms {
                        *entry = (vec![0; size], expire_at_ms);
                    }
                    let end = offset + bytes.len();
                    if entry.0.len() < end {
                        entry.0.resize(end, 0);
                    }
                    entry.0[offset..end].copy_from_slice(&bytes);
                }
                KvOp::HashSet { key, field, bytes } => {
                    state.hashes.entry(key).or_default().insert(field, bytes);
                }
                KvOp::HashDelete { key, field } => {
                    if let Some(hash) = state.hashes.get_mut(&key) {
                        hash.remove(&field);
                    }
                }
            }
        }
        if now_ms.saturating_sub(state.last_sweep_ms) >= SWEEP_INTERVAL_MS {
            state
                .strings
                .retain(|_, (_, expire_at)| *expire_at > now_ms);
            state.last_sweep_ms = now_ms;
        }
    }

    pub(crate) fn raw_samples(
        &self,
        keys: &HistoryKeys<'_>,
        metrics: &[String],
        after_ms: u64,
        until_ms: u64,
    ) -> Vec<Vec<RawSample>> {
        let now_ms = unix_now_ms();
        let state = self.lock();
        metrics
            .iter()
            .map(|metric| {
                let blobs = raw_minutes(after_ms, until_ms).map(|minute| {
                    let blob = state.live_string(&keys.raw(metric, minute), now_ms);
                    (minute, blob.cloned())
                });
                collect_raw(blobs, after_ms, until_ms)
            })
            .collect()
    }

    pub(crate) fn metric_history(
        &self,
        keys: &HistoryKeys<'_>,
        metric: &str,
        from_ms: u64,
        raw_after_ms: u64,
        until_ms: u64,
    ) -> MetricHistory {
        let now_ms = unix_now_ms();
        let state = self.lock();
        let hours = rollup_hours(from_ms, raw_after_ms).map(|hour| {
            let blob = state.live_string(&keys.rollups(metric, hour), now_ms);
            (hour, blob.cloned())
        });
        let rollups = collect_rollups(hours, from_ms, raw_after_ms);
        let minutes = raw_minutes(raw_after_ms, until_ms).map(|minute| {
            let blob = state.live_string(&keys.raw(metric, minute), now_ms);
            (minute, blob.cloned())
        });
        MetricHistory {
            rollups,
            samples: collect_raw(minutes, raw_after_ms, until_ms),
        }
    }

    pub(crate) fn hash_entries(&self, key: &str) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .hashes
            .get(key)
            .map(|hash| {
                hash.iter()
                    .map(|(field, bytes)| (field.clone(), bytes.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn bytes_of(&self, keys: &HistoryKeys<'_>, metric: &str, now_ms: u64) -> u64 {
        let state = self.lock();
        let mut total = 0usize;
        let raw_after = now_ms.saturating_sub(RAW_RETENTION_MS + super::MINUTE_MS);
        for minute in raw_minutes(raw_after, now_ms) {
            let key = keys.raw(metric, minute);
            if let Some(bytes) = state.live_string(&key, now_ms) {
                total += key.len() + bytes.len();
            }
        }
        let rollups_from = now_ms.saturating_sub(ROLLUP_RETENTION_MS + HOUR_MS);
        for hour in rollup_hours(rollups_from, now_ms + HOUR_MS) {
            let key = keys.rollups(metric, hour);
            if let Some(bytes) = state.live_string(&key, now_ms) {
                total += key.len() + bytes.len();
            }
        }
        if let Some(summary) = state
            .hashes
            .get(&keys.summary())
            .and_then(|hash| hash.get(metric))
        {
            total += metric.len() + summary.len();
        }
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    pub(crate) fn register_member(&self, group: &str, member: &str, ttl: Duration) {
        let expires_at = Instant::now() + ttl;
        self.lock()
            .members
            .entry(group.to_owned())
            .or_default()
            .insert(member.to_owned(), expires_at);
    }

    pub(crate) fn remove_member(&self, group: &str, member: &str) {
        if let Some(members) = self.lock().members.get_mut(group) {
            members.remove(member);
        }
    }

    pub(crate) fn live_members(&self, group: &str) -> Vec<String> {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(members) = state.members.get_mut(group) else {
            return Vec::new();
        };
        members.retain(|_, expires_at| *expires_at > now);
        let mut live: Vec<String> = members.keys().cloned().collect();
        live.sort();
        live
    }

    pub(crate) fn claim_once(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        if state.claims.len() >= 1024 {
            state.claims.retain(|_, expires_at| *expires_at > now);
        }
        match state.claims.get(key) {
            Some(expires_at) if *expires_at > now => false,
            _ => {
                state.claims.insert(key.to_owned(), now + ttl);
                true
            }
        }
    }
}

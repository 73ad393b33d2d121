//! The Redis history: writes as one Lua script per chunk (`lua/write_history.lua`), reads as
//! one `MGET` per batch of keys, membership on the Redis clock.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{
    HOUR_MS, HistoryKeys, HistoryWrite, KvOp, MAX_WRITES_PER_ROUND_TRIP, MINUTE_MS, MetricHistory,
    RAW_RETENTION_MS, ROLLUP_RETENTION_MS, RawSample, collect_raw, collect_rollups, lower_writes,
    raw_minutes, rollup_hours,
};
use crate::StoreError;
use crate::redis_backend::RedisStore;

// Scripts are immutable data hashed once; `Script` re-loads itself after a Redis restart.
static WRITE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/write_history.lua")));
static REGISTER_MEMBER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/register_member.lua")));
static LIVE_MEMBERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/live_members.lua")));
static HISTORY_BYTES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/history_bytes.lua")));

/// Metrics whose raw keys go into one `MGET` (61 keys each), so one reply stays a few MB.
const METRICS_PER_READ: usize = 64;

fn keys(redis: &RedisStore) -> HistoryKeys<'_> {
    HistoryKeys {
        prefix: redis.key_prefix(),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

pub(super) async fn write(redis: &RedisStore, writes: &[HistoryWrite]) -> Result<(), StoreError> {
    let ops = lower_writes(&keys(redis), writes);
    for chunk in ops.chunks(MAX_WRITES_PER_ROUND_TRIP) {
        let mut invocation = WRITE.prepare_invoke();
        for op in chunk {
            match op {
                KvOp::Append {
                    key,
                    bytes,
                    expire_at_ms,
                } => {
                    invocation.arg("A").arg(key).arg(bytes).arg(expire_at_ms);
                }
                KvOp::Set {
                    key,
                    bytes,
                    expire_at_ms,
                } => {
                    invocation.arg("S").arg(key).arg(bytes).arg(expire_at_ms);
                }
                KvOp::WriteAt {
                    key,
                    size,
                    offset,
                    bytes,
                    expire_at_ms,
                } => {
                    invocation
                        .arg("W")
                        .arg(key)
                        .arg(bytes)
                        .arg(expire_at_ms)
                        .arg(offset)
                        .arg(size);
                }
                KvOp::HashSet { key, field, bytes } => {
                    invocation.arg("H").arg(key).arg(field).arg(bytes);
                }
                KvOp::HashDelete { key, field } => {
                    invocation.arg("D").arg(key).arg(field);
                }
            }
        }
        redis.invoke::<i64>(&invocation).await?;
    }
    Ok(())
}

async fn mget(redis: &RedisStore, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut command = redis::cmd("MGET");
    command.arg(keys);
    redis.query(&command).await
}

pub(super) async fn raw_samples(
    redis: &RedisStore,
    metrics: &[String],
    after_ms: u64,
    until_ms: u64,
) -> Result<Vec<Vec<RawSample>>, StoreError> {
    let keys = keys(redis);
    let minutes: Vec<u64> = raw_minutes(after_ms, until_ms).collect();
    let mut result = Vec::with_capacity(metrics.len());
    for batch in metrics.chunks(METRICS_PER_READ) {
        let names: Vec<String> = batch
            .iter()
            .flat_map(|metric| minutes.iter().map(|minute| keys.raw(metric, *minute)))
            .collect();
        let mut blobs = mget(redis, &names).await?.into_iter();
        for _ in batch {
            let metric_blobs: Vec<(u64, Option<Vec<u8>>)> = minutes
                .iter()
                .map(|minute| (*minute, blobs.next().flatten()))
                .collect();
            result.push(collect_raw(metric_blobs, after_ms, until_ms));
        }
    }
    Ok(result)
}

pub(super) async fn metric_history(
    redis: &RedisStore,
    metric: &str,
    from_ms: u64,
    raw_after_ms: u64,
    until_ms: u64,
) -> Result<MetricHistory, StoreError> {
    let keys = keys(redis);
    let hours: Vec<u64> = rollup_hours(from_ms, raw_after_ms).collect();
    let minutes: Vec<u64> = raw_minutes(raw_after_ms, until_ms).collect();
    let names: Vec<String> = hours
        .iter()
        .map(|hour| keys.rollups(metric, *hour))
        .chain(minutes.iter().map(|minute| keys.raw(metric, *minute)))
        .collect();
    let mut blobs = mget(redis, &names).await?.into_iter();
    let hour_blobs: Vec<(u64, Option<Vec<u8>>)> = hours
        .iter()
        .map(|hour| (*hour, blobs.next().flatten()))
        .collect();
    let minute_blobs: Vec<(u64, Option<Vec<u8>>)> = minutes
        .iter()
        .map(|minute| (*minute, blobs.next().flatten()))
        .collect();
    Ok(MetricHistory {
        rollups: collect_rollups(hour_blobs, from_ms, raw_after_ms),
        samples: collect_raw(minute_blobs, raw_after_ms, until_ms),
    })
}

pub(super) async fn summaries(redis: &RedisStore) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut command = redis::cmd("HGETALL");
    command.arg(keys(redis).summary());
    let entries: HashMap<String, Vec<u8>> = redis.query(&command).await?;
    Ok(entries.into_iter().collect())
}

pub(super) async fn history_bytes(
    redis: &RedisStore,
    metric: &str,
    now_ms: u64,
) -> Result<u64, StoreError> {
    let keys = keys(redis);
    let mut invocation = HISTORY_BYTES.prepare_invoke();
    let raw_after = now_ms.saturating_sub(RAW_RETENTION_MS + MINUTE_MS);
    for minute in raw_minutes(raw_after, now_ms) {
        invocation.key(keys.raw(metric, minute));
    }
    let rollups_from = now_ms.saturating_sub(ROLLUP_RETENTION_MS + HOUR_MS);
    for hour in rollup_hours(rollups_from, now_ms + HOUR_MS) {
        invocation.key(keys.rollups(metric, hour));
    }
    invocation.key(keys.summary()).arg(metric);
    redis.invoke(&invocation).await
}

pub(super) async fn register_member(
    redis: &RedisStore,
    group: &str,
    member: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    let mut invocation = REGISTER_MEMBER.prepare_invoke();
    invocation
        .key(keys(redis).members(group))
        .arg(member)
        .arg(millis(ttl));
    redis.invoke::<i64>(&invocation).await.map(|_| ())
}

pub(super) async fn remove_member(
    redis: &RedisStore,
    group: &str,
    member: &str,
) -> Result<(), StoreError> {
    let mut command = redis::cmd("ZREM");
    command.arg(keys(redis).members(group)).arg(member);
    redis.query::<i64>(&command).await.map(|_| ())
}

pub(super) async fn live_members(
    redis: &RedisStore,
    group: &str,
) -> Result<Vec<String>, StoreError> {
    let mut invocation = LIVE_MEMBERS.prepare_invoke();
    invocation.key(keys(redis).members(group));
    let mut members: Vec<String> = redis.invoke(&invocation).await?;
    members.sort();
    Ok(members)
}

pub(super) async fn claim_once(
    redis: &RedisStore,
    key: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let mut command = redis::cmd("SET");
    command
        .arg(keys(redis).claim(key))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(millis(ttl));
    let reply: Option<String> = redis.query(&command).await?;
    Ok(reply.is_some())
}

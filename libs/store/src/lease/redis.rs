//! The Redis leases: one Lua script per operation (see `lua/`), so every check-and-change
//! is atomic. The lease key holds `"<holder>|<token>"`, so renew, release and claim compare
//! one string to know that the caller's acquisition is still the current one.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Lease, TickClaim, ttl_millis};
use crate::StoreError;
use crate::redis_backend::RedisStore;

// Scripts are immutable data hashed once; `Script` re-loads itself after a Redis restart.
static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/acquire_lease.lua")));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew_lease.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/release_lease.lua")));
static CLAIM_TICK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_lease_tick.lua")));

fn lease_key(redis: &RedisStore, name: &str) -> String {
    format!("{}lease:{name}", redis.key_prefix())
}

fn token_key(redis: &RedisStore, name: &str) -> String {
    format!("{}lease:{name}:token", redis.key_prefix())
}

fn ticks_key(redis: &RedisStore, name: &str) -> String {
    format!("{}lease:{name}:ticks", redis.key_prefix())
}

/// The lease key's value while `lease` is the current acquisition.
fn holding_value(lease: &Lease) -> String {
    format!("{}|{}", lease.holder, lease.fencing_token)
}

pub(super) async fn acquire(
    redis: &RedisStore,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<u64>, StoreError> {
    let mut invocation = ACQUIRE.prepare_invoke();
    invocation
        .key(lease_key(redis, name))
        .key(token_key(redis, name))
        .arg(holder)
        .arg(ttl_millis(ttl));
    let token: u64 = redis.invoke(&invocation).await?;
    Ok((token > 0).then_some(token))
}

pub(super) async fn renew(
    redis: &RedisStore,
    lease: &Lease,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let mut invocation = RENEW.prepare_invoke();
    invocation
        .key(lease_key(redis, &lease.name))
        .arg(holding_value(lease))
        .arg(ttl_millis(ttl));
    let renewed: i64 = redis.invoke(&invocation).await?;
    Ok(renewed == 1)
}

pub(super) async fn release(redis: &RedisStore, lease: &Lease) -> Result<bool, StoreError> {
    let mut invocation = RELEASE.prepare_invoke();
    invocation
        .key(lease_key(redis, &lease.name))
        .arg(holding_value(lease));
    let released: i64 = redis.invoke(&invocation).await?;
    Ok(released == 1)
}

pub(super) async fn holder(
    redis: &RedisStore,
    name: &str,
) -> Result<Option<(String, u64)>, StoreError> {
    let mut get = redis::cmd("GET");
    get.arg(lease_key(redis, name));
    let value: Option<String> = redis.query(&get).await?;
    value.map(|value| parse_holding(&value)).transpose()
}

fn parse_holding(value: &str) -> Result<(String, u64), StoreError> {
    value
        .rsplit_once('|')
        .and_then(|(holder, token)| Some((holder.to_owned(), token.parse().ok()?)))
        .ok_or_else(|| StoreError::Corrupt {
            what: "lease holding",
            source: format!("{value:?} is not <holder>|<token>").into(),
        })
}

pub(super) async fn claim_tick(
    redis: &RedisStore,
    lease: &Lease,
    stream: &str,
    tick: u64,
) -> Result<TickClaim, StoreError> {
    let mut invocation = CLAIM_TICK.prepare_invoke();
    invocation
        .key(lease_key(redis, &lease.name))
        .key(ticks_key(redis, &lease.name))
        .arg(holding_value(lease))
        .arg(stream)
        .arg(tick);
    let (status, last): (i64, u64) = redis.invoke(&invocation).await?;
    Ok(match status {
        1 => TickClaim::Claimed,
        0 => TickClaim::AlreadyClaimed { last },
        _ => TickClaim::LeaseLost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_split_at_the_last_bar_so_holders_may_contain_one() {
        assert_eq!(parse_holding("a|b|7").unwrap(), ("a|b".to_owned(), 7));
        assert!(parse_holding("no-token").is_err());
        assert!(parse_holding("a|x").is_err());
    }
}

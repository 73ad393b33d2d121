//! Liveness of service instances other than gateways (publisher, aggregator, batch-ingest,
//! device reader): each instance announces itself with a TTL and refreshes it, as gateways
//! do with [`Store::register_gateway`]; readers see every instance of a service with
//! whether it is live, so an instance that was seen and then went silent shows as down
//! rather than vanishing.
//!
//! With the default key prefix `sb`:
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `sb:svc:<service>` | hash, PX TTL | instance id → `"<last seen ms>:<expires at ms>"` (Redis clock) |
//!
//! An instance that leaves cleanly ([`Store::withdraw_instance`]) is deleted at once. One
//! whose announcement expired stays listed, not live, for [`SERVICE_FORGET_AFTER`]; then
//! it is forgotten (and the whole key expires when nobody announces for that long).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;

use crate::redis_backend::RedisStore;
use crate::{Backend, Store, StoreError};

/// A liveness TTL for services without one of their own: refreshed every 2 s by
/// [`Store::keep_announced`], so an instance that stops answering shows as down within 6 s.
pub const ANNOUNCE_TTL: Duration = Duration::from_secs(6);

/// How long an instance whose announcement expired is still listed (as not live).
pub const SERVICE_FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One instance of a service as [`Store::service_instances`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// The instance id it announced.
    pub instance: String,
    /// Whether its last announcement has not expired.
    pub live: bool,
    /// Time since its last announcement.
    pub since_last_seen: Duration,
}

static ANNOUNCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("liveness/announce.lua")));
static INSTANCES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("liveness/instances.lua")));

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Store {
    /// Announces `instance` of `service` as live for `ttl`; call it again before `ttl` runs
    /// out to stay live.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn announce_instance(
        &self,
        service: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.liveness.announce(service, instance, ttl);
                Ok(())
            }
            Backend::Redis(redis) => {
                let mut invocation = ANNOUNCE.prepare_invoke();
                invocation
                    .key(key(redis, service))
                    .arg(instance)
                    .arg(millis(ttl))
                    .arg(millis(SERVICE_FORGET_AFTER));
                redis.invoke::<i64>(&invocation).await.map(|_| ())
            }
        }
    }

    /// Removes `instance` of `service` at once (a clean shutdown): it is not listed any more.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn withdraw_instance(&self, service: &str, instance: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => {
                memory.liveness.withdraw(service, instance);
                Ok(())
            }
            Backend::Redis(redis) => {
                let mut command = redis::cmd("HDEL");
                command.arg(key(redis, service)).arg(instance);
                redis.query::<i64>(&command).await.map(|_| ())
            }
        }
    }

    /// Returns the instances of `service` announced within [`SERVICE_FORGET_AFTER`] and not
    /// withdrawn, sorted by id, each with whether it is live.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn service_instances(
        &self,
        service: &str,
    ) -> Result<Vec<ServiceInstance>, StoreError> {
        let mut instances = match &*self.backend {
            Backend::Memory(memory) => memory.liveness.instances(service),
            Backend::Redis(redis) => {
                let mut invocation = INSTANCES.prepare_invoke();
                invocation
                    .key(key(redis, service))
                    .arg(millis(SERVICE_FORGET_AFTER));
                let (now_ms, entries): (u64, Vec<(String, String)>) =
                    redis.invoke(&invocation).await?;
                entries
                    .into_iter()
                    .filter_map(|(instance, value)| {
                        let (last_seen, expires_at) = value.split_once(':')?;
                        let last_seen: u64 = last_seen.parse().ok()?;
                        let expires_at: u64 = expires_at.parse().ok()?;
                        Some(ServiceInstance {
                            instance,
                            live: expires_at > now_ms,
                            since_last_seen: Duration::from_millis(
                                now_ms.saturating_sub(last_seen),
                            ),
                        })
                    })
                    .collect()
            }
        };
        instances.sort_by(|a, b| a.instance.cmp(&b.instance));
        Ok(instances)
    }

    /// Announces `instance` of `service` every third of `ttl` until `stop` resolves, then
    /// withdraws it. Store failures are logged and retried at the next announcement; the
    /// instance then shows as not live until the store answers again.
    pub async fn keep_announced(
        &self,
        service: &str,
        instance: &str,
        ttl: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        let mut ticker = tokio::time::interval((ttl / 3).max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticker.tick() => {}
            }
            let announced = tokio::select! {
                () = &mut stop => break,
                announced = self.announce_instance(service, instance, ttl) => announced,
            };
            match announced {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(service, instance, "liveness announced again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(service, instance, error = %error, "liveness not announced; retrying");
                }
                Err(_) => {}
            }
        }
        // Bounded: every store call returns within the response timeout.
        if let Err(error) = self.withdraw_instance(service, instance).await {
            tracing::warn!(service, instance, error = %error, "liveness not withdrawn; it expires with its ttl");
        }
    }
}

fn key(redis: &RedisStore, service: &str) -> String {
    format!("{}svc:{service}", redis.key_prefix())
}

/// service → instance → (last announced, expires at).
type Instances = HashMap<String, HashMap<String, (Instant, Instant)>>;

/// The in-memory liveness, on `tokio::time::Instant` so tests with a paused clock see
/// announcements expire.
#[derive(Debug, Default)]
pub(crate) struct MemoryLiveness {
    services: Mutex<Instances>,
}

impl MemoryLiveness {
    fn lock(&self) -> MutexGuard<'_, Instances> {
        // Every mutation is a single map operation, so a poisoned lock still guards
        // consistent state.
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn announce(&self, service: &str, instance: &str, ttl: Duration) {
        let now = Instant::now();
        let mut services = self.lock();
        let instances = services.entry(service.to_owned()).or_default();
        instances.retain(|_, (_, expires_at)| *expires_at + SERVICE_FORGET_AFTER > now);
        instances.insert(instance.to_owned(), (now, now + ttl));
    }

    fn withdraw(&self, service: &str, instance: &str) {
        if let Some(instances) = self.lock().get_mut(service) {
            instances.remove(instance);
        }
    }

    fn instances(&self, service: &str) -> Vec<ServiceInstance> {
        let now = Instant::now();
        let mut services = self.lock();
        let Some(instances) = services.get_mut(service) else {
            return Vec::new();
        };
        instances.retain(|_, (_, expires_at)| *expires_at + SERVICE_FORGET_AFTER > now);
        instances
            .iter()
            .map(|(instance, (last_seen, expires_at))| ServiceInstance {
                instance: instance.clone(),
                live: *expires_at > now,
                since_last_seen: now.saturating_duration_since(*last_seen),
            })
            .collect()
    }
}

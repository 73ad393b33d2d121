//! Leader leases with fencing: at most one holder of a named lease at a time, and a token
//! that grows with every acquisition so work done under an old lease can be told apart (and
//! refused) once a newer holder exists.
//!
//! A holder [acquires](Store::acquire_lease) the lease for a TTL and must
//! [renew](Store::renew_lease) it before the TTL runs out; a holder that stops renewing (a
//! crash, a partition, a long pause) loses it when the TTL expires, and the next
//! [`Store::acquire_lease`] by anyone succeeds with a larger [`Lease::fencing_token`].
//! Renewal, release and [`Store::claim_lease_tick`] all check that the caller's
//! acquisition is still the current one (same holder *and* same token), so a holder that
//! lost the lease and was paused while someone else took it cannot extend, drop or use the
//! newer lease.
//!
//! [`Store::claim_lease_tick`] is the fencing check for periodic work: each stream of work
//! (`"nodes:5000"`) has a high-water mark of the last tick done, and a tick is claimed only
//! by the current holder and only if it is above the mark. Claim, then act: two holders can
//! never both act on the same tick, and a new holder continues from the next unclaimed tick.
//!
//! Redis keys (prefix `sb`): `sb:lease:<name>` (the holder, PX TTL), `sb:lease:<name>:token`
//! (the fencing counter, kept forever so tokens never repeat), `sb:lease:<name>:ticks` (hash:
//! stream → last claimed tick). Each operation is one Lua script, so it is atomic.

mod memory;
mod redis;

use std::time::Duration;

pub(crate) use memory::MemoryLeases;

use crate::{Backend, Store, StoreError};

/// One acquisition of a named lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name (e.g. `publisher`).
    pub name: String,
    /// Who holds it; unique per process (e.g. `publisher-<host>-<uuid>`).
    pub holder: String,
    /// Grows with every acquisition of this lease name, by anyone; never reused.
    pub fencing_token: u64,
}

/// The outcome of [`Store::claim_lease_tick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickClaim {
    /// The tick is yours: it was above the stream's mark, which now equals it.
    Claimed,
    /// A tick at or above this one was already claimed; `last` is the stream's mark.
    AlreadyClaimed {
        /// The highest tick claimed so far for the stream.
        last: u64,
    },
    /// The lease is no longer held by this acquisition; nothing was changed.
    LeaseLost,
}

impl Store {
    /// Takes the lease `name` for `holder` for `ttl` if nobody holds it (or the previous
    /// holding has expired), with a fencing token larger than every earlier one. Returns
    /// `None` while anyone, `holder` included, holds it: a holder renews, it does not
    /// re-acquire.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; the lease may then have
    /// been taken without the caller knowing, in which case it expires after `ttl`.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let token = match &*self.backend {
            Backend::Memory(memory) => memory.leases.acquire(name, holder, ttl),
            Backend::Redis(redis) => redis::acquire(redis, name, holder, ttl).await?,
        };
        Ok(token.map(|fencing_token| Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            fencing_token,
        }))
    }

    /// Extends `lease` to expire `ttl` from now, if it is still the current acquisition.
    /// Returns `false` when it was lost (expired, taken by someone else, or released);
    /// the caller must then stop acting as the holder.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; the lease then still
    /// expires at its previous deadline.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.leases.renew(lease, ttl)),
            Backend::Redis(redis) => redis::renew(redis, lease, ttl).await,
        }
    }

    /// Gives `lease` up at once so another holder can take it without waiting for the TTL.
    /// Returns whether it was still held; releasing a lost lease changes nothing.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; the lease then expires
    /// with its TTL.
    pub async fn release_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.leases.release(lease)),
            Backend::Redis(redis) => redis::release(redis, lease).await,
        }
    }

    /// Returns the current holder of `name` and its fencing token, if anyone holds it.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, u64)>, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.leases.holder(name)),
            Backend::Redis(redis) => redis::holder(redis, name).await,
        }
    }

    /// Claims `tick` of `stream` under `lease`: succeeds only if `lease` is still the current
    /// acquisition and `tick` is above every tick claimed before for `stream` (by any holder
    /// of the lease), and then raises the stream's mark to `tick`. Ticks need not be
    /// consecutive. Use one stream name per tick length, since ticks of different lengths
    /// are not comparable.
    ///
    /// # Errors
    /// Returns a [`StoreError`] if Redis is unreachable or slow; nothing is claimed then.
    pub async fn claim_lease_tick(
        &self,
        lease: &Lease,
        stream: &str,
        tick: u64,
    ) -> Result<TickClaim, StoreError> {
        match &*self.backend {
            Backend::Memory(memory) => Ok(memory.leases.claim_tick(lease, stream, tick)),
            Backend::Redis(redis) => redis::claim_tick(redis, lease, stream, tick).await,
        }
    }
}

/// A TTL in whole milliseconds for Redis `PX`, at least 1 (`PX 0` is an error).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

//! The in-memory leases: the same semantics as the Redis scripts, behind one
//! `std::sync::Mutex` that is never held across an `.await`. Expiry compares
//! `tokio::time::Instant`s, so tests with a paused clock see leases expire.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Lease, TickClaim};

/// Every lease name's state in one process.
#[derive(Debug, Default)]
pub(crate) struct MemoryLeases {
    leases: Mutex<HashMap<String, LeaseState>>,
}

#[derive(Debug, Default)]
struct LeaseState {
    /// The current holding; may have expired (checked on every read).
    holding: Option<Holding>,
    /// The last fencing token handed out; kept after expiry so tokens never repeat.
    last_token: u64,
    /// stream → last claimed tick.
    ticks: HashMap<String, u64>,
}

#[derive(Debug)]
struct Holding {
    holder: String,
    token: u64,
    expires_at: Instant,
}

impl LeaseState {
    fn live_holding(&self, now: Instant) -> Option<&Holding> {
        self.holding
            .as_ref()
            .filter(|holding| holding.expires_at > now)
    }

    fn is_held_by(&self, lease: &Lease, now: Instant) -> bool {
        self.live_holding(now).is_some_and(|holding| {
            holding.holder == lease.holder && holding.token == lease.fencing_token
        })
    }
}

impl MemoryLeases {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, LeaseState>> {
        // Every mutation below is a few assignments that cannot panic halfway.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Option<u64> {
        let now = Instant::now();
        let mut leases = self.lock();
        let state = leases.entry(name.to_owned()).or_default();
        if state.live_holding(now).is_some() {
            return None;
        }
        state.last_token += 1;
        state.holding = Some(Holding {
            holder: holder.to_owned(),
            token: state.last_token,
            expires_at: now + ttl,
        });
        Some(state.last_token)
    }

    pub(crate) fn renew(&self, lease: &Lease, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut leases = self.lock();
        let Some(state) = leases.get_mut(&lease.name) else {
            return false;
        };
        if !state.is_held_by(lease, now) {
            return false;
        }
        if let Some(holding) = state.holding.as_mut() {
            holding.expires_at = now + ttl;
        }
        true
    }

    pub(crate) fn release(&self, lease: &Lease) -> bool {
        let now = Instant::now();
        let mut leases = self.lock();
        let Some(state) = leases.get_mut(&lease.name) else {
            return false;
        };
        if !state.is_held_by(lease, now) {
            return false;
        }
        state.holding = None;
        true
    }

    pub(crate) fn holder(&self, name: &str) -> Option<(String, u64)> {
        let now = Instant::now();
        let leases = self.lock();
        leases
            .get(name)
            .and_then(|state| state.live_holding(now))
            .map(|holding| (holding.holder.clone(), holding.token))
    }

    pub(crate) fn claim_tick(&self, lease: &Lease, stream: &str, tick: u64) -> TickClaim {
        let now = Instant::now();
        let mut leases = self.lock();
        let Some(state) = leases.get_mut(&lease.name) else {
            return TickClaim::LeaseLost;
        };
        if !state.is_held_by(lease, now) {
            return TickClaim::LeaseLost;
        }
        match state.ticks.get(stream) {
            Some(&last) if last >= tick => TickClaim::AlreadyClaimed { last },
            _ => {
                state.ticks.insert(stream.to_owned(), tick);
                TickClaim::Claimed
            }
        }
    }
}

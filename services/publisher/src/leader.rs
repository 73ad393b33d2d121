//! Leader election over a store lease: one replica publishes, the others stand by with a
//! warm registry and take over when the leader's lease expires.
//!
//! The leader renews every `lease_renew_interval`; a standby tries to acquire at the same
//! pace. Leadership is only believed locally until `sent + ttl - ttl/10`, where `sent` is
//! when the last successful renewal was *sent*: the store started its TTL later than that,
//! so by this local deadline no other replica can have acquired the lease yet (the tenth is
//! slack for clocks running at slightly different rates). A leader that cannot renew (store
//! down, process paused) thus stops believing it leads before anyone else can start.
//! Every publish additionally claims its tick in the store under the lease
//! ([`store::Store::claim_lease_tick`]), which a deposed leader cannot do.

use std::sync::Arc;
use std::time::Duration;

use store::Lease;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::state::Shared;

/// A lease this replica holds, and until when it may act on it.
#[derive(Debug, Clone)]
pub(crate) struct Leadership {
    pub lease: Lease,
    pub valid_until: Instant,
}

/// Read side of the leadership state, cheap to clone into every stream task.
#[derive(Debug, Clone)]
pub(crate) struct Leader {
    state_rx: watch::Receiver<Option<Leadership>>,
}

impl Leader {
    /// Returns the lease if this replica holds it right now.
    pub(crate) fn current(&self) -> Option<Lease> {
        self.state_rx
            .borrow()
            .as_ref()
            .filter(|held| held.valid_until > Instant::now())
            .map(|held| held.lease.clone())
    }

    /// Waits until leadership is gained, lost or renewed. Never returns if the election task
    /// has ended, so callers can select on it freely.
    pub(crate) async fn changed(&mut self) {
        if self.state_rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Creates the leadership channel: the sender for [`run`], the reader for everyone else.
pub(crate) fn channel() -> (watch::Sender<Option<Leadership>>, Leader) {
    let (state_tx, state_rx) = watch::channel(None);
    (state_tx, Leader { state_rx })
}

/// Local leadership ends this long before the store's TTL would (see the module docs).
fn safety_margin(ttl: Duration) -> Duration {
    ttl / 10
}

/// Runs the election until `shutdown`, then releases the lease if held, so a standby takes
/// over at once instead of after the TTL.
pub(crate) async fn run(
    shared: Arc<Shared>,
    state_tx: watch::Sender<Option<Leadership>>,
    shutdown: CancellationToken,
) {
    let config = &shared.config;
    let (ttl, pace) = (config.lease_ttl, config.lease_renew_interval);
    let valid_for = ttl - safety_margin(ttl);
    let mut held: Option<Leadership> = None;
    // A store outage fails every attempt; warn when it starts, not once per attempt.
    let mut store_failing = false;
    loop {
        let sent = Instant::now();
        held = match held.take() {
            None => match shared
                .store
                .acquire_lease(&config.lease_name, &shared.instance_id, ttl)
                .await
            {
                Ok(Some(lease)) => {
                    store_failing = false;
                    info!(epoch = lease.fencing_token, holder = %lease.holder, "leader lease acquired; publishing");
                    shared.metrics.lease_epoch.set(epoch_gauge(&lease));
                    Some(Leadership {
                        lease,
                        valid_until: sent + valid_for,
                    })
                }
                Ok(None) => None,
                Err(error) => {
                    shared.metrics.lease_errors.inc();
                    if !store_failing {
                        warn!(error = %error, "leader lease cannot be acquired; standing by");
                    }
                    store_failing = true;
                    None
                }
            },
            Some(current) => match shared.store.renew_lease(&current.lease, ttl).await {
                Ok(true) => Some(Leadership {
                    valid_until: sent + valid_for,
                    ..current
                }),
                Ok(false) => {
                    warn!(
                        epoch = current.lease.fencing_token,
                        "leader lease lost; standing by"
                    );
                    None
                }
                Err(error) if current.valid_until > Instant::now() => {
                    shared.metrics.lease_errors.inc();
                    warn!(error = %error, "leader lease renewal failed; retrying");
                    Some(current)
                }
                Err(error) => {
                    shared.metrics.lease_errors.inc();
                    warn!(error = %error, "leader lease expired without renewal; standing by");
                    None
                }
            },
        };
        shared.metrics.leader.set(i64::from(held.is_some()));
        // Renewals only move the deadline; stream tasks are woken when leadership is gained
        // or lost, not every renewal.
        state_tx.send_if_modified(|state| {
            let epoch_of = |held: &Option<Leadership>| held.as_ref().map(|h| h.lease.fencing_token);
            let changed = epoch_of(state) != epoch_of(&held);
            state.clone_from(&held);
            changed
        });
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pace) => {}
        }
    }
    state_tx.send_replace(None);
    shared.metrics.leader.set(0);
    if let Some(current) = held {
        match shared.store.release_lease(&current.lease).await {
            Ok(_) => info!(epoch = current.lease.fencing_token, "leader lease released"),
            Err(error) => {
                warn!(error = %error, "leader lease not released; it expires with its ttl")
            }
        }
    }
}

fn epoch_gauge(lease: &Lease) -> i64 {
    i64::try_from(lease.fencing_token).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn leadership_is_believed_only_until_its_deadline() {
        let (state_tx, leader) = channel();
        assert!(leader.current().is_none());
        let lease = Lease {
            name: "publisher".into(),
            holder: "a".into(),
            fencing_token: 3,
        };
        state_tx.send_replace(Some(Leadership {
            lease: lease.clone(),
            valid_until: Instant::now() + Duration::from_secs(1),
        }));
        assert_eq!(leader.current(), Some(lease));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(leader.current().is_none());
    }
}

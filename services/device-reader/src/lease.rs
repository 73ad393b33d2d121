//! One device's lease: exactly one replica reads a device at a time.
//!
//! Each device has its own store lease `device-reader.<id>` (the publisher's scheme: a TTL,
//! renewal by the holder, a fencing token). The holder renews every `renew`; standbys try
//! to acquire at the same pace, so a dead holder is replaced within `ttl + renew` (two
//! reading intervals with the default timing). Holding is believed locally only until
//! `sent + ttl - ttl/10`, where `sent` is when the last successful renewal was sent, so a
//! holder that cannot renew stops before anyone else can start. Each reading additionally
//! claims its wall-clock tick in the store under the lease ([`store::Store::claim_lease_tick`]),
//! so two holders can never both publish a tick, even across a takeover.
//!
//! The keeper runs as its own task so a slow instrument (a read that runs into its timeout)
//! never delays a renewal.

use std::sync::Arc;
use std::time::Duration;

use store::Lease;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::LeaseTiming;
use crate::server::Context;

/// A lease held, and until when it may be acted on.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub lease: Lease,
    pub valid_until: Instant,
}

/// The reader's view of the lease.
#[derive(Debug, Clone)]
pub(crate) struct LeaseWatch {
    state_rx: watch::Receiver<Option<Held>>,
}

impl LeaseWatch {
    /// The lease, if held right now.
    pub(crate) fn current(&self) -> Option<Lease> {
        self.state_rx
            .borrow()
            .as_ref()
            .filter(|held| held.valid_until > Instant::now())
            .map(|held| held.lease.clone())
    }

    /// Waits until the lease is gained or lost; pending forever once the keeper has ended.
    pub(crate) async fn changed(&mut self) {
        if self.state_rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The name of a device's lease.
pub(crate) fn lease_name(device_id: &str) -> String {
    format!("device-reader.{device_id}")
}

/// Starts keeping `name`'s lease in `tasks` until `stop`; the lease is released when the
/// keeper stops. Aborting `tasks` (dropping it) ends the keeper without a release, as a crash.
pub(crate) fn spawn_keeper(
    tasks: &mut JoinSet<()>,
    context: Arc<Context>,
    name: String,
    timing: LeaseTiming,
    stop: CancellationToken,
) -> LeaseWatch {
    let (state_tx, state_rx) = watch::channel(None);
    tasks.spawn(keep(context, name, timing, state_tx, stop));
    LeaseWatch { state_rx }
}

async fn keep(
    context: Arc<Context>,
    name: String,
    timing: LeaseTiming,
    state_tx: watch::Sender<Option<Held>>,
    stop: CancellationToken,
) {
    let store = &context.store;
    let holder = &context.instance_id;
    let valid_for = timing.ttl - timing.ttl / 10;
    let mut held: Option<Held> = None;
    let mut store_failing = false;
    loop {
        let sent = Instant::now();
        held = match held.take() {
            None => match store.acquire_lease(&name, holder, timing.ttl).await {
                Ok(Some(lease)) => {
                    store_failing = false;
                    info!(lease = %name, epoch = lease.fencing_token, "device lease acquired; reading");
                    Some(Held {
                        lease,
                        valid_until: sent + valid_for,
                    })
                }
                Ok(None) => None,
                Err(error) => {
                    context.metrics.lease_errors.inc();
                    if !store_failing {
                        warn!(lease = %name, error = %error, "device lease cannot be acquired; standing by");
                    }
                    store_failing = true;
                    None
                }
            },
            Some(current) => match store.renew_lease(&current.lease, timing.ttl).await {
                Ok(true) => Some(Held {
                    valid_until: sent + valid_for,
                    ..current
                }),
                Ok(false) => {
                    warn!(lease = %name, epoch = current.lease.fencing_token, "device lease lost; standing by");
                    None
                }
                Err(error) if current.valid_until > Instant::now() => {
                    context.metrics.lease_errors.inc();
                    debug!(lease = %name, error = %error, "device lease renewal failed; retrying");
                    Some(current)
                }
                Err(error) => {
                    context.metrics.lease_errors.inc();
                    warn!(lease = %name, error = %error, "device lease expired without renewal; standing by");
                    None
                }
            },
        };
        state_tx.send_if_modified(|state| {
            let epoch = |held: &Option<Held>| held.as_ref().map(|h| h.lease.fencing_token);
            let changed = epoch(state) != epoch(&held);
            state.clone_from(&held);
            changed
        });
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(sent + timing.renew) => {}
        }
    }
    state_tx.send_replace(None);
    if let Some(current) = held
        && let Err(error) = store.release_lease(&current.lease).await
    {
        warn!(lease = %name, error = %error, "device lease not released; it expires with its ttl");
    }
}

/// Whole milliseconds of `duration`, at least 1.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

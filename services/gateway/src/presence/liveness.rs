//! Liveness: the gateway's entry in the store kept fresh, the delivered-message counter
//! flushed with it, dead peers swept, and a resync asked for when the store lost our entries.

use std::sync::Arc;
use std::time::Duration;

use store::{GatewayInfo, GatewayRefresh, Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ResyncReason;
use crate::state::Shared;

/// Returns how this gateway describes itself in the store.
pub(crate) fn gateway_info(shared: &Shared) -> GatewayInfo {
    GatewayInfo {
        id: shared.server_id.clone(),
        address: shared.advertise_url.clone(),
        started_at_ms: shared.started_at_ms,
    }
}

/// Keeps the liveness key fresh, flushes the delivered-message counter and sweeps dead
/// gateways until `cancel`. The refresh runs every third of the liveness TTL (sooner after a
/// failure) and waits for nothing but its own store call: sweeping runs beside it, and a
/// resync it asks for runs in the presence writer.
pub(crate) async fn run_liveness(shared: Arc<Shared>, cancel: CancellationToken) {
    tokio::join!(
        refresh_liveness(&shared, &cancel),
        sweep_dead_gateways(&shared, &cancel)
    );
}

async fn refresh_liveness(shared: &Shared, cancel: &CancellationToken) {
    let ttl = shared.config.liveness_ttl;
    let info = gateway_info(shared);
    // After a failure the next attempt comes sooner, so a store that is back is noticed
    // (and a resync started) long before the TTL runs out.
    let retry_after = (ttl / 15).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(ttl / 3);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store_was_down = false;
    // `serve` registered the gateway just before this task started, unless the store was
    // unreachable then: a first refresh that finds no entry means that.
    let mut last_written: Option<Instant> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let attempted_at = Instant::now();
        match refresh_once(&shared.store, &info, ttl, shared).await {
            Err(error) => {
                if !store_was_down {
                    warn!(error = %error, "store unreachable; presence and stats degraded, delivery continues");
                    store_was_down = true;
                }
                ticker.reset_after(retry_after);
                continue;
            }
            Ok(GatewayRefresh::Missing) => {
                let reason = match last_written {
                    None => {
                        info!("store reachable; writing this gateway's entries");
                        ResyncReason::StoreReachableAgain
                    }
                    Some(at) if attempted_at.duration_since(at) < ttl => {
                        warn!(
                            "store lost this gateway's entries without an error (restart, failover or flush); writing them again"
                        );
                        ResyncReason::StoreLostData
                    }
                    Some(_) => {
                        warn!("this gateway's liveness had expired; writing its entries again");
                        ResyncReason::LivenessExpired
                    }
                };
                shared.presence.request_resync(reason);
            }
            Ok(GatewayRefresh::Continued) if store_was_down => {
                info!("store reachable again; writing this gateway's entries again");
                shared
                    .presence
                    .request_resync(ResyncReason::StoreReachableAgain);
            }
            Ok(GatewayRefresh::Continued) => {}
        }
        store_was_down = false;
        last_written = Some(attempted_at);
        shared.presence.retry_pending_resync();
    }
}

/// Sweeping is idempotent across gateways; doing it once per TTL is plenty.
async fn sweep_dead_gateways(shared: &Shared, cancel: &CancellationToken) {
    let mut ticker = tokio::time::interval(shared.config.liveness_ttl);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the first sweep comes a TTL after start.
    ticker.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match shared.store.sweep_dead_gateways().await {
            Ok(0) => {}
            Ok(swept) => info!(swept, "removed entries of dead gateways"),
            Err(error) => debug!(error = %error, "sweep failed"),
        }
    }
}

async fn refresh_once(
    store: &Store,
    info: &GatewayInfo,
    ttl: Duration,
    shared: &Shared,
) -> Result<GatewayRefresh, StoreError> {
    let refresh = store.refresh_gateway(info, ttl).await?;
    let delivered = shared.fanout.take_delivered();
    if delivered > 0
        && let Err(error) = store.add_messages(delivered).await
    {
        // Put the count back so the next refresh carries it.
        shared.fanout.restore_delivered(delivered);
        return Err(error);
    }
    Ok(refresh)
}

//! Leader leases: one holder at a time, fencing tokens that only grow, renewal and release
//! only by the current acquisition, and tick claims that no two holders can both win.
//!
//! The module is declared after `contract_suite!` in `main.rs`, so it can run its own
//! scenarios through the macro on both backends.

use std::time::Duration;

use store::{Lease, Store, StoreError, TickClaim};

use crate::harness::{LONG_TTL, SHORT_TTL, eventually};

const NAME: &str = "publisher";

async fn acquire(store: &Store, holder: &str, ttl: Duration) -> Result<Lease, StoreError> {
    Ok(store
        .acquire_lease(NAME, holder, ttl)
        .await?
        .unwrap_or_else(|| panic!("{holder} acquires the free lease")))
}

/// Waits until `holder` has taken the lease (after the previous holding expired).
async fn acquire_once_expired(store: &Store, holder: &str) -> Lease {
    let mut taken = None;
    eventually("the lease expires and is taken", async || {
        taken = store.acquire_lease(NAME, holder, LONG_TTL).await?;
        Ok::<_, StoreError>(taken.is_some())
    })
    .await;
    taken.expect("eventually returned once the lease was taken")
}

pub async fn a_lease_has_one_holder_until_it_expires(store: &Store) -> Result<(), StoreError> {
    assert_eq!(store.lease_holder(NAME).await?, None);
    let first = acquire(store, "a", SHORT_TTL).await?;
    assert_eq!((first.name.as_str(), first.holder.as_str()), (NAME, "a"));
    assert_eq!(store.acquire_lease(NAME, "b", LONG_TTL).await?, None);
    assert_eq!(
        store.acquire_lease(NAME, "a", LONG_TTL).await?,
        None,
        "a holder renews, it does not re-acquire"
    );
    assert_eq!(
        store.lease_holder(NAME).await?,
        Some(("a".to_owned(), first.fencing_token))
    );
    // Other names are independent.
    assert!(store.acquire_lease("other", "b", LONG_TTL).await?.is_some());

    let second = acquire_once_expired(store, "b").await;
    assert!(second.fencing_token > first.fencing_token);
    assert_eq!(
        store.lease_holder(NAME).await?,
        Some(("b".to_owned(), second.fencing_token))
    );
    Ok(())
}

pub async fn renewing_keeps_a_lease_past_its_first_ttl(store: &Store) -> Result<(), StoreError> {
    let ttl = Duration::from_millis(400);
    let lease = acquire(store, "a", ttl).await?;
    let started = tokio::time::Instant::now();
    // The sleep is the renewal interval being simulated, not synchronisation.
    while started.elapsed() < ttl * 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store.renew_lease(&lease, ttl).await?, "renewed in time");
    }
    assert_eq!(store.acquire_lease(NAME, "b", ttl).await?, None);
    assert_eq!(
        store.lease_holder(NAME).await?.map(|(holder, _)| holder),
        Some("a".to_owned())
    );
    Ok(())
}

pub async fn a_lost_lease_cannot_be_renewed_released_or_used(
    store: &Store,
) -> Result<(), StoreError> {
    let old = acquire(store, "a", SHORT_TTL).await?;
    let new = acquire_once_expired(store, "b").await;
    assert!(!store.renew_lease(&old, LONG_TTL).await?);
    assert!(!store.release_lease(&old).await?);
    assert_eq!(
        store.claim_lease_tick(&old, "nodes:5000", 1).await?,
        TickClaim::LeaseLost
    );
    assert_eq!(
        store.lease_holder(NAME).await?,
        Some(("b".to_owned(), new.fencing_token)),
        "the stale holder changed nothing"
    );
    assert!(store.renew_lease(&new, LONG_TTL).await?);
    Ok(())
}

pub async fn release_frees_the_lease_at_once_and_tokens_keep_growing(
    store: &Store,
) -> Result<(), StoreError> {
    let first = acquire(store, "a", LONG_TTL).await?;
    assert!(store.release_lease(&first).await?);
    assert!(!store.release_lease(&first).await?, "released once");
    assert_eq!(store.lease_holder(NAME).await?, None);
    let second = acquire(store, "a", LONG_TTL).await?;
    assert!(second.fencing_token > first.fencing_token);
    // The same holder name with an older token is a different, finished acquisition.
    assert!(!store.renew_lease(&first, LONG_TTL).await?);
    assert_eq!(
        store.claim_lease_tick(&first, "nodes:5000", 1).await?,
        TickClaim::LeaseLost
    );
    assert!(store.release_lease(&second).await?);
    let third = acquire(store, "b", LONG_TTL).await?;
    assert!(third.fencing_token > second.fencing_token);
    Ok(())
}

pub async fn each_tick_is_claimed_once_and_in_increasing_order_across_holders(
    store: &Store,
) -> Result<(), StoreError> {
    let a = acquire(store, "a", LONG_TTL).await?;
    let nodes = "nodes:5000";
    assert_eq!(
        store.claim_lease_tick(&a, nodes, 5).await?,
        TickClaim::Claimed
    );
    assert_eq!(
        store.claim_lease_tick(&a, nodes, 5).await?,
        TickClaim::AlreadyClaimed { last: 5 }
    );
    assert_eq!(
        store.claim_lease_tick(&a, nodes, 4).await?,
        TickClaim::AlreadyClaimed { last: 5 }
    );
    assert_eq!(
        store.claim_lease_tick(&a, nodes, 7).await?,
        TickClaim::Claimed
    );
    assert!(store.release_lease(&a).await?);

    let b = acquire(store, "b", LONG_TTL).await?;
    assert_eq!(
        store.claim_lease_tick(&b, nodes, 7).await?,
        TickClaim::AlreadyClaimed { last: 7 },
        "the new holder continues after the old holder's last tick"
    );
    assert_eq!(
        store.claim_lease_tick(&b, nodes, 8).await?,
        TickClaim::Claimed
    );
    assert_eq!(
        store.claim_lease_tick(&b, "tasks:2000", 1).await?,
        TickClaim::Claimed,
        "streams are independent"
    );
    let large = 1_730_000_000_000 / 100;
    assert_eq!(
        store.claim_lease_tick(&b, nodes, large).await?,
        TickClaim::Claimed
    );
    assert_eq!(
        store.claim_lease_tick(&b, nodes, large).await?,
        TickClaim::AlreadyClaimed { last: large }
    );
    Ok(())
}

contract_suite! {
    lease::a_lease_has_one_holder_until_it_expires,
    lease::renewing_keeps_a_lease_past_its_first_ttl,
    lease::a_lost_lease_cannot_be_renewed_released_or_used,
    lease::release_frees_the_lease_at_once_and_tokens_keep_growing,
    lease::each_tick_is_claimed_once_and_in_increasing_order_across_holders,
}

//! Node → gateway routes.

use store::{Store, StoreError};

use crate::harness::{LONG_TTL, gateway};

pub async fn node_route_follows_the_latest_gateway(store: &Store) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    store.set_node_route("n-1", "gw-a").await?;
    assert_eq!(store.node_route("n-1").await?.as_deref(), Some("gw-a"));
    store.set_node_route("n-1", "gw-b").await?;
    assert_eq!(store.node_route("n-1").await?.as_deref(), Some("gw-b"));
    store.remove_node_route("n-1", "gw-b").await?;
    assert_eq!(store.node_route("n-1").await?, None);
    store.remove_node_route("n-1", "gw-b").await?;
    Ok(())
}

pub async fn stale_gateway_cannot_remove_a_newer_route(store: &Store) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-old"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-new"), LONG_TTL).await?;
    store.set_node_route("n-1", "gw-old").await?;
    store.set_node_route("n-1", "gw-new").await?;
    store.remove_node_route("n-1", "gw-old").await?;
    assert_eq!(store.node_route("n-1").await?.as_deref(), Some("gw-new"));
    store.remove_gateway("gw-old").await?;
    assert_eq!(store.node_route("n-1").await?.as_deref(), Some("gw-new"));
    Ok(())
}

pub async fn node_route_is_none_for_unknown_nodes_and_unregistered_gateways(
    store: &Store,
) -> Result<(), StoreError> {
    assert_eq!(store.node_route("unknown").await?, None);
    store.set_node_route("n-1", "gw-never-registered").await?;
    assert_eq!(store.node_route("n-1").await?, None);
    store
        .register_gateway(&gateway("gw-never-registered"), LONG_TTL)
        .await?;
    assert_eq!(
        store.node_route("n-1").await?.as_deref(),
        Some("gw-never-registered")
    );
    Ok(())
}

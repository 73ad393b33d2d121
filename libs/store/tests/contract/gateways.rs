//! Gateway liveness, clean removal and sweeping.

use std::time::Duration;

use store::{GatewayRefresh, RoomJoin, Store, StoreError};

use crate::harness::{LONG_TTL, SHORT_TTL, connection, eventually, gateway};

pub async fn registered_gateways_are_live_until_removed(store: &Store) -> Result<(), StoreError> {
    assert!(store.live_gateways().await?.is_empty());
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    assert_eq!(
        store.live_gateways().await?,
        vec![gateway("gw-a"), gateway("gw-b")]
    );

    let moved = store::GatewayInfo {
        address: "10.0.0.9:8080".to_owned(),
        ..gateway("gw-a")
    };
    store.register_gateway(&moved, LONG_TTL).await?;
    assert_eq!(store.live_gateways().await?, vec![moved, gateway("gw-b")]);

    store.remove_gateway("gw-a").await?;
    assert_eq!(store.live_gateways().await?, vec![gateway("gw-b")]);
    store.remove_gateway("gw-a").await?;
    store.remove_gateway("never-registered").await?;
    Ok(())
}

pub async fn liveness_expires_after_its_ttl(store: &Store) -> Result<(), StoreError> {
    store
        .register_gateway(&gateway("gw-short"), SHORT_TTL)
        .await?;
    store
        .register_gateway(&gateway("gw-long"), LONG_TTL)
        .await?;
    let live = store.live_gateways().await?;
    assert!(
        live.contains(&gateway("gw-short")),
        "just registered: {live:?}"
    );
    eventually("the short-lived gateway expires", async || {
        Ok::<_, StoreError>(store.live_gateways().await? == vec![gateway("gw-long")])
    })
    .await;
    Ok(())
}

pub async fn refreshing_keeps_a_gateway_live_past_its_first_ttl(
    store: &Store,
) -> Result<(), StoreError> {
    let ttl = Duration::from_millis(400);
    let heartbeat = Duration::from_millis(50);
    let started = tokio::time::Instant::now();
    store.register_gateway(&gateway("gw-a"), ttl).await?;
    // The sleep here is the heartbeat interval being simulated, not synchronisation.
    while started.elapsed() < ttl * 2 {
        tokio::time::sleep(heartbeat).await;
        store.register_gateway(&gateway("gw-a"), ttl).await?;
        assert_eq!(store.live_gateways().await?, vec![gateway("gw-a")]);
    }
    Ok(())
}

/// Two gateways with a connection of the same user, a shared room and a node each; one
/// stops refreshing. Nothing is swept: readers alone must stop counting it.
pub async fn dead_gateway_drops_out_of_stats_users_and_routes_within_its_ttl(
    store: &Store,
) -> Result<(), StoreError> {
    store
        .register_gateway(&gateway("gw-live"), LONG_TTL)
        .await?;
    store
        .register_gateway(&gateway("gw-dying"), SHORT_TTL)
        .await?;
    let live_conn = connection("gw-live", "c-live", "alice");
    let dying_conn = connection("gw-dying", "c-dying", "alice");
    for record in [&live_conn, &dying_conn] {
        store.add_connection(record).await?;
        store
            .join_room(&record.gateway_id, &record.connection_id, "metrics")
            .await?;
    }
    store.join_room("gw-dying", "c-dying", "alerts").await?;
    store.set_node_route("node-live", "gw-live").await?;
    store.set_node_route("node-dying", "gw-dying").await?;

    let before = store.cluster_stats().await?;
    assert_eq!(before.active_connections, 2);
    assert_eq!(before.rooms.get("metrics"), Some(&2));
    assert_eq!(before.rooms.get("alerts"), Some(&1));
    assert_eq!(before.gateways.len(), 2);

    eventually("the dying gateway drops out of the stats", async || {
        let stats = store.cluster_stats().await?;
        Ok::<_, StoreError>(stats.gateways == vec![gateway("gw-live")])
    })
    .await;
    let after = store.cluster_stats().await?;
    assert_eq!(after.active_connections, 1);
    assert_eq!(after.rooms.get("metrics"), Some(&1));
    assert_eq!(after.rooms.get("alerts"), None);
    assert_eq!(
        after.total_connections, 2,
        "the cumulative total keeps counting"
    );
    assert_eq!(store.user_connections("alice").await?, vec![live_conn]);
    assert_eq!(store.node_route("node-dying").await?, None);
    assert_eq!(
        store.node_route("node-live").await?.as_deref(),
        Some("gw-live")
    );
    Ok(())
}

pub async fn expired_gateway_that_refreshes_before_a_sweep_keeps_its_entries(
    store: &Store,
) -> Result<(), StoreError> {
    let record = connection("gw-a", "c-1", "alice");
    store.register_gateway(&gateway("gw-a"), SHORT_TTL).await?;
    store.add_connection(&record).await?;
    store.join_room("gw-a", "c-1", "metrics").await?;
    store.set_node_route("node-1", "gw-a").await?;
    eventually("the gateway expires", async || {
        Ok::<_, StoreError>(store.live_gateways().await?.is_empty())
    })
    .await;
    assert!(store.user_connections("alice").await?.is_empty());

    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    assert_eq!(store.user_connections("alice").await?, vec![record]);
    assert_eq!(store.node_route("node-1").await?.as_deref(), Some("gw-a"));
    assert_eq!(store.cluster_stats().await?.rooms.get("metrics"), Some(&1));
    Ok(())
}

pub async fn clean_removal_deletes_every_entry_of_the_gateway(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    let on_a = connection("gw-a", "c-a", "alice");
    let on_b = connection("gw-b", "c-b", "alice");
    for record in [&on_a, &on_b] {
        store.add_connection(record).await?;
        store
            .join_room(&record.gateway_id, &record.connection_id, "metrics")
            .await?;
    }
    store.set_node_route("node-a", "gw-a").await?;
    store.set_node_route("node-b", "gw-b").await?;

    store.remove_gateway("gw-a").await?;

    let stats = store.cluster_stats().await?;
    assert_eq!(stats.gateways, vec![gateway("gw-b")]);
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.rooms.get("metrics"), Some(&1));
    assert_eq!(store.user_connections("alice").await?, vec![on_b]);
    assert_eq!(store.node_route("node-a").await?, None);
    assert_eq!(store.node_route("node-b").await?.as_deref(), Some("gw-b"));

    // Deleted, not merely hidden: a gateway reusing the id starts empty.
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.rooms.get("metrics"), Some(&1));
    assert_eq!(store.node_route("node-a").await?, None);
    assert_eq!(store.sweep_dead_gateways().await?, 0);
    Ok(())
}

pub async fn sweep_deletes_dead_gateways_and_keeps_live_ones(
    store: &Store,
) -> Result<(), StoreError> {
    store
        .register_gateway(&gateway("gw-live"), LONG_TTL)
        .await?;
    store
        .register_gateway(&gateway("gw-dead"), SHORT_TTL)
        .await?;
    let live_conn = connection("gw-live", "c-live", "alice");
    let dead_conn = connection("gw-dead", "c-dead", "alice");
    for record in [&live_conn, &dead_conn] {
        store.add_connection(record).await?;
        store
            .join_room(&record.gateway_id, &record.connection_id, "metrics")
            .await?;
    }
    store.set_node_route("node-dead", "gw-dead").await?;
    assert_eq!(
        store.sweep_dead_gateways().await?,
        0,
        "nothing has expired yet"
    );

    eventually("the dead gateway expires", async || {
        Ok::<_, StoreError>(store.live_gateways().await? == vec![gateway("gw-live")])
    })
    .await;
    assert_eq!(store.sweep_dead_gateways().await?, 1);
    assert_eq!(store.sweep_dead_gateways().await?, 0, "already swept");

    // Swept, not merely hidden: the id comes back empty.
    store
        .register_gateway(&gateway("gw-dead"), LONG_TTL)
        .await?;
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.rooms.get("metrics"), Some(&1));
    assert_eq!(store.user_connections("alice").await?, vec![live_conn]);
    assert_eq!(store.node_route("node-dead").await?, None);
    Ok(())
}

/// A refresh tells a gateway whether its liveness entry survived: a first registration, an
/// expiry and a store that lost its data all read as `Missing`.
pub async fn refresh_reports_a_liveness_entry_lost_by_expiry_or_by_a_flush(
    store: &Store,
) -> Result<(), StoreError> {
    let info = gateway("gw-a");
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await?,
        GatewayRefresh::Missing,
        "the first registration finds nothing"
    );
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await?,
        GatewayRefresh::Continued
    );

    store
        .add_connection(&connection("gw-a", "c1", "u1"))
        .await?;
    store.flush().await?;
    assert!(store.live_gateways().await?.is_empty());
    assert_eq!(store.cluster_stats().await?.active_connections, 0);
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await?,
        GatewayRefresh::Missing,
        "a store that lost its data without an error is detected"
    );
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await?,
        GatewayRefresh::Continued
    );

    store.refresh_gateway(&info, SHORT_TTL).await?;
    eventually("the liveness entry expires", async || {
        Ok::<_, StoreError>(store.live_gateways().await?.is_empty())
    })
    .await;
    assert_eq!(
        store.refresh_gateway(&info, LONG_TTL).await?,
        GatewayRefresh::Missing,
        "a refresh later than the TTL finds its entry expired"
    );
    Ok(())
}

pub async fn gateway_connections_lists_one_gateways_records(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    assert!(store.gateway_connections("gw-a").await?.is_empty());
    let records = [
        connection("gw-a", "c2", "u1"),
        connection("gw-a", "c1", "u2"),
        connection("gw-b", "c3", "u1"),
    ];
    store.add_connections(&records).await?;
    assert_eq!(
        store.gateway_connections("gw-a").await?,
        vec![records[1].clone(), records[0].clone()]
    );
    store.remove_connection(&records[0]).await?;
    assert_eq!(
        store.gateway_connections("gw-a").await?,
        vec![records[1].clone()]
    );
    assert_eq!(
        store.gateway_connections("gw-b").await?,
        vec![records[2].clone()]
    );
    Ok(())
}

pub async fn gateway_memberships_lists_one_gateways_rooms(store: &Store) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    assert!(store.gateway_memberships("gw-a").await?.is_empty());
    store.join_room("gw-a", "c2", "room-x").await?;
    store.join_room("gw-a", "c1", "room-x").await?;
    store.join_room("gw-a", "c1", "room-y").await?;
    store.join_room("gw-b", "c3", "room-x").await?;
    let join = |connection_id: &str, room: &str| RoomJoin {
        connection_id: connection_id.to_owned(),
        room: room.to_owned(),
    };
    assert_eq!(
        store.gateway_memberships("gw-a").await?,
        vec![
            join("c1", "room-x"),
            join("c2", "room-x"),
            join("c1", "room-y")
        ]
    );
    store.leave_room("gw-a", "c1", "room-y").await?;
    assert_eq!(
        store.gateway_memberships("gw-a").await?,
        vec![join("c1", "room-x"), join("c2", "room-x")]
    );
    assert_eq!(
        store.gateway_memberships("gw-b").await?,
        vec![join("c3", "room-x")]
    );
    Ok(())
}

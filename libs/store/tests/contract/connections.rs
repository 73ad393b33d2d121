//! Connections, room memberships, per-user lookups and the stats computed from them.

use std::collections::BTreeMap;

use store::{Store, StoreError};

use crate::harness::{LONG_TTL, connection, gateway};

pub async fn stats_count_connections_and_rooms_of_live_gateways(
    store: &Store,
) -> Result<(), StoreError> {
    assert_eq!(store.cluster_stats().await?, store::ClusterStats::default());
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    store
        .add_connection(&connection("gw-a", "c-1", "alice"))
        .await?;
    store
        .add_connection(&connection("gw-a", "c-2", "bob"))
        .await?;
    store
        .add_connection(&connection("gw-b", "c-3", "carol"))
        .await?;
    store.join_room("gw-a", "c-1", "metrics").await?;
    store.join_room("gw-a", "c-2", "metrics").await?;
    store.join_room("gw-b", "c-3", "metrics").await?;
    store.join_room("gw-b", "c-3", "node.n-1.cpu").await?;

    let stats = store.cluster_stats().await?;
    assert_eq!(stats.total_connections, 3);
    assert_eq!(stats.active_connections, 3);
    assert_eq!(stats.total_messages, 0);
    let expected_rooms =
        BTreeMap::from([("metrics".to_owned(), 3), ("node.n-1.cpu".to_owned(), 1)]);
    assert_eq!(stats.rooms, expected_rooms);
    assert_eq!(stats.gateways, vec![gateway("gw-a"), gateway("gw-b")]);
    Ok(())
}

pub async fn joining_twice_counts_once_and_leaving_twice_is_harmless(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store
        .add_connection(&connection("gw-a", "c-1", "alice"))
        .await?;
    store
        .add_connection(&connection("gw-a", "c-2", "bob"))
        .await?;
    store.join_room("gw-a", "c-1", "alerts").await?;
    store.join_room("gw-a", "c-1", "alerts").await?;
    store.join_room("gw-a", "c-2", "alerts").await?;
    assert_eq!(store.cluster_stats().await?.rooms.get("alerts"), Some(&2));

    store.leave_room("gw-a", "c-1", "alerts").await?;
    store.leave_room("gw-a", "c-1", "alerts").await?;
    store.leave_room("gw-a", "c-1", "never-joined").await?;
    store.leave_room("gw-unknown", "c-1", "alerts").await?;
    assert_eq!(store.cluster_stats().await?.rooms.get("alerts"), Some(&1));

    store.join_room("gw-a", "c-1", "alerts").await?;
    assert_eq!(store.cluster_stats().await?.rooms.get("alerts"), Some(&2));
    Ok(())
}

pub async fn room_without_subscribers_is_omitted_from_stats(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store
        .add_connection(&connection("gw-a", "c-1", "alice"))
        .await?;
    store.join_room("gw-a", "c-1", "tasks").await?;
    store.join_room("gw-a", "c-1", "nodes").await?;
    store.leave_room("gw-a", "c-1", "tasks").await?;
    let rooms = store.cluster_stats().await?.rooms;
    assert_eq!(rooms, BTreeMap::from([("nodes".to_owned(), 1)]));
    Ok(())
}

pub async fn removing_a_connection_removes_its_room_memberships(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    let leaving = connection("gw-a", "c-1", "alice");
    let staying = connection("gw-a", "c-2", "alice");
    store.add_connection(&leaving).await?;
    store.add_connection(&staying).await?;
    for room in ["metrics", "alerts", "topology"] {
        store.join_room("gw-a", "c-1", room).await?;
    }
    store.join_room("gw-a", "c-2", "metrics").await?;

    store.remove_connection(&leaving).await?;
    store.remove_connection(&leaving).await?;

    let stats = store.cluster_stats().await?;
    assert_eq!(stats.active_connections, 1);
    assert_eq!(
        stats.total_connections, 2,
        "the cumulative total keeps counting"
    );
    assert_eq!(stats.rooms, BTreeMap::from([("metrics".to_owned(), 1)]));
    assert_eq!(store.user_connections("alice").await?, vec![staying]);

    // The connection id can be reused without inheriting old memberships.
    store.add_connection(&leaving).await?;
    store.join_room("gw-a", "c-1", "alerts").await?;
    let rooms = store.cluster_stats().await?.rooms;
    let expected = BTreeMap::from([("alerts".to_owned(), 1), ("metrics".to_owned(), 1)]);
    assert_eq!(rooms, expected);
    Ok(())
}

pub async fn adding_the_same_connection_twice_counts_it_once(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    let record = connection("gw-a", "c-1", "alice");
    store.add_connection(&record).await?;
    store.add_connection(&record).await?;
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.total_connections, 1);
    assert_eq!(stats.active_connections, 1);
    assert_eq!(store.user_connections("alice").await?, vec![record]);
    Ok(())
}

pub async fn a_batch_of_connections_is_added_and_counted_like_single_adds(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    let early = connection("gw-a", "c-0", "alice");
    store.add_connection(&early).await?;
    let batch = [
        connection("gw-a", "c-1", "alice"),
        connection("gw-b", "c-2", "alice"),
        early.clone(),
        connection("gw-a", "c-3", "bob"),
    ];
    store.add_connections(&batch).await?;
    store.add_connections(&[]).await?;
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.total_connections, 4, "c-0 counted once");
    assert_eq!(stats.active_connections, 4);
    let mut alice = store.user_connections("alice").await?;
    alice.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    assert_eq!(alice, vec![early, batch[0].clone(), batch[1].clone()]);
    assert_eq!(store.user_connections("bob").await?, vec![batch[3].clone()]);
    Ok(())
}

pub async fn a_batch_of_joins_counts_like_single_joins(store: &Store) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store
        .add_connections(&[
            connection("gw-a", "c-1", "alice"),
            connection("gw-a", "c-2", "bob"),
        ])
        .await?;
    store.join_room("gw-a", "c-1", "metrics").await?;
    let join = |connection_id: &str, room: &str| store::RoomJoin {
        connection_id: connection_id.to_owned(),
        room: room.to_owned(),
    };
    store
        .join_rooms(
            "gw-a",
            &[
                join("c-1", "metrics"),
                join("c-2", "metrics"),
                join("c-2", "tasks"),
                join("c-2", "tasks"),
            ],
        )
        .await?;
    store.join_rooms("gw-a", &[]).await?;
    let stats = store.cluster_stats().await?;
    let expected = BTreeMap::from([("metrics".to_owned(), 2), ("tasks".to_owned(), 1)]);
    assert_eq!(stats.rooms, expected, "repeated joins count once");
    // The batch recorded each connection's rooms, so removing it leaves them.
    store
        .remove_connection(&connection("gw-a", "c-2", "bob"))
        .await?;
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.rooms, BTreeMap::from([("metrics".to_owned(), 1)]));
    Ok(())
}

pub async fn user_connections_span_live_gateways(store: &Store) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    let browser = connection("gw-b", "c-1", "alice");
    let agent = store::ConnectionRecord {
        role: "node".to_owned(),
        node_id: Some("n-7".to_owned()),
        ..connection("gw-a", "c-2", "alice")
    };
    let other_user = connection("gw-a", "c-3", "bob");
    for record in [&browser, &agent, &other_user] {
        store.add_connection(record).await?;
    }
    assert_eq!(store.user_connections("alice").await?, vec![browser, agent]);
    assert_eq!(store.user_connections("bob").await?, vec![other_user]);
    assert!(store.user_connections("nobody").await?.is_empty());
    Ok(())
}

/// Stats come from per-gateway counters, so they stay exact (and cheap) at scale.
pub async fn stats_stay_exact_with_thousands_of_connections(
    store: &Store,
) -> Result<(), StoreError> {
    const CONNECTIONS: usize = 2_000;
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    store.register_gateway(&gateway("gw-b"), LONG_TTL).await?;
    for index in 0..CONNECTIONS {
        let gateway_id = if index % 2 == 0 { "gw-a" } else { "gw-b" };
        let connection_id = format!("c-{index}");
        let record = connection(gateway_id, &connection_id, &format!("user-{}", index % 100));
        store.add_connection(&record).await?;
        store
            .join_room(gateway_id, &connection_id, "metrics")
            .await?;
        let node_room = format!("node.n-{}.cpu", index % 10);
        store
            .join_room(gateway_id, &connection_id, &node_room)
            .await?;
    }
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.active_connections, CONNECTIONS as u64);
    assert_eq!(stats.rooms.get("metrics"), Some(&(CONNECTIONS as u64)));
    assert_eq!(
        stats.rooms.get("node.n-3.cpu"),
        Some(&(CONNECTIONS as u64 / 10))
    );
    assert_eq!(stats.rooms.len(), 11);
    assert_eq!(
        store.user_connections("user-42").await?.len(),
        CONNECTIONS / 100
    );
    Ok(())
}

pub async fn batches_of_removals_and_leaves_act_like_single_ones(
    store: &Store,
) -> Result<(), StoreError> {
    store.register_gateway(&gateway("gw-a"), LONG_TTL).await?;
    let records = [
        connection("gw-a", "c-1", "alice"),
        connection("gw-a", "c-2", "bob"),
        connection("gw-a", "c-3", "alice"),
    ];
    store.add_connections(&records).await?;
    let join = |connection_id: &str, room: &str| store::RoomJoin {
        connection_id: connection_id.to_owned(),
        room: room.to_owned(),
    };
    store
        .join_rooms(
            "gw-a",
            &[
                join("c-1", "metrics"),
                join("c-2", "metrics"),
                join("c-3", "metrics"),
                join("c-3", "tasks"),
                join("c-3", "alerts"),
            ],
        )
        .await?;

    // A leave of a room the connection is not in, and a repeated one, change nothing.
    store
        .leave_rooms(
            "gw-a",
            &[
                join("c-3", "tasks"),
                join("c-3", "tasks"),
                join("c-1", "alerts"),
            ],
        )
        .await?;
    store.leave_rooms("gw-a", &[]).await?;
    let stats = store.cluster_stats().await?;
    let expected = BTreeMap::from([("alerts".to_owned(), 1), ("metrics".to_owned(), 3)]);
    assert_eq!(stats.rooms, expected);

    store
        .remove_connections(&[records[0].clone(), records[2].clone(), records[2].clone()])
        .await?;
    store.remove_connections(&[]).await?;
    let stats = store.cluster_stats().await?;
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.rooms, BTreeMap::from([("metrics".to_owned(), 1)]));
    assert!(store.user_connections("alice").await?.is_empty());
    assert_eq!(
        store.user_connections("bob").await?,
        vec![records[1].clone()]
    );
    assert_eq!(
        store.gateway_memberships("gw-a").await?,
        vec![join("c-2", "metrics")]
    );
    Ok(())
}

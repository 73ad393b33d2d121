//! Presence after the store lost its data: the gateway notices on its own (no store error
//! is ever reported) and writes its connections and rooms again, without bringing back
//! connections that closed meanwhile.

use std::collections::BTreeSet;
use std::time::Duration;

use bus::Bus;
use gateway::test_util::{TestGateway, eventually, get_json, test_config};
use serde_json::json;
use store::Store;

use crate::helpers::{metrics_text, token, viewer};

const ROOM: &str = "presence.resync";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_store_gets_every_open_connection_back_within_one_liveness_ttl() {
    let store = Store::memory();
    let config = test_config();
    let ttl = config.gateway.liveness_ttl;
    let gateway = TestGateway::start(config, Bus::memory(), store.clone()).await;
    let mut clients = Vec::new();
    for n in 0..40 {
        let mut client = gateway.connect(&token(&viewer(&format!("user-{n}")))).await;
        client.subscribe(&[ROOM]).await;
        clients.push(client);
    }
    let stats = || async { get_json(gateway.addr, "/api/ws/stats").await.1 };
    eventually(Duration::from_secs(5), || async {
        let stats = stats().await;
        stats["active_connections"] == 40 && stats["rooms"] == json!({ROOM: 40})
    })
    .await;

    // The store forgets everything without an error, as a restarted Redis does; ten
    // clients leave at the same moment.
    store.flush().await.unwrap();
    let flushed_at = tokio::time::Instant::now();
    let closing: Vec<_> = clients.drain(..10).collect();
    drop(closing);

    eventually(ttl + Duration::from_millis(500), || async {
        let stats = stats().await;
        stats["active_connections"] == 30
            && stats["rooms"] == json!({ROOM: 30})
            && stats["live_gateways"] == 1
    })
    .await;
    let recovered_after = flushed_at.elapsed();
    assert!(
        recovered_after <= ttl,
        "presence came back after {recovered_after:?}, more than one liveness TTL ({ttl:?})"
    );

    // Exactly the open connections, and it stays so: nothing closed comes back later.
    tokio::time::sleep(ttl).await;
    let stored: BTreeSet<String> = store
        .gateway_connections(&gateway.server_id)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.user_id)
        .collect();
    let open: BTreeSet<String> = (10..40).map(|n| format!("user-{n}")).collect();
    assert_eq!(stored, open);
    assert_eq!(stats().await["rooms"], json!({ROOM: 30}));

    let metrics = metrics_text(gateway.addr).await;
    assert!(
        metrics
            .contains(r#"switchboard_gateway_presence_resyncs_total{reason="store_lost_data"} 1"#),
        "one resync for the lost data:\n{metrics}"
    );
    drop(clients);
}

/// A removal or a leave lost while the store was unreachable leaves an entry behind; the
/// resync that follows the outage removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_removes_records_of_connections_that_are_gone() {
    let store = Store::memory();
    let config = test_config();
    let ttl = config.gateway.liveness_ttl;
    let gateway = TestGateway::start(config, Bus::memory(), store.clone()).await;
    let mut client = gateway.connect(&token(&viewer("alive"))).await;
    client.subscribe(&[ROOM]).await;
    // A record this gateway never wrote, as if a removal had been lost.
    let ghost = store::ConnectionRecord {
        connection_id: "ghost".to_owned(),
        gateway_id: gateway.server_id.clone(),
        user_id: "ghost-user".to_owned(),
        role: "viewer".to_owned(),
        node_id: None,
        connected_at_ms: 1,
    };
    store.add_connection(&ghost).await.unwrap();
    store
        .join_room(&gateway.server_id, "ghost", ROOM)
        .await
        .unwrap();
    let stats = || async { get_json(gateway.addr, "/api/ws/stats").await.1 };
    eventually(Duration::from_secs(5), || async {
        stats().await["active_connections"] == 2
    })
    .await;

    // And a membership of the open connection whose `leave` was lost.
    let alive = store.user_connections("alive").await.unwrap();
    let alive_id = alive[0].connection_id.clone();

    // The lost data and the leftovers, with no liveness refresh in between (it would
    // resync before the leftovers exist): if one came, again.
    loop {
        store.flush().await.unwrap();
        store.add_connection(&ghost).await.unwrap();
        store
            .join_room(&gateway.server_id, "ghost", ROOM)
            .await
            .unwrap();
        store
            .join_room(&gateway.server_id, &alive_id, "left.long.ago")
            .await
            .unwrap();
        if store.live_gateways().await.unwrap().is_empty() {
            break;
        }
    }
    eventually(ttl + Duration::from_millis(500), || async {
        let stats = stats().await;
        stats["active_connections"] == 1 && stats["rooms"] == json!({ROOM: 1})
    })
    .await;
    assert!(
        store
            .user_connections("ghost-user")
            .await
            .unwrap()
            .is_empty()
    );
    drop(client);
}

//! A gateway on Redis behind Sentinel (`redis+sentinel://`): the primary is SIGKILLed while
//! room messages flow. Delivery never depends on Redis, so every client gets every message
//! in order; the store follows the promoted replica and the gateway's presence resync puts
//! its connections back in the cluster stats.
//!
//! Its own test binary (not `tests/it`), so it starts real Redis processes without touching
//! the shared `tests/it/main.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auth::test_keys;
use bus::Bus;
use bytes::Bytes;
use gateway::test_util::{TestGateway, eventually, get_json, test_config, within};
use protocol::RoomEnvelope;
use protocol::envelope::encode_bus;
use serde_json::json;
use store::test_util::SentinelCluster;
use store::{RedisOptions, Store};
use tokio::time::Instant;

const ROOM: &str = "sentinel.failover";
const CLIENTS: usize = 5;
const PUBLISH_INTERVAL: Duration = Duration::from_millis(20);
const FAILOVER_BUDGET: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_keeps_delivering_through_a_sentinel_failover_and_its_presence_comes_back() {
    let mut cluster = SentinelCluster::start().await;
    let options = RedisOptions {
        key_prefix: "sbgw-failover".to_owned(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
    };
    let store = Store::connect_redis(&cluster.url(), options.clone())
        .await
        .expect("the sentinels name a primary");
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), store).await;

    let mut readers = Vec::new();
    for n in 0..CLIENTS {
        let mut client = gateway
            .connect(&test_keys::hs256_token(&test_keys::claims(&format!(
                "user-{n}"
            ))))
            .await;
        client.subscribe(&[ROOM]).await;
        readers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            loop {
                let message = client.next_room_message().await;
                if message.data["done"] == json!(true) {
                    return seqs;
                }
                seqs.push(message.data["seq"].as_u64().expect("a seq"));
            }
        }));
    }
    let stats = || async { get_json(gateway.addr, "/api/ws/stats").await.1 };
    let presence_is_whole = || async {
        let stats = stats().await;
        stats["active_connections"] == CLIENTS && stats["rooms"] == json!({ ROOM: CLIENTS })
    };
    eventually(Duration::from_secs(5), presence_is_whole).await;

    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = tokio::spawn({
        let bus = bus.clone();
        let publishing = Arc::clone(&publishing);
        async move {
            let mut seq = 0_u64;
            while publishing.load(Ordering::Relaxed) {
                publish(&bus, json!({ "seq": seq })).await;
                seq += 1;
                tokio::time::sleep(PUBLISH_INTERVAL).await;
            }
            publish(&bus, json!({ "done": true })).await;
            seq
        }
    });

    let killed_at = Instant::now();
    let old_port = cluster.kill_primary().await;
    let new_port = cluster.wait_for_failover(old_port, FAILOVER_BUDGET).await;
    let promoted_after = killed_at.elapsed();
    // The liveness TTL (2 s in tests) is shorter than the outage, so the gateway's entries
    // count as dead on the promoted replica until the gateway refreshes, finds its liveness
    // gone and writes everything again. Read the new primary directly: that is what every
    // other gateway of the cluster sees.
    let on_new_primary = Store::connect_redis(&format!("redis://127.0.0.1:{new_port}"), options)
        .await
        .expect("the promoted replica accepts connections");
    eventually(FAILOVER_BUDGET, || async {
        on_new_primary.cluster_stats().await.is_ok_and(|stats| {
            stats.active_connections == CLIENTS as u64
                && stats.rooms.get(ROOM).copied() == Some(CLIENTS as u64)
        })
    })
    .await;
    let presence_after = killed_at.elapsed();
    eventually(Duration::from_secs(5), presence_is_whole).await;

    publishing.store(false, Ordering::Relaxed);
    let published = publisher.await.expect("the publisher runs to the end");
    let expected: Vec<u64> = (0..published).collect();
    for reader in readers {
        let seqs = within(Duration::from_secs(10), reader)
            .await
            .expect("a reader runs to the end");
        assert_eq!(
            seqs, expected,
            "every message, in order, through the failover"
        );
    }
    let metrics = gateway::test_util::http_request(gateway.addr, "GET", "/metrics", &[], "")
        .await
        .expect("metrics answer")
        .1;
    let resync_lines: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("switchboard_gateway_presence_resyncs_total{"))
        .collect();
    let resyncs: f64 = resync_lines
        .iter()
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        resyncs >= 1.0,
        "the gateway resynced its presence after the failover:\n{metrics}"
    );
    println!(
        "gateway through sentinel failover ({old_port} -> {new_port}): replica promoted {:.2} s \
         and presence whole in stats {:.2} s after the SIGKILL; {published} messages to each of \
         {CLIENTS} clients, none lost; presence resyncs: {}",
        promoted_after.as_secs_f64(),
        presence_after.as_secs_f64(),
        resync_lines.join(", ")
    );
}

async fn publish(bus: &Bus, data: serde_json::Value) {
    let envelope = RoomEnvelope {
        event: "failover_probe".into(),
        data,
        timestamp: None,
        seq: None,
        priority: None,
    };
    bus.publish(
        &format!("sb.room.{ROOM}"),
        Bytes::from(encode_bus(&envelope).expect("an envelope encodes")),
    )
    .await
    .expect("publish on the memory bus");
}

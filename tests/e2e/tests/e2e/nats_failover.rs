//! A `switchboard-gateway` process on a three-node NATS cluster (`bus.nats_url` lists all
//! three) loses the node it is attached to (SIGKILL); its WebSocket client stays connected
//! and keeps receiving what a service publishes on NATS through another node.

use std::collections::HashSet;
use std::time::Duration;

use bus::test_util::NatsCluster;
use bytes::Bytes;
use e2e::{GatewayProcess, TEST_API_KEY, connect, eventually, token, viewer};
use protocol::envelope::encode_bus;
use protocol::subject::Subjects;
use protocol::{RoomEnvelope, RoomName};
use serde_json::json;
use store::test_util::RedisServer;
use tokio::time::Instant;

const SERVER_ID: &str = "gw-nats-failover";
/// One room message every 10 ms: 100 a second.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(10);
/// The gateway must deliver again within this time after its NATS node died.
const MAX_RECOVERY: Duration = Duration::from_secs(5);

fn gateway_env(cluster: &NatsCluster, redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![
        ("SWITCHBOARD__GATEWAY__SERVER_ID", SERVER_ID.to_owned()),
        ("SWITCHBOARD__BUS__NATS_URL", cluster.urls()),
        ("SWITCHBOARD__STORE__REDIS_URL", redis.url()),
        (
            "SWITCHBOARD__STORE__KEY_PREFIX",
            format!("sbfailover{}", std::process::id()),
        ),
        (
            "SWITCHBOARD__AUTH__HMAC_SECRET",
            String::from_utf8_lossy(auth::test_keys::TEST_HMAC_SECRET).into_owned(),
        ),
        ("SWITCHBOARD__AUTH__API_KEY", TEST_API_KEY.to_owned()),
    ]
}

fn envelope(n: i64) -> Bytes {
    let envelope = RoomEnvelope {
        event: "failover_probe".into(),
        data: json!({ "n": n }),
        timestamp: None,
        seq: None,
        priority: None,
    };
    Bytes::from(encode_bus(&envelope).expect("an envelope encodes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_nats_node_dies_reconnects_to_another_and_its_client_keeps_receiving() {
    let mut cluster = NatsCluster::start().await;
    let redis = RedisServer::start().await;
    let gateway = GatewayProcess::spawn(&gateway_env(&cluster, &redis)).await;
    let room = RoomName::parse("failover.probe").expect("a valid room name");
    let subject = Subjects::default().room(&room);
    let mut client = connect(&gateway.ws_url(&token(&viewer("alice")))).await;
    assert_eq!(
        client.subscribe(&[room.as_str()]).await,
        vec![room.as_str()]
    );

    let doomed = cluster
        .node_serving_client(SERVER_ID)
        .await
        .expect("a node of the cluster holds the gateway's connection");
    // The service publishing sits on another node, given only that node's URL.
    let publisher_node = (doomed + 1) % cluster.node_count();
    let publisher =
        bus::Bus::connect_nats(&cluster.url(publisher_node), bus::NatsOptions::default())
            .await
            .expect("the publisher's node accepts connections");

    // Wait until the gateway's interest has crossed the routes: probes with n = -1.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publisher
            .publish(&subject, envelope(-1))
            .await
            .expect("probe");
        if client
            .room_message_within(Duration::from_millis(200))
            .await
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no probe reached the client");
    }
    while client
        .room_message_within(Duration::from_millis(200))
        .await
        .is_some()
    {}

    // Publish 0.. at a steady rate; kill the gateway's node after one second; stop one
    // second after the first message published after the kill has reached the client.
    let publishing = tokio::spawn({
        let publisher = publisher.clone();
        let subject = subject.clone();
        async move {
            let mut sent_at = Vec::new();
            let mut ticks = tokio::time::interval(PUBLISH_INTERVAL);
            for n in 0..400_i64 {
                ticks.tick().await;
                publisher
                    .publish(&subject, envelope(n))
                    .await
                    .expect("the publisher's node stays up");
                sent_at.push(Instant::now());
            }
            publisher.flush().await.expect("flush the publisher");
            sent_at
        }
    });

    let mut received: Vec<(i64, Instant)> = Vec::new();
    let started = Instant::now();
    let mut killed_at = None;
    while let Some(message) = client.room_message_within(Duration::from_secs(2)).await {
        let n = message.data["n"].as_i64().expect("a numbered probe");
        let now = Instant::now();
        received.push((n, now));
        if killed_at.is_none() && now - started >= Duration::from_secs(1) {
            cluster.kill(doomed).await;
            killed_at = Some(Instant::now());
        }
        if n == 399 {
            break;
        }
    }
    let sent_at = publishing.await.expect("the publishing task ends");
    let killed_at = killed_at.expect("the node was killed while messages flowed");
    // Delivery resumed when the first message published after the kill reached the client.
    let first_after_kill = received
        .iter()
        .filter(|(n, _)| *n >= 0 && sent_at[*n as usize] > killed_at)
        .map(|(_, at)| *at - killed_at)
        .min();

    let reattached = cluster.node_serving_client(SERVER_ID).await;
    let mut seen = HashSet::new();
    let duplicates = received.iter().filter(|(n, _)| !seen.insert(*n)).count();
    let lost: Vec<i64> = (0..400).filter(|n| !seen.contains(n)).collect();
    let max_gap = received
        .windows(2)
        .map(|pair| pair[1].1 - pair[0].1)
        .max()
        .unwrap_or_default();
    println!(
        "gateway nats failover: killed {} (the gateway's node), gateway now on {:?}; the first \
         message published after the kill was delivered at +{first_after_kill:?}; published \
         400, delivered {}, lost {} {:?}, duplicated {duplicates}, longest delivery gap \
         {max_gap:?}",
        cluster.node_name(doomed),
        reattached.map(|index| cluster.node_name(index)),
        received.len(),
        lost.len(),
        lost.iter()
            .map(|&n| sent_at[n as usize].saturating_duration_since(killed_at))
            .collect::<Vec<_>>(),
    );

    assert!(
        reattached.is_some_and(|index| index != doomed),
        "the gateway reattached to another node"
    );
    assert_eq!(duplicates, 0, "never a duplicate");
    let recovery = first_after_kill.expect("delivery resumed after the kill");
    assert!(
        recovery < MAX_RECOVERY,
        "delivery resumed only after {recovery:?}"
    );
    // Everything published before the kill or well after it arrived; only the failover
    // window may lose messages (at most once, as designed for rooms without history).
    for &n in &lost {
        let at = sent_at[n as usize];
        assert!(
            at + Duration::from_millis(100) >= killed_at
                && at <= killed_at + recovery + Duration::from_secs(1),
            "message {n} published at +{:?} of the kill was lost outside the failover window",
            at.saturating_duration_since(killed_at)
        );
    }
    // The gateway reports itself ready again.
    eventually(Duration::from_secs(5), || async {
        matches!(
            gateway::test_util::http_request(gateway.addr, "GET", "/readyz", &[], "").await,
            Ok((200, _))
        )
    })
    .await;
}

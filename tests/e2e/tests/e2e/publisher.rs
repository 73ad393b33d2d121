//! The publisher against real NATS and Redis: node agents (simulated here by WebSocket
//! clients with node tokens sending `node_state`) report through a gateway, the publisher
//! publishes `node_status_update` to room `nodes`, and a viewer sees it through the gateway.
//! Two publisher replicas elect one leader; killing it hands over without repeating a tick.

use std::time::Duration;

use client::agent::Agent;
use e2e::{Stack, TestClient, token, viewer};
use gateway::test_util::TestGateway;
use protocol::RoomMessage;
use publisher::{Publisher, RunError};
use serde_json::json;
use store::Store;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const NODES_INTERVAL: Duration = Duration::from_secs(1);
const NODE_TIMEOUT: Duration = Duration::from_millis(2500);
const AGENT_INTERVAL: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(15);

/// A publisher configuration for `stack` with short intervals, as env keys would set it.
fn publisher_config(stack: &Stack, instance_id: &str) -> publisher::Config {
    let mut config = publisher::Config::default();
    config.bus.nats_url = Some(stack.nats.url());
    config.store.redis_url = Some(stack.redis.url());
    config.store.key_prefix = stack.key_prefix.clone();
    let section = &mut config.publisher;
    section.instance_id = Some(instance_id.to_owned());
    section.nodes_interval = NODES_INTERVAL;
    section.tasks_interval = NODES_INTERVAL;
    section.metrics_interval = Duration::from_secs(2);
    section.resources_interval = Duration::from_secs(2);
    section.node_timeout = NODE_TIMEOUT;
    section.sweep_interval = Duration::from_millis(100);
    section.lease_ttl = Duration::from_millis(1000);
    section.lease_renew_interval = Duration::from_millis(250);
    config
}

/// A publisher process stand-in: its own NATS and Redis connections, served on a task.
struct Replica {
    instance_id: String,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), RunError>>,
}

impl Replica {
    async fn start(stack: &Stack, instance_id: &str) -> Self {
        let config = publisher_config(stack, instance_id);
        let bus = publisher::connect_bus(&config)
            .await
            .expect("nats reachable");
        let store = publisher::connect_store(&config)
            .await
            .expect("redis reachable");
        let publisher = Publisher::bind(config, bus, store)
            .await
            .expect("publisher binds");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(publisher.serve(shutdown.clone()));
        Self {
            instance_id: instance_id.to_owned(),
            shutdown,
            handle,
        }
    }

    async fn shutdown(self) {
        self.shutdown.cancel();
        self.handle
            .await
            .expect("serve does not panic")
            .expect("clean drain");
    }

    /// A crash: the task is aborted, nothing is released.
    fn kill(self) {
        self.handle.abort();
    }
}

/// A real node agent (`client::agent`) with a node token, reporting every `AGENT_INTERVAL`.
async fn spawn_agent(gateway: &TestGateway, node_id: &str, layer: &str) -> Agent {
    spawn_agent_at(gateway.addr, node_id, layer)
}

/// [`spawn_agent`] connecting to `addr` (a proxy in front of the gateway).
fn spawn_agent_at(addr: std::net::SocketAddr, node_id: &str, layer: &str) -> Agent {
    let mut claims = viewer(&format!("agent-{node_id}"));
    claims.role = auth::Role::Node;
    claims.node_id = Some(node_id.to_owned());
    Agent::builder(format!("ws://{addr}/api/ws/connect"), token(&claims))
        .node_id(node_id)
        .layer(layer)
        .update_interval(AGENT_INTERVAL)
        .state_provider(
            || json!({"cpu_percent": 10.0, "memory_used_percent": 30.0, "load_1m": 0.2}),
        )
        .start()
        .expect("agent starts")
}

async fn subscribed_viewer(gateway: &TestGateway, rooms: &[&str]) -> TestClient {
    let mut client = gateway.connect(&token(&viewer("dashboard"))).await;
    client.subscribe(rooms).await;
    client
}

/// Waits for the first room message matching `wanted`.
async fn room_message_where(
    client: &mut TestClient,
    wanted: impl Fn(&RoomMessage) -> bool,
) -> RoomMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.room_message_within(left).await {
            Some(message) if wanted(&message) => return message,
            Some(_) => {}
            None => panic!("no matching room message within {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_agents_are_three_active_nodes_and_a_silent_one_goes_offline_within_the_timeout()
{
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let publisher = Replica::start(&stack, "pub-a").await;
    let mut dashboard = subscribed_viewer(&gateway, &["nodes", "alerts"]).await;
    // node-3's network can be cut: an outage, as opposed to a clean stop (its final state
    // would make it `stopped`, with no alert).
    let network = e2e::proxy::TcpProxy::start(gateway.addr).await;
    let agents = [
        spawn_agent(&gateway, "node-1", "edge").await,
        spawn_agent(&gateway, "node-2", "edge").await,
        spawn_agent_at(network.addr(), "node-3", "core"),
    ];

    let status = room_message_where(&mut dashboard, |m| {
        m.event == "node_status_update" && m.data["active_nodes"] == 3
    })
    .await;
    assert_eq!(status.room, "nodes");
    assert_eq!(status.data["offline_nodes"], 0);
    let nodes = status.data["nodes"].as_array().expect("nodes list");
    let ids: Vec<_> = nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node-1", "node-2", "node-3"]);
    for node in nodes {
        assert_eq!(node["online"], true);
        assert!(node["update_count"].as_u64().unwrap() >= 1);
        assert!(node["last_seen"].is_string());
    }
    assert_eq!(nodes[2]["layer"], "core");

    let [first, second, third] = agents;
    network.cut_for(Duration::from_secs(60)).await;
    let stopped_at = Instant::now();
    // The alert goes out as soon as the timeout passes; the status shows it at the next tick.
    let (mut offline, mut alert) = (None, None);
    while offline.is_none() || alert.is_none() {
        let message = room_message_where(&mut dashboard, |m| {
            (m.event == "node_status_update" && m.data["offline_nodes"] == 1)
                || (m.room == "alerts" && m.data["type"] == "node_offline")
        })
        .await;
        if message.room == "alerts" {
            alert = Some(message);
        } else {
            offline = Some((message, stopped_at.elapsed()));
        }
    }
    let (offline, took) = offline.unwrap();
    assert!(
        took <= NODE_TIMEOUT + NODES_INTERVAL + Duration::from_millis(500),
        "offline shown after {took:?}"
    );
    assert_eq!(offline.data["active_nodes"], 2);
    let node_3 = offline.data["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == "node-3")
        .expect("an offline node stays listed");
    assert_eq!(node_3["online"], false);
    assert_eq!(node_3["state"], "offline");
    let alert = alert.unwrap();
    assert_eq!(alert.data["node_id"], "node-3");
    assert_eq!(alert.priority.as_deref(), Some("warning"));

    first.stop().await;
    second.stop().await;
    drop(third);
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_lease_holder_hands_over_within_two_intervals_and_no_tick_is_published_twice() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let lease_store = Store::connect_redis(
        &stack.redis.url(),
        store::RedisOptions {
            key_prefix: stack.key_prefix.clone(),
            ..store::RedisOptions::default()
        },
    )
    .await
    .expect("redis reachable");
    let mut replicas = vec![
        Replica::start(&stack, "pub-a").await,
        Replica::start(&stack, "pub-b").await,
    ];
    let agent = spawn_agent(&gateway, "node-1", "edge").await;
    let mut dashboard = subscribed_viewer(&gateway, &["nodes"]).await;

    let mut seen: Vec<(u64, u64)> = Vec::new();
    while seen.len() < 3 {
        let message = room_message_where(&mut dashboard, |_| true).await;
        seen.push(tick_and_epoch(&message));
    }
    let (holder, held_epoch) = lease_store
        .lease_holder("publisher")
        .await
        .expect("redis answers")
        .expect("a replica holds the lease");
    assert_eq!(
        seen.last().unwrap().1,
        held_epoch,
        "the holder is the one publishing"
    );
    let index = replicas
        .iter()
        .position(|r| r.instance_id == holder)
        .expect("the holder is one of the replicas");

    replicas.remove(index).kill();
    let killed_at = Instant::now();
    let taken_over =
        room_message_where(&mut dashboard, |m| tick_and_epoch(m).1 != held_epoch).await;
    let takeover = killed_at.elapsed();
    assert!(
        takeover < 2 * NODES_INTERVAL,
        "the standby published {takeover:?} after the kill"
    );
    let (_, new_epoch) = tick_and_epoch(&taken_over);
    assert!(new_epoch > held_epoch, "fencing token grew");
    seen.push(tick_and_epoch(&taken_over));
    let until = Instant::now() + 3 * NODES_INTERVAL;
    while let Some(message) = dashboard
        .room_message_within(until.saturating_duration_since(Instant::now()))
        .await
    {
        seen.push(tick_and_epoch(&message));
    }

    let ticks: Vec<u64> = seen.iter().map(|(tick, _)| *tick).collect();
    assert!(
        ticks.windows(2).all(|pair| pair[0] < pair[1]),
        "a tick was published twice or out of order: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|pair| pair[0].1 <= pair[1].1),
        "an old leader published after the new one: {seen:?}"
    );
    agent.stop().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

/// The tick (`data.tick`, also the envelope's `seq`) and lease epoch of a `node_status_update`.
fn tick_and_epoch(message: &RoomMessage) -> (u64, u64) {
    assert_eq!(message.event, "node_status_update");
    let tick = message.data["tick"].as_u64().expect("tick");
    let epoch = message.data["lease_epoch"].as_u64().expect("lease_epoch");
    (tick, epoch)
}

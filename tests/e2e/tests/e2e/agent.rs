//! Node agents (libs/client) against a gateway on real NATS and Redis: their state reaches
//! `sb.ingest.node.<id>`, and commands on `sb.node.<id>.cmd` come back as their acks.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auth::Role;
use bus::{Bus, Headers, Subscription};
use bytes::Bytes;
use client::NodeState;
use client::agent::Agent;
use e2e::{Stack, token, viewer, within};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{CommandReply, CommandRequest, Subjects};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn node_token(node_id: &str) -> String {
    let mut claims = viewer(node_id);
    claims.role = Role::Node;
    claims.node_id = Some(node_id.to_owned());
    token(&claims)
}

async fn next_state(reports: &mut Subscription) -> NodeState {
    let message = within(WAIT, reports.next())
        .await
        .expect("subscription open");
    decode_bus(&message.payload).expect("node state decodes")
}

async fn command(bus: &Bus, node_id: &str, name: &str, params: Value) -> CommandReply {
    let request = CommandRequest {
        id: None,
        name: name.to_owned(),
        params,
    };
    let reply = bus
        .request(
            &Subjects::default().node_command(node_id),
            Headers::new(),
            Bytes::from(encode_bus(&request).unwrap()),
            Duration::from_secs(5),
        )
        .await
        .expect("the node answers");
    decode_bus(&reply.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_state_reaches_nats_and_its_commands_come_back_as_acks() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let bus = stack.bus().await;
    let node_id = "e2e-agent-1";
    let mut reports = bus
        .subscribe(&Subjects::default().ingest_node(node_id))
        .await
        .unwrap();
    bus.flush().await.unwrap();
    let agent = Agent::builder(
        format!("ws://{}/api/ws/connect", gateway.addr),
        node_token(node_id),
    )
    .node_id(node_id)
    .layer("core")
    .update_interval(Duration::from_secs(30))
    .state_provider(|| json!({"queue_depth": 7}))
    .command_handler("drain_queue", |params| async move {
        Ok(json!({"drained": params["max"]}))
    })
    .start()
    .unwrap();

    let first = next_state(&mut reports).await;
    assert_eq!(
        (first.node_id.as_str(), first.layer.as_str()),
        (node_id, "core")
    );
    assert_eq!(first.current_data, json!({"queue_depth": 7}));
    assert_eq!(
        first.operation_log.last().unwrap()["operation"],
        "connected"
    );

    let pong = command(&bus, node_id, "ping", Value::Null).await;
    assert!(pong.ok, "{pong:?}");
    assert_eq!(pong.result.unwrap()["node_id"], node_id);
    let drained = command(&bus, node_id, "drain_queue", json!({"max": 3})).await;
    assert_eq!(
        (drained.ok, drained.result),
        (true, Some(json!({"drained": 3})))
    );

    // From one report per 30 s to four per second: the faster reports are observed on NATS.
    let faster = command(&bus, node_id, "set_interval", json!({"seconds": 0.25})).await;
    assert_eq!(faster.result, Some(json!({"interval_seconds": 0.25})));
    let started = Instant::now();
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(next_state(&mut reports).await.update_count);
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        counts.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{counts:?}"
    );

    agent.stop().await;
    let last = loop {
        let state = next_state(&mut reports).await;
        if state
            .operation_log
            .last()
            .is_some_and(|entry| entry["operation"] == "stop")
        {
            break state;
        }
    };
    let commands: Vec<&str> = last
        .operation_log
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(commands, ["ping", "drain_queue", "set_interval"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_report_side_by_side() {
    let stack = Stack::start().await;
    let gateway = stack.gateway(|_| {}).await;
    let bus = stack.bus().await;
    let mut reports = bus
        .subscribe(&Subjects::default().ingest_all_nodes())
        .await
        .unwrap();
    bus.flush().await.unwrap();
    let url = format!("ws://{}/api/ws/connect", gateway.addr);
    let agents: Vec<Agent> = (1..=3)
        .map(|n| {
            let node_id = format!("e2e-trio-{n}");
            Agent::builder(url.clone(), node_token(&node_id))
                .node_id(node_id)
                .layer("edge")
                .start()
                .unwrap()
        })
        .collect();
    let mut seen = BTreeSet::new();
    while seen.len() < 3 {
        seen.insert(next_state(&mut reports).await.node_id);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["e2e-trio-1", "e2e-trio-2", "e2e-trio-3"]
    );
    for agent in agents {
        agent.stop().await;
    }
}

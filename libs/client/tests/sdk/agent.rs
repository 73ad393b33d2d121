//! The node agent against an in-process gateway: reports arrive on `sb.ingest.node.<id>`,
//! commands on `sb.node.<id>.cmd` come back as the agent's acks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bus::{Bus, Headers, Subscription};
use bytes::Bytes;
use client::agent::{Agent, AgentError};
use client::{ConnectionState, NodeState};
use protocol::envelope::{decode_bus, encode_bus};
use protocol::{CommandReply, CommandRequest, Subjects};
use serde_json::{Value, json};
use store::Store;

use crate::helpers::*;

async fn next_state(reports: &mut Subscription) -> NodeState {
    let message = within(WAIT, reports.next())
        .await
        .expect("bus subscription open");
    decode_bus(&message.payload).expect("node state decodes")
}

async fn command(bus: &Bus, node_id: &str, name: &str, params: Value) -> CommandReply {
    let request = CommandRequest {
        id: None,
        name: name.to_owned(),
        params,
    };
    let payload = Bytes::from(encode_bus(&request).unwrap());
    let reply = bus
        .request(
            &Subjects::default().node_command(node_id),
            Headers::new(),
            payload,
            Duration::from_secs(5),
        )
        .await
        .expect("the node answers");
    decode_bus(&reply.payload).unwrap()
}

#[tokio::test]
async fn the_agent_reports_on_connect_on_change_and_after_a_sync() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, &Store::memory(), None, Duration::from_millis(50)).await;
    let mut reports = bus
        .subscribe(&Subjects::default().ingest_node("n1"))
        .await
        .unwrap();
    let applied = Arc::new(AtomicU64::new(0));
    let seen = applied.clone();
    let agent = Agent::builder(ws_url(gateway.addr), node_token("n1"))
        .node_id("n1")
        .layer("edge")
        .update_interval(Duration::from_secs(3600))
        .state_provider(move || json!({"applied": seen.load(Ordering::SeqCst)}))
        .start()
        .unwrap();

    let first = next_state(&mut reports).await;
    assert_eq!(
        (first.node_id.as_str(), first.layer.as_str()),
        ("n1", "edge")
    );
    assert_eq!(first.update_count, 1);
    assert_eq!(first.current_data, json!({"applied": 0}));
    assert_eq!(
        first.operation_log.last().unwrap()["operation"],
        "connected"
    );

    applied.store(5, Ordering::SeqCst);
    agent.notify_changed();
    let changed = next_state(&mut reports).await;
    assert_eq!(
        (changed.update_count, changed.current_data.clone()),
        (2, json!({"applied": 5}))
    );

    agent.handle().record_sync(42);
    let synced = next_state(&mut reports).await;
    assert_eq!(synced.last_sync_count, 42);
    assert!(synced.last_sync_time.is_some());
    assert_eq!(synced.operation_log.last().unwrap()["operation"], "sync");

    agent.stop().await;
    let last = next_state(&mut reports).await;
    assert_eq!(last.operation_log.last().unwrap()["operation"], "stop");
}

#[tokio::test]
async fn the_agent_answers_built_in_and_registered_commands() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, &Store::memory(), None, Duration::from_millis(50)).await;
    let mut reports = bus
        .subscribe(&Subjects::default().ingest_node("n2"))
        .await
        .unwrap();
    let agent = Agent::builder(ws_url(gateway.addr), node_token("n2"))
        .node_id("n2")
        .update_interval(Duration::from_secs(3600))
        .command_handler("echo", |params| async move { Ok(json!({"echo": params})) })
        .command_handler("fail", |_| async move { Err("disk full".to_owned()) })
        .start()
        .unwrap();
    next_state(&mut reports).await;

    let pong = command(&bus, "n2", "ping", Value::Null).await;
    assert!(pong.ok && pong.result.unwrap()["pong"] == json!(true));
    let echo = command(&bus, "n2", "echo", json!({"x": 1})).await;
    assert_eq!(
        (echo.ok, echo.result),
        (true, Some(json!({"echo": {"x": 1}})))
    );
    let fail = command(&bus, "n2", "fail", Value::Null).await;
    assert_eq!((fail.ok, fail.error.as_deref()), (false, Some("disk full")));
    let unknown = command(&bus, "n2", "teleport", Value::Null).await;
    assert!(!unknown.ok && unknown.error.unwrap().contains("teleport"));
    let bad = command(&bus, "n2", "set_interval", json!({"seconds": 0})).await;
    assert!(!bad.ok);

    let now = command(&bus, "n2", "report_now", Value::Null).await;
    let reported = next_state(&mut reports).await;
    assert_eq!(
        now.result.unwrap()["update_count"],
        json!(reported.update_count)
    );
    let log: Vec<&str> = reported
        .operation_log
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(log, ["ping", "echo", "fail", "teleport", "set_interval"]);

    // From one report an hour to five a second.
    let faster = command(&bus, "n2", "set_interval", json!({"seconds": 0.2})).await;
    assert_eq!(faster.result, Some(json!({"interval_seconds": 0.2})));
    assert_eq!(agent.update_interval(), Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..3 {
        next_state(&mut reports).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    agent.stop().await;
}

#[tokio::test]
async fn the_agent_stops_by_itself_when_its_token_is_refused() {
    let gateway = gateway_on(
        &Bus::memory(),
        &Store::memory(),
        None,
        Duration::from_millis(50),
    )
    .await;
    let agent = Agent::builder(ws_url(gateway.addr), "forged")
        .node_id("n3")
        .reconnect(fast_policy())
        .start()
        .unwrap();
    let state = state_reaches(agent.client(), ConnectionState::is_disconnected).await;
    assert!(matches!(
        state,
        ConnectionState::Disconnected {
            reason: client::DisconnectReason::Refused { code: 4401, .. }
        }
    ));
    within(WAIT, agent.stop()).await;
}

#[tokio::test]
async fn agent_settings_are_checked_before_anything_starts() {
    let url = "ws://127.0.0.1:9/api/ws/connect";
    let missing = Agent::builder(url, "t").start().unwrap_err();
    assert!(matches!(missing, AgentError::MissingNodeId));
    let invalid = Agent::builder(url, "t").node_id("a.b").start().unwrap_err();
    assert!(matches!(invalid, AgentError::InvalidNodeId(_)));
    let reserved = Agent::builder(url, "t")
        .node_id("n")
        .command_handler("ping", |_| async move { Ok(Value::Null) })
        .start()
        .unwrap_err();
    assert!(matches!(reserved, AgentError::ReservedCommand(name) if name == "ping"));
    let interval = Agent::builder(url, "t")
        .node_id("n")
        .update_interval(Duration::ZERO)
        .start()
        .unwrap_err();
    assert!(matches!(interval, AgentError::InvalidInterval(_)));
}

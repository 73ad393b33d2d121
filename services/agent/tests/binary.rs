//! `switchboard-agent` as a process against an in-process gateway: configured by
//! environment keys only, it reports real host figures and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use auth::Role;
use bus::{Bus, Subscription};
use gateway::test_util::{TestGateway, eventually, test_config, within};
use protocol::envelope::decode_bus;
use protocol::{NodeState, Subjects};
use store::Store;

const WAIT: Duration = Duration::from_secs(15);

fn node_token(node_id: &str) -> String {
    let mut claims = auth::test_keys::claims(node_id);
    claims.role = Role::Node;
    claims.node_id = Some(node_id.to_owned());
    auth::test_keys::hs256_token(&claims)
}

async fn next_state(reports: &mut Subscription) -> NodeState {
    let message = within(WAIT, reports.next()).await.unwrap();
    decode_bus(&message.payload).unwrap()
}

fn agent_command(env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard-agent"));
    command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_real_host_figures_and_stops_cleanly_on_sigterm() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let mut reports = bus
        .subscribe(&Subjects::default().ingest_node("host-7"))
        .await
        .unwrap();
    let mut child = agent_command(&[
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            format!("ws://{}/api/ws/connect", gateway.addr),
        ),
        ("SWITCHBOARD__AGENT__TOKEN", node_token("host-7")),
        ("SWITCHBOARD__AGENT__NODE_ID", "host-7".to_owned()),
        ("SWITCHBOARD__AGENT__LAYER", "rack-a".to_owned()),
        ("SWITCHBOARD__AGENT__UPDATE_INTERVAL", "300ms".to_owned()),
    ])
    .spawn()
    .unwrap();

    let first = next_state(&mut reports).await;
    assert_eq!(
        (first.node_id.as_str(), first.layer.as_str()),
        ("host-7", "rack-a")
    );
    let data = &first.current_data;
    let cpu = data["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{data}");
    assert!(data["cpu_count"].as_u64().unwrap() >= 1);
    assert!(
        data["memory_total_bytes"].as_u64().unwrap()
            > data["memory_available_bytes"].as_u64().unwrap()
    );
    assert!(data["load_1m"].as_f64().unwrap() >= 0.0);
    assert!(data["uptime_seconds"].as_f64().unwrap() > 0.0);
    // Disk use of the default watched mount, "/", measured with statvfs.
    let root = &data["storage"][0];
    assert_eq!(root["mount"], "/", "{data}");
    let (used, total) = (
        root["used_bytes"].as_u64().unwrap(),
        root["total_bytes"].as_u64().unwrap(),
    );
    assert!(total > 0 && used <= total, "{root}");
    assert_eq!(data["disk_used_percent"], root["used_percent"]);
    // The interval from the environment drives further reports.
    let second = next_state(&mut reports).await;
    assert_eq!(second.update_count, first.update_count + 1);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
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
    assert!(last.update_count > second.update_count);
    let status = within(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The gateway saw a close from the client, not a dropped socket.
    eventually(WAIT, || async {
        let metrics = gateway::test_util::http_request(gateway.addr, "GET", "/metrics", &[], "")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        metrics.lines().any(|line| {
            line == "switchboard_gateway_connections_closed_total{reason=\"client_closed\"} 1"
        })
    })
    .await;
}

/// The next room message on `feed` for which `wanted` holds.
async fn room_message_where(
    feed: &mut Subscription,
    wanted: impl Fn(&protocol::RoomEnvelope) -> bool,
) -> protocol::RoomEnvelope {
    loop {
        let message = within(WAIT, feed.next()).await.unwrap();
        let envelope: protocol::RoomEnvelope = decode_bus(&message.payload).unwrap();
        if wanted(&envelope) {
            return envelope;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_the_node_stopped_on_the_dashboard_without_an_offline_alert() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let gateway = TestGateway::start(test_config(), bus.clone(), store.clone()).await;
    let mut config = publisher::Config::default();
    let section = &mut config.publisher;
    section.nodes_interval = Duration::from_millis(300);
    section.node_timeout = Duration::from_secs(1);
    section.sweep_interval = Duration::from_millis(50);
    section.lease_ttl = Duration::from_millis(400);
    section.lease_renew_interval = Duration::from_millis(100);
    let node_timeout = section.node_timeout;
    let publisher = publisher::Publisher::bind(config, bus.clone(), store)
        .await
        .unwrap();
    let stop_publisher = tokio_util::sync::CancellationToken::new();
    let publisher = tokio::spawn(publisher.serve(stop_publisher.clone()));
    let mut nodes = bus.subscribe("sb.room.nodes").await.unwrap();
    let mut topology = bus.subscribe("sb.room.topology").await.unwrap();
    let mut alerts = bus.subscribe("sb.room.alerts").await.unwrap();
    let mut child = agent_command(&[
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            format!("ws://{}/api/ws/connect", gateway.addr),
        ),
        ("SWITCHBOARD__AGENT__TOKEN", node_token("host-9")),
        ("SWITCHBOARD__AGENT__NODE_ID", "host-9".to_owned()),
        ("SWITCHBOARD__AGENT__UPDATE_INTERVAL", "200ms".to_owned()),
        ("SWITCHBOARD__AGENT__STORAGE_MOUNTS", "/".to_owned()),
    ])
    .spawn()
    .unwrap();
    let online = room_message_where(&mut nodes, |m| {
        m.data["nodes"][0]["node_id"] == "host-9" && m.data["nodes"][0]["state"] == "online"
    })
    .await;
    assert_eq!(online.data["active_nodes"], 1);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = within(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let stopped = room_message_where(&mut topology, |m| {
        m.data["changes"]
            .as_array()
            .is_some_and(|changes| changes.iter().any(|c| c["change"] == "stopped"))
    })
    .await;
    assert_eq!(stopped.data["changes"][0]["node_id"], "host-9");
    // Well past the node timeout, the node is still stopped, never offline.
    let quiet_until = tokio::time::Instant::now() + node_timeout * 2;
    let after = loop {
        let update =
            room_message_where(&mut nodes, |m| m.data["nodes"][0]["node_id"] == "host-9").await;
        assert_eq!(
            update.data["nodes"][0]["state"], "stopped",
            "{}",
            update.data
        );
        if tokio::time::Instant::now() > quiet_until {
            break update;
        }
    };
    assert_eq!(
        (
            &after.data["active_nodes"],
            &after.data["offline_nodes"],
            &after.data["stopped_nodes"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(1)
        )
    );
    // No alert at all: no node_offline (and no node_online, the node never came back).
    let no_alert = tokio::time::timeout(Duration::from_millis(100), alerts.next()).await;
    assert!(no_alert.is_err(), "unexpected alert {no_alert:?}");
    stop_publisher.cancel();
    publisher.await.unwrap().unwrap();
}

#[test]
fn a_missing_token_is_a_configuration_error_with_exit_64() {
    let status = agent_command(&[("SWITCHBOARD__AGENT__NODE_ID", "n".to_owned())])
        .arg("--check-config")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(64));
    let status = agent_command(&[("SWITCHBOARD__AGENT__TOKEN", "t".to_owned())])
        .arg("--check-config")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_makes_the_binary_exit_with_failure() {
    let gateway = TestGateway::start(test_config(), Bus::memory(), Store::memory()).await;
    let mut child = agent_command(&[
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            format!("ws://{}/api/ws/connect", gateway.addr),
        ),
        ("SWITCHBOARD__AGENT__TOKEN", "forged".to_owned()),
        ("SWITCHBOARD__AGENT__NODE_ID", "host-8".to_owned()),
    ])
    .spawn()
    .unwrap();
    let status = within(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

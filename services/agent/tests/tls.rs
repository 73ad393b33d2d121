//! `switchboard-agent` with a `wss://` gateway URL against a gateway that terminates TLS
//! itself (`gateway.tls_cert`/`tls_key`), certificates made at test time by a private CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use auth::Role;
use bus::Bus;
use gateway::test_util::{TestGateway, TestPki, test_config, within};
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

fn agent_command(env: &[(&str, String)]) -> Command {
    // A/B runs point this at another build of the agent (one from before TLS support, say).
    let binary = std::env::var_os("SWITCHBOARD_TEST_AGENT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_switchboard-agent")),
        PathBuf::from,
    );
    let mut command = Command::new(binary);
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

async fn tls_gateway(pki: &TestPki, bus: Bus) -> TestGateway {
    let mut config = test_config();
    config.gateway.tls_cert = Some(pki.cert_path());
    config.gateway.tls_key = Some(pki.key_path());
    TestGateway::start(config, bus, Store::memory()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_agent_connects_to_a_tls_gateway() {
    let pki = TestPki::new("agent test ca");
    let bus = Bus::memory();
    let gateway = tls_gateway(&pki, bus.clone()).await;
    let mut reports = bus
        .subscribe(&Subjects::default().ingest_node("tls-host"))
        .await
        .unwrap();
    let mut child = agent_command(&[
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            format!("wss://{}/api/ws/connect", gateway.addr),
        ),
        (
            "SWITCHBOARD__AGENT__TLS_CA_FILE",
            pki.ca_path().display().to_string(),
        ),
        ("SWITCHBOARD__AGENT__TOKEN", node_token("tls-host")),
        ("SWITCHBOARD__AGENT__NODE_ID", "tls-host".to_owned()),
        ("SWITCHBOARD__AGENT__UPDATE_INTERVAL", "300ms".to_owned()),
    ])
    .spawn()
    .unwrap();

    let reported = tokio::time::timeout(WAIT, reports.next()).await;
    let _ = child.kill();
    let _ = child.wait();
    let message = reported
        .expect("the agent's node state reaches the bus through the wss gateway")
        .expect("the subscription is open");
    let state: NodeState = decode_bus(&message.payload).unwrap();
    assert_eq!(state.node_id, "tls-host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_agent_without_the_ca_exits_with_failure_at_once() {
    let pki = TestPki::new("agent test ca");
    let gateway = tls_gateway(&pki, Bus::memory()).await;
    let mut child = agent_command(&[
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            format!("wss://{}/api/ws/connect", gateway.addr),
        ),
        ("SWITCHBOARD__AGENT__TOKEN", node_token("tls-host-2")),
        ("SWITCHBOARD__AGENT__NODE_ID", "tls-host-2".to_owned()),
    ])
    .spawn()
    .unwrap();
    // Only the platform store is trusted, which holds no test CA. Untrusted is final: no
    // reconnect loop, exit 1 well before the backoff would matter.
    let status = within(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn an_unreadable_ca_file_fails_check_config_with_exit_64() {
    let status = agent_command(&[
        ("SWITCHBOARD__AGENT__TOKEN", "t".to_owned()),
        (
            "SWITCHBOARD__AGENT__GATEWAY_URL",
            "wss://gw.example:443/api/ws/connect".to_owned(),
        ),
        (
            "SWITCHBOARD__AGENT__TLS_CA_FILE",
            "/nonexistent/ca.pem".to_owned(),
        ),
    ])
    .arg("--check-config")
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(64));
}

//! `wss://` through a gateway that terminates TLS itself (`gateway.tls_cert`/`tls_key`),
//! with certificates from a private CA made at test time.

use std::path::PathBuf;
use std::time::Duration;

use client::{Client, ConnectionState, DisconnectReason};
use gateway::test_util::{TestGateway, TestPki, test_config};
use serde_json::json;

use crate::helpers::*;

/// A gateway on the memory engine that terminates TLS with `pki`'s certificate.
async fn tls_gateway(pki: &TestPki) -> TestGateway {
    let mut config = test_config();
    config.gateway.tls_cert = Some(pki.cert_path());
    config.gateway.tls_key = Some(pki.key_path());
    TestGateway::start(config, bus::Bus::memory(), store::Store::memory()).await
}

#[tokio::test]
async fn a_client_trusting_the_private_ca_connects_over_wss() {
    let pki = TestPki::new("sdk test ca");
    let gateway = tls_gateway(&pki).await;
    let client = Client::builder(format!("wss://{}/api/ws/connect", gateway.addr))
        .token(viewer_token("tess"))
        .tls_ca_file(pki.ca_path())
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["news"]).await.unwrap();
    subscribed_to(&mut events, "news").await;
    assert!(client.state().is_connected());
    client.close().await;
}

#[tokio::test]
async fn a_gateway_certificate_no_trusted_ca_signed_ends_the_client_with_a_clear_reason() {
    let pki = TestPki::new("sdk test ca");
    let gateway = tls_gateway(&pki).await;
    let other = TestPki::new("another ca");
    let client = Client::builder(format!("wss://{}/api/ws/connect", gateway.addr))
        .token(viewer_token("tess"))
        .tls_ca_file(other.ca_path())
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut state = client.watch_state();
    let _events = client.connect().unwrap();
    let reached = tokio::time::timeout(WAIT, state.wait_for(ConnectionState::is_disconnected))
        .await
        .expect("the client stops instead of retrying")
        .unwrap()
        .clone();
    let ConnectionState::Disconnected {
        reason: DisconnectReason::UntrustedServer(text),
    } = reached
    else {
        panic!("expected UntrustedServer, got {reached:?}");
    };
    assert!(text.contains("UnknownIssuer"), "{text}");
}

/// Connects a fresh client trusting only `ca` and returns the state it settles in:
/// `Connected`, or `Disconnected` (untrusted is final).
async fn settled_state(url: &str, ca: PathBuf) -> ConnectionState {
    let client = Client::builder(url)
        .token(viewer_token("tess"))
        .tls_ca_file(ca)
        .build()
        .unwrap();
    let mut state = client.watch_state();
    let _events = client.connect().unwrap();
    let settled = tokio::time::timeout(
        WAIT,
        state.wait_for(|state| state.is_connected() || state.is_disconnected()),
    )
    .await
    .expect("the client settles")
    .unwrap()
    .clone();
    client.close().await;
    settled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_gives_new_connections_the_new_certificate_and_keeps_open_ones() {
    let first = TestPki::new("first ca");
    let gateway = tls_gateway(&first).await;
    let url = format!("wss://{}/api/ws/connect", gateway.addr);
    let open = Client::builder(url.clone())
        .token(viewer_token("tess"))
        .tls_ca_file(first.ca_path())
        .build()
        .unwrap();
    let mut events = open.connect().unwrap();
    open.subscribe(["news"]).await.unwrap();
    subscribed_to(&mut events, "news").await;

    // A pair from another CA replaces the files; then `kill -HUP`, as an operator would.
    let second = TestPki::new("second ca");
    std::fs::copy(second.cert_path(), first.cert_path()).unwrap();
    std::fs::copy(second.key_path(), first.key_path()).unwrap();
    let signalled = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if settled_state(&url, second.ca_path()).await.is_connected() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new connections never got the reloaded certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        matches!(
            settled_state(&url, first.ca_path()).await,
            ConnectionState::Disconnected {
                reason: DisconnectReason::UntrustedServer(_)
            }
        ),
        "the old certificate is no longer served"
    );
    // The connection from before the reload keeps its TLS session and still works.
    assert!(open.state().is_connected());
    open.publish("news", "story", json!({"after": "reload"}))
        .await
        .unwrap();
    assert_eq!(
        next_room_event(&mut events, "story").await,
        json!({"after": "reload"})
    );
    open.close().await;
}

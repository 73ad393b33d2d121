//! `auth.jwks_url`: the gateway verifies tokens by the key their `kid` names in a key set
//! served over HTTP by a real local server, and picks up a rotated set by itself.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth::test_keys::{
    EC_PRIVATE_PEM, EC_PUBLIC_PEM, OTHER_EC_PRIVATE_PEM, OTHER_EC_PUBLIC_PEM, ec_jwk,
    es256_token_with_kid,
};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use gateway::test_util::{TestClient, TestGateway};
use protocol::{Codec, ErrorCode, ServerMessage, close_code};
use serde_json::{Value, json};

use crate::helpers::{eventually_some, viewer};

type Document = Arc<Mutex<String>>;

async fn key_server(keys: Value) -> (Document, SocketAddr) {
    let document: Document = Arc::new(Mutex::new(json!({ "keys": keys }).to_string()));
    let router = Router::new()
        .route(
            "/jwks.json",
            get(|State(doc): State<Document>| async move { doc.lock().unwrap().clone() }),
        )
        .with_state(document.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (document, addr)
}

#[tokio::test]
async fn tokens_are_verified_by_kid_from_a_key_set_and_its_rotation_is_picked_up() {
    let (document, addr) = key_server(json!([ec_jwk(EC_PUBLIC_PEM, "key-1")])).await;
    let gateway = TestGateway::start_memory(|config| {
        config.auth.hmac_secret = None;
        config.auth.jwks_url = Some(format!("http://{addr}/jwks.json"));
        config.auth.jwks_refresh_interval = Some(Duration::from_secs(1));
    })
    .await;
    let mut client = gateway
        .connect(&es256_token_with_kid(
            EC_PRIVATE_PEM,
            "key-1",
            &viewer("jwks-user"),
        ))
        .await;

    // The provider rotates to key-2; within a refresh interval new tokens verify, and the open
    // connection moves to a key-2 token in-band.
    *document.lock().unwrap() =
        json!({ "keys": [ec_jwk(OTHER_EC_PUBLIC_PEM, "key-2")] }).to_string();
    let rotated = es256_token_with_kid(OTHER_EC_PRIVATE_PEM, "key-2", &viewer("jwks-user"));
    let mut second = eventually_some(Duration::from_secs(5), || async {
        let mut attempt = TestClient::connect(&gateway.ws_url(&rotated), Codec::Json)
            .await
            .ok()?;
        match attempt.next_frame().await {
            Some(Ok(protocol::ServerFrame::Control(ServerMessage::ConnectionEstablished {
                ..
            }))) => Some(attempt),
            _ => None,
        }
    })
    .await;
    client
        .send_json(json!({"type": "refresh", "token": rotated}))
        .await;
    client
        .next_control(|m| matches!(m, ServerMessage::Refreshed { .. }))
        .await;
    second.send_json(json!({"type": "ping"})).await;
    second
        .next_control(|m| matches!(m, ServerMessage::Pong { .. }))
        .await;

    // A withdrawn key no longer verifies.
    let withdrawn = es256_token_with_kid(EC_PRIVATE_PEM, "key-1", &viewer("jwks-user"));
    let mut refused = TestClient::connect(&gateway.ws_url(&withdrawn), Codec::Json)
        .await
        .unwrap();
    refused.expect_error(ErrorCode::TokenInvalid).await;
    assert_eq!(
        refused.expect_close().await,
        Some(close_code::UNAUTHENTICATED)
    );
}

#[tokio::test]
async fn a_key_set_that_cannot_be_fetched_stops_the_start() {
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = gateway::test_util::test_config();
    config.auth.jwks_url = Some(format!("http://{unreachable}/jwks.json"));
    let started = gateway::Gateway::bind(config, bus::Bus::memory(), store::Store::memory()).await;
    assert!(matches!(started, Err(gateway::StartError::Jwks(_))));
}

#[tokio::test]
async fn a_token_of_a_just_rotated_key_opens_the_private_operational_endpoints_at_once() {
    let (document, addr) = key_server(json!([ec_jwk(EC_PUBLIC_PEM, "key-1")])).await;
    let gateway = TestGateway::start_memory(|config| {
        config.auth.hmac_secret = None;
        config.auth.jwks_url = Some(format!("http://{addr}/jwks.json"));
        // Long enough that only the refetch on an unknown `kid` can pick up key-2 here.
        config.auth.jwks_refresh_interval = Some(Duration::from_secs(300));
        config.gateway.private_operations = true;
    })
    .await;
    // The refetch for an unknown `kid` waits 10 s after the last fetch (the one at start).
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    *document.lock().unwrap() =
        json!({ "keys": [ec_jwk(OTHER_EC_PUBLIC_PEM, "key-2")] }).to_string();
    let rotated = es256_token_with_kid(OTHER_EC_PRIVATE_PEM, "key-2", &viewer("operator"));
    let bearer = format!("Bearer {rotated}");
    let (status, body) = gateway::test_util::http_request(
        gateway.addr,
        "GET",
        "/api/ws/stats",
        &[("Authorization", bearer.as_str())],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

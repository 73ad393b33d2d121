//! The upgrade and the greeting: `connection_established`, and both ways to present a token.

use std::time::Duration;

use gateway::test_util::{TestClient, TestGateway};
use protocol::{Codec, ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::helpers::{RawClient, assert_recent_rfc3339, token, viewer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_established_names_the_connection_the_server_and_the_heartbeat_interval() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.heartbeat_interval = Duration::from_millis(7_500);
        config.gateway.heartbeat_timeout = Duration::from_secs(20);
    })
    .await;
    let mut ids = Vec::new();
    for user in ["ada", "grace"] {
        let mut client = TestClient::connect(&gateway.ws_url(&token(&viewer(user))), Codec::Json)
            .await
            .expect("upgrade succeeds");
        match client.expect_established().await {
            ServerMessage::ConnectionEstablished {
                connection_id,
                server_id,
                heartbeat_interval_ms,
                timestamp,
            } => {
                assert_eq!(server_id, gateway.server_id);
                assert_eq!(heartbeat_interval_ms, 7_500);
                assert_recent_rfc3339(&timestamp);
                assert!(
                    uuid::Uuid::parse_str(&connection_id).is_ok(),
                    "connection id {connection_id:?} is a UUID"
                );
                ids.push(connection_id);
            }
            _ => unreachable!("filtered to connection_established"),
        }
    }
    assert_ne!(ids[0], ids[1], "every connection gets its own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_authorization_header_authenticates_like_the_query_token() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let url = format!("ws://{}/api/ws/connect", gateway.addr);
    let bearer = format!("Bearer {}", token(&viewer("header-user")));
    let mut client = TestClient::connect_with(&url, Codec::Json, |request| {
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&bearer).expect("token is a header value"),
        );
    })
    .await
    .expect("upgrade succeeds");
    client.expect_established().await;
    assert_eq!(client.subscribe(&["nodes"]).await, ["nodes"]);

    // The same URL without either form of token is refused on the socket.
    let mut anonymous = TestClient::connect(&url, Codec::Json)
        .await
        .expect("upgrade succeeds");
    anonymous.expect_error(ErrorCode::TokenMissing).await;
    assert_eq!(anonymous.expect_close().await, Some(4401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_with_a_close_frame() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = RawClient::connect(&gateway, &token(&viewer("polite")), None).await;
    client.next_frame().await; // connection_established
    client
        .send_frame(Message::Close(Some(CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        })))
        .await;
    // RFC 6455 §5.5.1: the server answers a close with a close before dropping the TCP connection.
    match client.next_frame().await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1000);
        }
        other => panic!("expected the close to be echoed, got {other:?}"),
    }
}

//! Admission limits: the per-process connection cap and the per-user connection rate.

use std::time::Duration;

use gateway::test_util::{TestClient, TestGateway};
use protocol::{Codec, ErrorCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{eventually_some, http_refusal, metric, token, viewer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_upgrades_with_503_until_a_slot_frees() {
    let gateway =
        TestGateway::start_memory(|config| config.gateway.max_connections = Some(2)).await;
    let url = |user: &str| gateway.ws_url(&token(&viewer(user)));
    let mut first = gateway.connect(&token(&viewer("one"))).await;
    let _second = gateway.connect(&token(&viewer("two"))).await;

    let refused = TestClient::connect(&url("three"), Codec::Json)
        .await
        .err()
        .expect("the third upgrade is refused");
    let (status, body) = http_refusal(refused);
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "too_many_connections");
    assert_eq!(
        metric(
            gateway.addr,
            r#"switchboard_gateway_rate_limited_total{limit="connection_cap"}"#
        )
        .await,
        1.0
    );

    first.send_raw(Message::Close(None)).await;
    let mut replacement = eventually_some(Duration::from_secs(5), || async {
        TestClient::connect(&url("three"), Codec::Json).await.ok()
    })
    .await;
    replacement.expect_established().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_connection_of_a_user_within_a_minute_is_refused_with_4429() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let busy = token(&viewer("busy-user"));
    // The limit counts new connections, not open ones: close each before the next.
    for _ in 0..10 {
        let mut client = gateway.connect(&busy).await;
        client.send_raw(Message::Close(None)).await;
        assert!(client.expect_close().await.is_none_or(|code| code == 1000));
    }

    let mut eleventh = TestClient::connect(&gateway.ws_url(&busy), Codec::Json)
        .await
        .expect("the upgrade completes so the browser can read the code");
    eleventh
        .expect_error(ErrorCode::ConnectionRateLimited)
        .await;
    assert_eq!(eleventh.expect_close().await, Some(4429));
    assert_eq!(
        metric(
            gateway.addr,
            r#"switchboard_gateway_rate_limited_total{limit="connections"}"#
        )
        .await,
        1.0
    );

    // Other users are not affected.
    gateway.connect(&token(&viewer("calm-user"))).await;
}

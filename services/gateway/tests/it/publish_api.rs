//! `POST /api/ws/publish`: the server API key, request validation and delivery.

use gateway::test_util::{TEST_API_KEY, TestGateway, http_request};
use serde_json::{Value, json};

use crate::helpers::{assert_recent_rfc3339, token, viewer};

const BEARER: &str = "Bearer test-api-key";

async fn post(gateway: &TestGateway, authorization: Option<&str>, body: &str) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    let (status, body) = http_request(gateway.addr, "POST", "/api/ws/publish", &headers, body)
        .await
        .expect("request succeeds");
    (status, serde_json::from_str(&body).expect("body is JSON"))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_without_the_api_key_is_refused_with_401() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    assert_eq!(BEARER, format!("Bearer {TEST_API_KEY}"));
    let body = json!({"room": "alerts", "type": "alert", "data": {}}).to_string();

    let (status, answer) = post(&gateway, None, &body).await;
    assert_eq!((status, error_code(&answer)), (401, "token_missing"));
    let (status, answer) = post(&gateway, Some("Basic dXNlcjpwYXNz"), &body).await;
    assert_eq!((status, error_code(&answer)), (401, "token_missing"));
    let (status, answer) = post(&gateway, Some("Bearer wrong-key"), &body).await;
    assert_eq!((status, error_code(&answer)), (401, "token_invalid"));
    // A client token is not the server API key either.
    let client_token = format!("Bearer {}", token(&viewer("user")));
    let (status, answer) = post(&gateway, Some(&client_token), &body).await;
    assert_eq!((status, error_code(&answer)), (401, "token_invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_publish_requests_are_refused_with_their_codes() {
    let gateway = TestGateway::start_memory(|config| config.gateway.max_message_bytes = 1024).await;
    let cases = [
        ("not json", "{", 400, "invalid_message"),
        (
            "missing type",
            r#"{"room": "alerts"}"#,
            400,
            "invalid_message",
        ),
        (
            "unknown field",
            r#"{"room": "alerts", "type": "alert", "extra": 1}"#,
            400,
            "invalid_message",
        ),
        (
            "invalid room",
            r#"{"room": "no spaces allowed", "type": "alert"}"#,
            400,
            "invalid_room",
        ),
        (
            "wildcard room",
            r#"{"room": "alerts.>", "type": "alert"}"#,
            400,
            "invalid_room",
        ),
        (
            "empty room",
            r#"{"room": "", "type": "alert"}"#,
            400,
            "invalid_room",
        ),
        (
            "reserved event",
            r#"{"room": "alerts", "type": "error"}"#,
            400,
            "invalid_message",
        ),
        (
            "reserved event",
            r#"{"room": "alerts", "type": "heartbeat"}"#,
            400,
            "invalid_message",
        ),
        (
            "bad event name",
            r#"{"room": "alerts", "type": "a b"}"#,
            400,
            "invalid_message",
        ),
    ];
    for (case, body, status, code) in cases {
        let (got_status, answer) = post(&gateway, Some(BEARER), body).await;
        assert_eq!(
            (got_status, error_code(&answer)),
            (status, code),
            "{case}: {answer}"
        );
    }

    let oversized = json!({"room": "alerts", "type": "alert", "data": "x".repeat(2_000)});
    let (status, answer) = post(&gateway, Some(BEARER), &oversized.to_string()).await;
    assert_eq!((status, error_code(&answer)), (413, "message_too_large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_publish_answers_202_and_reaches_the_room_with_its_timestamp() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut client = gateway.connect(&token(&viewer("watcher"))).await;
    client.subscribe(&["alerts"]).await;

    let body = json!({
        "room": "alerts",
        "type": "threshold_exceeded",
        "data": {"metric": "cpu", "value": 97.5},
        "priority": "critical",
    });
    let (status, answer) = post(&gateway, Some(BEARER), &body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["room"], "alerts");
    assert_eq!(answer["type"], "threshold_exceeded");
    let timestamp = answer["timestamp"].as_str().expect("a timestamp");
    assert_recent_rfc3339(timestamp);

    let message = client.next_room_message().await;
    assert_eq!(message.event, "threshold_exceeded");
    assert_eq!(message.room, "alerts");
    assert_eq!(message.data, json!({"metric": "cpu", "value": 97.5}));
    assert_eq!(message.timestamp, timestamp);
    assert_eq!(message.priority.as_deref(), Some("critical"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_api_key_server_publishing_is_forbidden() {
    let gateway = TestGateway::start_memory(|config| config.auth.api_key = None).await;
    let body = json!({"room": "alerts", "type": "alert"}).to_string();
    for authorization in [None, Some(BEARER), Some("Bearer ")] {
        let (status, answer) = post(&gateway, authorization, &body).await;
        assert_eq!((status, error_code(&answer)), (403, "forbidden"));
    }
}

//! The HTTP front door: header-read timeout, idle keep-alive, the connection cap counted
//! from accept on (with headroom for probes), a drain bounded by its deadline, and
//! `/api/ws/publish` checking its key before reading a bounded body.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway::test_util::{TEST_API_KEY, TestClient, TestGateway, get_json, http_request, within};
use protocol::Codec;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::{http_refusal, token, viewer};

/// Reads until the server closes the connection; returns what it sent, or panics after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {limit:?}"
    );
    received
}

/// Sends `head` (a request head without its final blank line, which this adds) and
/// `body`, then reads the answer until the server closes or `limit` passes; returns the
/// status and body.
async fn raw_exchange(addr: SocketAddr, head: &str, body: &[u8], limit: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connects");
    stream
        .write_all(format!("{head}\r\n").as_bytes())
        .await
        .expect("head is sent");
    stream.write_all(body).await.expect("body is sent");
    let response =
        String::from_utf8_lossy(&read_until_closed(&mut stream, limit).await).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_line_is_closed_after_the_header_timeout() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut stream = TcpStream::connect(gateway.addr)
        .await
        .expect("tcp connects");
    stream.write_all(b"GET /healthz HT").await.expect("sent");
    let started = Instant::now();
    read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut stream = TcpStream::connect(gateway.addr)
        .await
        .expect("tcp connects");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", gateway.addr);
    stream.write_all(request.as_bytes()).await.expect("sent");
    // The answer arrives and the connection stays open for a next request, until it idles out.
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_sockets_count_against_the_cap_and_probes_still_get_an_answer() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.max_connections = Some(600);
        config.gateway.probe_headroom = 4;
    })
    .await;
    // 500 sockets that never send a byte: half-open clients (slowloris).
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(
            TcpStream::connect(gateway.addr)
                .await
                .expect("tcp connects"),
        );
    }
    // A normal client still connects while they hang.
    let mut client = within(
        Duration::from_secs(5),
        gateway.connect(&token(&viewer("normal"))),
    )
    .await;
    client.subscribe(&["alerts"]).await;

    // 99 more idle sockets fill the cap (599 idle + the client = 600): they are counted.
    for _ in 0..99 {
        idle.push(
            TcpStream::connect(gateway.addr)
                .await
                .expect("tcp connects"),
        );
    }
    let refused = within(
        Duration::from_secs(5),
        TestClient::connect(
            &gateway.ws_url(&token(&viewer("one-too-many"))),
            Codec::Json,
        ),
    )
    .await
    .err()
    .expect("the upgrade beyond the cap is refused");
    let (status, body) = http_refusal(refused);
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "too_many_connections");
    // The probe headroom still answers health checks.
    let (status, health) = within(Duration::from_secs(5), get_json(gateway.addr, "/healthz")).await;
    assert_eq!((status, &health["status"]), (200, &Value::from("ok")));
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http_client_does_not_hold_the_drain_past_its_deadline() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.drain_timeout = Duration::from_secs(1);
        config.gateway.request_body_timeout = Duration::from_secs(60);
        config.gateway.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // A publish whose body never completes: the request is in progress when the drain begins.
    let mut stalled = TcpStream::connect(gateway.addr)
        .await
        .expect("tcp connects");
    let head = format!(
        "POST /api/ws/publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TEST_API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"room\":",
        gateway.addr
    );
    stalled.write_all(head.as_bytes()).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    within(Duration::from_secs(4), gateway.shutdown())
        .await
        .expect("the drain is clean");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drain took {:?} with a 1 s budget",
        started.elapsed()
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mib_publish_body_is_refused_early_with_the_json_413() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let ten_mib = 10 * 1024 * 1024;
    let head = |authorization: &str| {
        format!(
            "POST /api/ws/publish HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: {ten_mib}\r\n",
            gateway.addr
        )
    };
    // Only the first bytes of the body are sent: the answer must not wait for the rest.
    let (status, body) = raw_exchange(
        gateway.addr,
        &head(&format!("Authorization: Bearer {TEST_API_KEY}\r\n")),
        b"{\"room\":\"alerts\",",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "message_too_large");

    // Without the key, the body is not even looked at.
    let (status, body) = raw_exchange(
        gateway.addr,
        &head(""),
        b"{\"room\":\"alerts\",",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "token_missing");

    // A chunked body without a length is cut at the limit, with the same answer.
    let chunk = vec![b' '; 70 * 1024];
    let mut chunked = format!("{:x}\r\n", chunk.len()).into_bytes();
    chunked.extend_from_slice(&chunk);
    chunked.extend_from_slice(b"\r\n");
    let (status, body) = raw_exchange(
        gateway.addr,
        &format!(
            "POST /api/ws/publish HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {TEST_API_KEY}\r\nTransfer-Encoding: chunked\r\n",
            gateway.addr
        ),
        &chunked,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "message_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_on_publish_and_connect() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let body = serde_json::json!({"room": "alerts", "type": "alert", "data": {}}).to_string();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let authorization = format!("{scheme} {TEST_API_KEY}");
        let (status, answer) = http_request(
            gateway.addr,
            "POST",
            "/api/ws/publish",
            &[
                ("Authorization", authorization.as_str()),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
        .await
        .expect("request succeeds");
        assert_eq!(status, 202, "{scheme}: {answer}");

        let value = format!("{scheme} {}", token(&viewer(&format!("user-{scheme}"))));
        let url = format!("ws://{}/api/ws/connect", gateway.addr);
        let mut client = TestClient::connect_with(&url, Codec::Json, |request| {
            request.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&value).expect("header value"),
            );
        })
        .await
        .unwrap_or_else(|error| panic!("{scheme}: upgrade refused: {error}"));
        client.expect_established().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_body_not_complete_within_the_body_timeout_is_refused_with_400() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.request_body_timeout = Duration::from_millis(300);
    })
    .await;
    let (status, body) = raw_exchange(
        gateway.addr,
        &format!(
            "POST /api/ws/publish HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Authorization: Bearer {TEST_API_KEY}\r\nContent-Length: 100\r\n",
            gateway.addr
        ),
        b"{\"room\":",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"]["code"], "invalid_message");
}

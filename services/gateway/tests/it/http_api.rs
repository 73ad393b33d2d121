//! The HTTP side: health, readiness, streams, stats, metrics and the dashboard.

use std::time::Duration;

use gateway::test_util::{TestClient, TestGateway, eventually, get_json, publish_http};
use protocol::{Codec, ErrorCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{eventually_some, http_get_with_head, metrics_text, token, viewer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    assert_eq!(
        get_json(gateway.addr, "/healthz").await,
        (200, json!({"status": "ok"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_ready_on_the_memory_engine_and_names_its_backends() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    assert_eq!(
        get_json(gateway.addr, "/readyz").await,
        (
            200,
            json!({
                "status": "ready",
                "bus": {"backend": "memory", "connected": true},
                "store": {"backend": "memory", "reachable": true, "affects_readiness": false},
                "draining": false,
            })
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_lists_the_six_standard_rooms_with_intervals_and_local_subscribers() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut first = gateway.connect(&token(&viewer("a"))).await;
    let mut second = gateway.connect(&token(&viewer("b"))).await;
    first.subscribe(&["nodes", "alerts"]).await;
    second.subscribe(&["nodes", "lab.custom"]).await;

    let (status, body) = get_json(gateway.addr, "/api/ws/streams").await;
    assert_eq!(status, 200);
    let streams = body["streams"].as_array().expect("streams is a list");
    let summary: Vec<(&str, &Value, &Value, u64)> = streams
        .iter()
        .map(|stream| {
            (
                stream["room"].as_str().expect("room"),
                &stream["event"],
                &stream["interval_ms"],
                stream["local_subscribers"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("nodes", &json!("node_status_update"), &json!(5_000), 2),
            ("tasks", &json!("task_progress_update"), &json!(2_000), 0),
            ("metrics", &json!("metrics_update"), &json!(10_000), 0),
            ("alerts", &json!("alert"), &Value::Null, 1),
            ("resources", &json!("resource_update"), &json!(15_000), 0),
            ("topology", &json!("topology_change"), &Value::Null, 0),
            ("lab.custom", &Value::Null, &Value::Null, 1),
        ]
    );
    assert!(
        streams[..6].iter().all(|stream| stream["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())),
        "every standard stream is described: {streams:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_connections_rooms_and_delivered_messages() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut first = gateway.connect(&token(&viewer("a"))).await;
    let mut second = gateway.connect(&token(&viewer("b"))).await;
    first.subscribe(&["alerts"]).await;
    second.subscribe(&["alerts", "tasks"]).await;

    let stats = || async { get_json(gateway.addr, "/api/ws/stats").await.1 };
    // Presence is written to the store in the background.
    eventually(Duration::from_secs(5), || async {
        let stats = stats().await;
        stats["active_connections"] == 2 && stats["rooms"] == json!({"alerts": 2, "tasks": 1})
    })
    .await;
    let snapshot = stats().await;
    assert_eq!(snapshot["total_connections"], 2);
    assert_eq!(snapshot["rooms_created"], 2);
    assert_eq!(snapshot["live_gateways"], 1);
    assert_eq!(snapshot["gateways"][0]["id"], gateway.server_id.as_str());
    assert_eq!(snapshot["server_id"], gateway.server_id.as_str());
    assert_eq!(snapshot["degraded"], false);
    assert_eq!(snapshot["total_messages"], 0);

    // Three alerts to two subscribers are six deliveries; the count is flushed every
    // liveness_ttl / 3.
    for n in 0..3 {
        assert_eq!(
            publish_http(gateway.addr, "alerts", "alert", json!({"n": n})).await,
            202
        );
    }
    for _ in 0..3 {
        first.next_room_message().await;
        second.next_room_message().await;
    }
    eventually(Duration::from_secs(5), || async {
        stats().await["total_messages"] == 6
    })
    .await;

    // Closing a connection lowers the active count; the total is cumulative.
    second.send_raw(Message::Close(None)).await;
    eventually(Duration::from_secs(5), || async {
        let stats = stats().await;
        stats["active_connections"] == 1 && stats["rooms"] == json!({"alerts": 1})
    })
    .await;
    let _third = gateway.connect(&token(&viewer("c"))).await;
    eventually(Duration::from_secs(5), || async {
        let stats = stats().await;
        stats["active_connections"] == 2 && stats["total_connections"] == 3
    })
    .await;
}

/// Every metric name registered in `src/metrics.rs`.
const METRIC_NAMES: [&str; 15] = [
    "switchboard_gateway_http_connections_refused_total",
    "switchboard_gateway_connections_active",
    "switchboard_gateway_connections_opened_total",
    "switchboard_gateway_connections_closed_total",
    "switchboard_gateway_messages_received_total",
    "switchboard_gateway_messages_sent_total",
    "switchboard_gateway_messages_dropped_total",
    "switchboard_gateway_slow_consumer_closes_total",
    "switchboard_gateway_auth_failures_total",
    "switchboard_gateway_rate_limited_total",
    "switchboard_gateway_bad_input_total",
    "switchboard_gateway_rooms_active",
    "switchboard_gateway_publish_to_write_seconds",
    "switchboard_gateway_store_errors_total",
    "switchboard_gateway_outbound_queued_messages",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_every_gateway_metric_once_it_has_a_sample() {
    let gateway =
        TestGateway::start_memory(|config| config.gateway.max_connections = Some(2)).await;
    // Labelled families only appear once a label has a value, so give each one.
    let mut client = gateway.connect(&token(&viewer("metered"))).await;
    client.subscribe(&["alerts"]).await; // messages_received, messages_sent
    client.send_raw(Message::Text("{".into())).await;
    client.expect_error(ErrorCode::InvalidMessage).await; // bad_input
    let mut refused = TestClient::connect(&gateway.ws_url("not-a-token"), Codec::Json)
        .await
        .expect("upgrade succeeds");
    assert_eq!(refused.expect_close().await, Some(4401)); // auth_failures
    // The refused connection gives its slot back once its close handshake is over.
    let second_url = gateway.ws_url(&token(&viewer("second")));
    let _second = eventually_some(Duration::from_secs(5), || async {
        TestClient::connect(&second_url, Codec::Json).await.ok()
    })
    .await;
    let at_cap = TestClient::connect(&gateway.ws_url(&token(&viewer("third"))), Codec::Json).await;
    assert!(at_cap.is_err(), "the cap of 2 is reached"); // rate_limited
    client.send_raw(Message::Close(None)).await; // connections_closed
    eventually(Duration::from_secs(5), || async {
        metrics_text(gateway.addr)
            .await
            .contains(r#"switchboard_gateway_connections_closed_total{reason="client_closed"} 1"#)
    })
    .await;

    let text = metrics_text(gateway.addr).await;
    let families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    for name in METRIC_NAMES {
        assert!(
            families.contains(&name),
            "{name} missing from /metrics:\n{text}"
        );
    }
    for sample in [
        r#"switchboard_gateway_connections_opened_total 2"#,
        r#"switchboard_gateway_connections_active 1"#,
        r#"switchboard_gateway_messages_received_total{type="subscribe"} 1"#,
        r#"switchboard_gateway_bad_input_total{code="invalid_message"} 1"#,
        r#"switchboard_gateway_auth_failures_total{reason="#,
        r#"switchboard_gateway_rate_limited_total{limit="connection_cap"} "#,
        r#"switchboard_gateway_publish_to_write_seconds_bucket{le="#,
    ] {
        assert!(
            text.contains(sample),
            "{sample} missing from /metrics:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_served_at_the_root_unless_disabled() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let (status, head, body) = http_get_with_head(gateway.addr, "/").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        body.starts_with("<!doctype html>"),
        "{}",
        &body[..body.len().min(80)]
    );
    assert!(
        body.contains("dashboard_dir") && body.contains("npm run build"),
        "without a built dashboard the page says how to build one"
    );

    let without = TestGateway::start_memory(|config| config.gateway.dashboard = false).await;
    let (status, _, _) = http_get_with_head(without.addr, "/").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_dashboard_directory_is_served_from_memory_with_its_assets() {
    let dir = std::env::temp_dir().join(format!("sb-it-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).expect("temp dir");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><script src=\"assets/app.js\"></script>",
    )
    .expect("write index");
    std::fs::write(dir.join("assets/app.js"), "globalThis.built = true;").expect("write app");
    std::fs::write(dir.join("outside.txt"), "not served").expect("write outside");
    let served_dir = dir.clone();
    let gateway = TestGateway::start_memory(move |config| {
        config.gateway.dashboard_dir = Some(served_dir.clone());
    })
    .await;

    let (status, head, body) = http_get_with_head(gateway.addr, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("assets/app.js"), "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(head.contains("etag: \""), "{head}");

    let (status, head, body) = http_get_with_head(gateway.addr, "/assets/app.js").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert_eq!(body, "globalThis.built = true;");

    // Read at start: a file written later is not served; nothing outside assets/ is.
    std::fs::write(dir.join("assets/late.js"), "late").expect("write late");
    for path in [
        "/assets/late.js",
        "/assets/../outside.txt",
        "/outside.txt",
        "/assets/missing.js",
    ] {
        let (status, _, _) = http_get_with_head(gateway.addr, path).await;
        assert_eq!(status, 404, "{path}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscribe_endpoint_explains_the_websocket_way_and_sorts_room_names() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    for path in ["/api/ws/subscribe", "/api/ws/unsubscribe"] {
        let (status, body) = gateway::test_util::http_request(
            gateway.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            r#"{"rooms": ["nodes", "lab.bench", "no spaces", "a.>"]}"#,
        )
        .await
        .expect("request succeeds");
        assert_eq!(status, 200, "{path}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["valid_rooms"], json!(["nodes", "lab.bench"]), "{path}");
        assert_eq!(body["invalid_rooms"], json!(["no spaces", "a.>"]), "{path}");
        assert_eq!(
            body["available_rooms"],
            json!([
                "nodes",
                "tasks",
                "metrics",
                "alerts",
                "resources",
                "topology"
            ])
        );
        assert!(
            body["how"]
                .as_str()
                .is_some_and(|how| how.contains("subscribe"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_operations_put_stats_metrics_and_devices_behind_a_key_or_token() {
    use gateway::test_util::{TEST_API_KEY, http_request};
    let open = TestGateway::start_memory(|_| {}).await;
    assert_eq!(
        get_json(open.addr, "/api/ws/stats").await.0,
        200,
        "open by default"
    );
    let gateway =
        TestGateway::start_memory(|config| config.gateway.private_operations = true).await;
    let viewer_token = format!("Bearer {}", token(&viewer("ops")));
    let api_key = format!("Bearer {TEST_API_KEY}");
    for path in [
        "/api/ws/stats",
        "/metrics",
        "/api/ws/metrics/summary",
        "/api/ws/devices",
    ] {
        let (status, body) = http_request(gateway.addr, "GET", path, &[], "")
            .await
            .unwrap();
        assert_eq!(status, 401, "{path} without credentials: {body}");
        let refusal: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(refusal["error"]["code"], "token_missing", "{path}");
        let forged = [("Authorization", "Bearer not-a-token")];
        let (status, _) = http_request(gateway.addr, "GET", path, &forged, "")
            .await
            .unwrap();
        assert_eq!(status, 401, "{path} with a forged token");
    }
    for credentials in [&api_key, &viewer_token] {
        let headers = [("Authorization", credentials.as_str())];
        let (status, body) = http_request(gateway.addr, "GET", "/api/ws/stats", &headers, "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, _) = http_request(gateway.addr, "GET", "/metrics", &headers, "")
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    // Probes and the dashboard page stay open for load balancers and browsers.
    for path in ["/healthz", "/readyz", "/"] {
        let (status, _) = http_request(gateway.addr, "GET", path, &[], "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}");
    }
}

//! Supervision of the services in one process: a service that fails or panics ends `serve`
//! with an error naming it (exit status 1 from the shared `main`), not a clean exit.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gateway::test_util::Fault;
use tokio_util::sync::CancellationToken;

use super::*;

async fn bound() -> Standalone {
    let mut config = Config::default();
    config.gateway.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.gateway.shutdown_delay = Duration::ZERO;
    config.simulation.nodes = 0;
    config.simulation.ml_node = false;
    Standalone::bind(config)
        .await
        .expect("the standalone binds")
}

async fn serve_unstopped(standalone: Standalone) -> Result<(), RunError> {
    // Nobody cancels the token: only a failing service may end `serve`.
    tokio::time::timeout(
        Duration::from_secs(30),
        standalone.serve(CancellationToken::new()),
    )
    .await
    .expect("serve ends when a service stops")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_panics_ends_serve_with_an_error_naming_it() {
    let mut standalone = bound().await;
    standalone.gateway.inject_fault(Fault {
        task: Fault::SERVE,
        after: Duration::from_millis(300),
    });
    match serve_unstopped(standalone).await {
        Err(RunError::ServicePanicked { service, .. }) => assert_eq!(service, "gateway"),
        other => panic!("expected the gateway's panic, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_background_task_panics_ends_serve_with_its_error() {
    let mut standalone = bound().await;
    standalone.gateway.inject_fault(Fault {
        task: Fault::HEARTBEAT,
        after: Duration::from_millis(300),
    });
    let error = serve_unstopped(standalone).await.unwrap_err();
    assert!(
        matches!(&error, RunError::Gateway(gateway::RunError::Task(failure)) if failure.task() == "heartbeat"),
        "{error:?}"
    );
    let chain = service::error_chain(&error);
    assert!(chain.contains("injected fault in heartbeat"), "{chain}");
}

/// The health in `metrics_update` of the embedded run: every service up, each instance
/// announced in the shared in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_run_shows_every_service_up_in_metrics_update() {
    let mut config = Config::default();
    config.gateway.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.gateway.shutdown_delay = Duration::ZERO;
    config.publisher.metrics_interval = Duration::from_secs(1);
    config.simulation.nodes = 1;
    config.simulation.ml_node = false;
    let standalone = Standalone::bind(config)
        .await
        .expect("the standalone binds");
    let access = standalone.access().clone();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(standalone.serve(shutdown.clone()));

    let url = format!(
        "ws://{}/api/ws/connect?token={}",
        access.addr, access.dev_token
    );
    let mut client = gateway::test_util::TestClient::connect(&url, protocol::Codec::Json)
        .await
        .expect("the gateway accepts the dev token");
    client.expect_established().await;
    client.subscribe(&["metrics"]).await;
    let expected = [
        "bus",
        "store",
        "gateways",
        "nodes",
        "publisher",
        "aggregator",
        "batch_ingest",
        "device_reader",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = serde_json::Value::Null;
    let all_up = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no metrics_update with every service up; last services: {last}"
        );
        let message = client.next_room_message().await;
        if message.event != "metrics_update" {
            continue;
        }
        last = message.data["services"].clone();
        let up = expected
            .iter()
            .all(|service| last[service]["status"] == "up");
        if up {
            break last.clone();
        }
    };
    for service in ["publisher", "aggregator", "batch_ingest", "device_reader"] {
        assert_eq!(
            all_up[service]["instances_up"], 1,
            "{service}: one instance in the embedded run: {all_up}"
        );
        let detail = all_up[service]["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("1 of 1 instances up"),
            "{service}: {detail}"
        );
    }
    assert_eq!(
        all_up.as_object().map(|services| services.len()),
        Some(expected.len())
    );

    shutdown.cancel();
    serving
        .await
        .expect("serve does not panic")
        .expect("the embedded run drains cleanly");
}

/// The node detail of the embedded run: the gateway asks the publisher over the in-memory bus,
/// and a simulated node's RTT comes from the gateway's own pings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_run_answers_a_simulated_nodes_detail_with_its_measured_rtt() {
    let mut config = Config::default();
    config.gateway.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.gateway.shutdown_delay = Duration::ZERO;
    config.gateway.heartbeat_interval = Duration::from_millis(300);
    config.simulation.nodes = 1;
    config.simulation.ml_node = false;
    let standalone = Standalone::bind(config)
        .await
        .expect("the standalone binds");
    let access = standalone.access().clone();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(standalone.serve(shutdown.clone()));
    let auth = format!("Bearer {}", access.api_key);
    let get = |path: String| {
        let auth = auth.clone();
        async move {
            let (status, body) = gateway::test_util::http_request(
                access.addr,
                "GET",
                &path,
                &[("Authorization", auth.as_str())],
                "",
            )
            .await
            .expect("http request succeeds");
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            )
        }
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let detail = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no node detail with a measured rtt"
        );
        let (status, list) = get("/api/ws/nodes".to_owned()).await;
        let node_id = list["nodes"][0]["node_id"].as_str().map(str::to_owned);
        if let (200, Some(node_id)) = (status, node_id) {
            let (status, detail) = get(format!("/api/ws/nodes/{node_id}")).await;
            assert_eq!(status, 200, "{detail}");
            if detail["network"]["rtt_ms"].is_number() {
                break detail;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(detail["state"], "online");
    assert!(detail["current_data"].is_object(), "{detail}");
    assert!(!detail["operation_log"].as_array().unwrap().is_empty());
    assert_eq!(detail["network"]["connections"], 1);
    let (status, unknown) = get("/api/ws/nodes/nobody".to_owned()).await;
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (404, &serde_json::json!("node_not_found"))
    );

    shutdown.cancel();
    serving
        .await
        .expect("serve does not panic")
        .expect("the embedded run drains cleanly");
}

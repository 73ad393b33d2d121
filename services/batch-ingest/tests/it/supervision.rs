//! Supervision: a background task that ends for good (here the management API, whose bus
//! subscription the bus ends) makes `serve` drain and return an error, which the shared
//! `main` turns into exit status 1.

use std::time::Duration;

use batch_ingest::test_util::{PANIC_NODE_PATH, test_config};
use batch_ingest::{BatchIngest, HashRecords, NodeConfig, RunError};
use bus::Bus;
use protocol::Subjects;
use protocol::batch::API_SERVICE;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_management_subscription_ends_serve_with_an_error() {
    let bus = Bus::memory();
    let config = test_config();
    let subjects = Subjects::new(&config.bus.subject_prefix);
    let ingest = BatchIngest::bind(config, bus.clone(), HashRecords::memory())
        .await
        .unwrap();
    // Nobody cancels the token: only the failure may end `serve`.
    let serving = tokio::spawn(ingest.serve(CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bus.end_subscriptions(&subjects.api(API_SERVICE, "*")), 1);
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve ends when its management api ends")
        .unwrap();
    assert!(matches!(result, Err(RunError::ApiEnded)), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_node_worker_ends_serve_with_an_error_naming_the_node() {
    let mut config = test_config();
    config.batch_ingest.nodes = vec![
        NodeConfig {
            id: "healthy".to_owned(),
            url: "ws://127.0.0.1:9/api/v1/pow/ws".to_owned(),
            active: true,
        },
        NodeConfig {
            id: "buggy".to_owned(),
            url: format!("ws://127.0.0.1:9{PANIC_NODE_PATH}"),
            active: true,
        },
    ];
    let ingest = BatchIngest::bind(config, Bus::memory(), HashRecords::memory())
        .await
        .unwrap();
    // Nobody cancels the token: only the failure may end `serve`.
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        ingest.serve(CancellationToken::new()),
    )
    .await
    .expect("serve ends when a node worker panics");
    match result {
        Err(RunError::NodeWorkerPanicked { node, message }) => {
            assert_eq!(node, "buggy");
            assert!(message.contains("injected fault"), "{message}");
        }
        other => panic!("expected NodeWorkerPanicked, got {other:?}"),
    }
}

//! Supervision: a background task that ends for good (here the management API, whose bus
//! subscription the bus ends) makes `serve` drain and return an error, which the shared
//! `main` turns into exit status 1.

use std::time::Duration;

use batch_ingest::test_util::test_config;
use batch_ingest::{BatchIngest, HashRecords, RunError};
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

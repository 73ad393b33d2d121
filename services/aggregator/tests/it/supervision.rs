//! Supervision: the query API's subscription ended by the bus stops the aggregator with an
//! error (exit status 1 from the shared `main`) instead of leaving a replica that never
//! answers a query.

use std::time::Duration;

use aggregator::RunError;
use bus::Bus;
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::helpers::{config, replica};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_query_subscription_ends_serve_with_an_error() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let aggregator = replica(config("s"), &bus, &store).await;
    // Nobody cancels the token: only the failure may end `serve`.
    let serving = tokio::spawn(aggregator.serve(CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bus.end_subscriptions("sb.api.aggregator.*"), 1);
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve ends when its query api ends")
        .unwrap();
    assert!(matches!(result, Err(RunError::QueriesEnded)), "{result:?}");
}

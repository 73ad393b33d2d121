//! Supervision: a background task that ends for good (here the management API, whose bus
//! subscription the bus ends) makes `serve` drain and return an error naming it, which the
//! shared `main` turns into exit status 1.

use std::time::Duration;

use bus::Bus;
use device_reader::{DeviceReader, RunError};
use protocol::Subjects;
use protocol::device::api;
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::helpers::config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_management_subscription_ends_serve_with_an_error() {
    let bus = Bus::memory();
    let config = config("reader-s", Vec::new());
    let subjects = Subjects::new(&config.bus.subject_prefix);
    let reader = DeviceReader::bind(config, bus.clone(), Store::memory())
        .await
        .unwrap();
    // Nobody cancels the token: only the failure may end `serve`.
    let serving = tokio::spawn(reader.serve(CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bus.end_subscriptions(&subjects.api(api::SERVICE, "*")), 1);
    let result = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve ends when its management api ends")
        .unwrap();
    assert!(
        matches!(result, Err(RunError::InputEnded("management api"))),
        "{result:?}"
    );
}

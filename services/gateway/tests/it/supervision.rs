//! Supervision: a background task that panics ends `serve` with an error naming it (the
//! shared `main` turns that into exit status 1), after the usual drain.

use std::time::Duration;

use bus::Bus;
use gateway::test_util::{Fault, test_config};
use gateway::{Gateway, RunError};
use service::supervise::TaskFailure;
use store::Store;
use tokio_util::sync::CancellationToken;

async fn serve_with_fault(task: &'static str) -> Result<(), RunError> {
    let mut config = test_config();
    config.gateway.shutdown_delay = Duration::ZERO;
    let store = Store::memory();
    let mut gateway = Gateway::bind(config, Bus::memory(), store.clone())
        .await
        .unwrap();
    gateway.inject_fault(Fault {
        task,
        after: Duration::from_millis(200),
    });
    // Nobody cancels the token: only the failure may end `serve`.
    let shutdown = CancellationToken::new();
    let result = tokio::time::timeout(Duration::from_secs(10), gateway.serve(shutdown))
        .await
        .expect("serve ends after a background task panics");
    assert!(
        store.live_gateways().await.unwrap().is_empty(),
        "the gateway drained and deregistered"
    );
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_heartbeat_task_ends_serve_with_an_error_naming_it() {
    let error = serve_with_fault(Fault::HEARTBEAT).await.unwrap_err();
    match &error {
        RunError::Task(TaskFailure::Panicked { task, .. }) => assert_eq!(task, "heartbeat"),
        other => panic!("expected a panicked task, got {other:?}"),
    }
    let chain = service::error_chain(&error);
    assert!(chain.contains("injected fault in heartbeat"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_liveness_or_presence_task_ends_serve_too() {
    for task in [Fault::LIVENESS, Fault::PRESENCE_WRITER] {
        let error = serve_with_fault(task).await.unwrap_err();
        assert!(
            matches!(&error, RunError::Task(failure) if failure.task() == task),
            "{error:?}"
        );
    }
}
